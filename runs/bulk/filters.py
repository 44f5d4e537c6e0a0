"""What a bulk operation acts on: a filter over a tenant's live executions, and its dry-run count.

A filter names any of: a workflow (id), a step (its `key`, which stays the same across versions, so a
step's failures in every version match), text the error contains, a time range (when the run started, as
the activity log filters), and a state. A retry matches `failed` executions only; a cancel matches open
executions of unfinished runs: `open` (pending or running, the default), `retrying` (failed before and
waiting for the next attempt) or `waiting` (a wait's or a send window's hold). Test runs never match.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from integrations import clock
from runs.models import BulkOperation, Delivery, Run, StepExecution
from tenants.models import Tenant
from workflows.models import Step, Workflow

Action = BulkOperation.Action
STATES: dict[str, tuple[str, ...]] = {
    Action.RETRY: ("failed",),
    Action.CANCEL: ("open", "retrying", "waiting"),
}
FIELDS = ("workflow", "step", "error", "created_from", "created_to", "state")
MAX_ERROR_TEXT = 500


class BadFilter(ValueError):
    """The filter cannot be used as given; the message says which part and why."""


class UnknownObject(BadFilter):
    """The filter names a workflow or step the tenant does not have (another tenant's is the same)."""


@dataclass(frozen=True)
class BulkFilter:
    action: str
    workflow: int | None = None
    step: str = ""
    error: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    state: str = ""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("action")
        data["step"] = data["step"] or None  # as the API takes it back: null, never ""
        for name in ("created_from", "created_to"):
            data[name] = data[name].isoformat() if data[name] else None
        return data

    def digest(self) -> str:
        """The same action and filter give the same digest (one unfinished operation per digest)."""
        text = json.dumps([self.action, self.as_json()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        """The filter in words, for the operation's name: "failed, workflow 3, error contains “timeout”"."""
        parts = [self.state]
        if self.workflow:
            parts.append(f"workflow {self.workflow}")
        if self.step:
            parts.append(f"step {self.step[:8]}")
        if self.error:
            parts.append(f"error contains “{self.error[:60]}”")
        if self.created_from:
            parts.append(f"from {self.created_from:%Y-%m-%d %H:%M}")
        if self.created_to:
            parts.append(f"before {self.created_to:%Y-%m-%d %H:%M}")
        return ", ".join(parts)


def parse_filter(tenant: Tenant, action: str, data: dict[str, Any], *, from_form: bool = False) -> BulkFilter:
    """A BulkFilter from JSON values (the API's body, a stored operation's), or a form's strings
    (`from_form`: the workflow's id may be a string); BadFilter otherwise. The workflow and step must be
    the tenant's: another tenant's id is "no such workflow" (UnknownObject)."""
    if not isinstance(action, str) or action not in STATES:
        raise BadFilter(f"action must be one of {', '.join(STATES)}, not “{str(action)[:30]}”.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadFilter(f"Unknown filter field(s): {', '.join(unknown)}; a filter takes {', '.join(FIELDS)}.")
    workflow = parse_workflow(tenant, data.get("workflow"), from_form=from_form)
    step = parse_step(tenant, given(data, "step", from_form), workflow)
    error = text_value(data.get("error"), "error")
    if len(error) > MAX_ERROR_TEXT:
        raise BadFilter(f"error: at most {MAX_ERROR_TEXT} characters.")
    # A range whose end is not after its start matches nothing (the page's form says so before).
    start, end = (
        time_value(given(data, "created_from", from_form), "created_from"),
        time_value(given(data, "created_to", from_form), "created_to"),
    )
    state = text_value(given(data, "state", from_form), "state", strip=False) or STATES[action][0]
    if state not in STATES[action]:
        raise BadFilter(f"state: a {action} takes {', '.join(STATES[action])}, not “{state[:30]}”.")
    return BulkFilter(action, workflow, step, error, start, end, state)


def given(data: dict[str, Any], name: str, from_form: bool) -> Any:
    """The field's value; an empty string is "not filtered" in a form, and a mistake in JSON (send null)."""
    value = data.get(name)
    if value == "" and not from_form:
        raise BadFilter(f"{name} is empty: give a value, or null (or leave it out) not to filter by it.")
    return value


def text_value(value: Any, name: str, *, strip: bool = True) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadFilter(f"{name} must be a string.")
    if "\x00" in value:
        raise BadFilter(f"{name} contains a NUL character (\\0): remove it.")
    return value.strip() if strip else value


def parse_workflow(tenant: Tenant, value: Any, *, from_form: bool = False) -> int | None:
    if value is None or (from_form and value == ""):
        return None
    if from_form and isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON's 45.0 is the integer 45
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise BadFilter("workflow must be a workflow's id (a whole number).")
    if not Workflow.objects.for_tenant(tenant).filter(pk=value).exists():
        raise UnknownObject(f"workflow: there is no workflow {value}.")
    return value


def parse_step(tenant: Tenant, value: Any, workflow: int | None) -> str:
    text = text_value(value, "step")
    if not text:
        return ""
    try:
        key = str(uuid.UUID(text))
    except ValueError:
        key = ""
    if key != text.lower():  # the canonical form only, as the schema's `uuid` format states
        raise BadFilter("step must be a step's key (a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427).")
    steps = Step.objects.for_tenant(tenant).filter(key=key)
    if workflow is not None:
        steps = steps.filter(version__workflow_id=workflow)
    if not steps.exists():
        raise UnknownObject(f"step: there is no step {key}" + (" in that workflow." if workflow else "."))
    return key


# RFC 3339, as the API's schema states it (`date-time`); the page's form sends the same shape.
RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def time_value(value: Any, name: str) -> datetime | None:
    text = text_value(value, name, strip=False)
    if not text:
        return None
    match = RFC3339.fullmatch(text)
    if match is None:
        raise BadFilter(f"{name} must be an RFC 3339 time with its offset, e.g. 2026-03-02T09:00:00Z.")
    day, hour, minute, second, fraction, offset = match.groups()
    # A leap second (:60) counts as the end of its minute; digits past microseconds are dropped.
    second = min(int(second), 59)
    micros = (fraction or "").ljust(6, "0")[:6] if second < 59 or match.group(4) != "60" else "999999"
    offset = "+00:00" if offset in "Zz" else offset
    try:
        return datetime.fromisoformat(f"{day}T{hour}:{minute}:{second:02d}.{micros}{offset}")
    except ValueError:
        raise BadFilter(f"{name}: {text[:40]} is not a time that exists.") from None


def matching_executions(tenant: Tenant, flt: BulkFilter) -> QuerySet[StepExecution]:
    """The tenant's live executions the filter matches (all of them: callers bound them by id)."""
    executions = StepExecution.objects.filter(tenant=tenant, run__is_test=False)
    executions = executions.filter(state_condition(flt))
    if flt.action == Action.CANCEL:
        executions = executions.exclude(run__status__in=Run.FINISHED)
    if flt.workflow:
        executions = executions.filter(run__workflow_id=flt.workflow)
    if flt.step:
        executions = executions.filter(step__key=flt.step)
    if flt.error:
        executions = executions.filter(error__icontains=flt.error)
    if flt.created_from:
        executions = executions.filter(run__created_at__gte=flt.created_from)
    if flt.created_to:
        executions = executions.filter(run__created_at__lt=flt.created_to)
    return executions


def state_condition(flt: BulkFilter) -> Q:
    Status = StepExecution.Status
    retrying = Q(status=Status.PENDING, attempts__gt=0) & ~Q(error="")
    return {
        "failed": Q(status=Status.FAILED),
        "open": Q(status__in=StepExecution.OPEN),
        "retrying": retrying,
        "waiting": Q(status=Status.PENDING, next_attempt_at__gt=clock.now()) & ~retrying,
    }[flt.state]


# A message in any of these states was sent, or may have been: a bulk retry never sends it again.
NOT_TO_RESEND = tuple(status for status in Delivery.Status.values if status != Delivery.Status.FAILED)


def dry_run(tenant: Tenant, flt: BulkFilter) -> dict[str, int | None]:
    """What the operation would act on now: executions and runs matched; for a retry, the recipients of
    their messages and how many of those were already sent (or may have been), which it leaves alone."""
    executions = matching_executions(tenant, flt)
    counts: dict[str, int | None] = {
        "executions": executions.count(),
        "runs": executions.values("run_id").distinct().count(),
        "recipients": None,
        "already_sent": None,
    }
    if flt.action == Action.RETRY:
        messages = Delivery.objects.filter(step_execution__in=executions)
        counts["recipients"] = messages.exclude(recipient="").values("recipient").distinct().count()
        counts["already_sent"] = messages.filter(status__in=NOT_TO_RESEND).count()
    return counts


def counts_in_words(action: str, counts: dict[str, int | None]) -> str:
    """ "412 executions, 398 recipients, 0 already sent" (a retry) or "12 runs, 30 open executions"."""

    def n(value: int | None, word: str) -> str:
        value = value or 0
        return f"{value:,} {word}{'' if value == 1 else 's'}"

    if action == Action.RETRY:
        sent = counts.get("already_sent") or 0
        return f"{n(counts['executions'], 'execution')}, {n(counts['recipients'], 'recipient')}, {sent:,} already sent"
    return f"{n(counts['runs'], 'run')}, {n(counts['executions'], 'open execution')}"
