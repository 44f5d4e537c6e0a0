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
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

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


def parse_filter(tenant: Tenant, action: str, data: dict[str, Any]) -> BulkFilter:
    """A BulkFilter from plain values (a form's, a JSON body's, a stored operation's); BadFilter otherwise.
    The workflow and step must be the tenant's: another tenant's id is "no such workflow"."""
    if action not in STATES:
        raise BadFilter(f"action must be one of {', '.join(STATES)}, not “{str(action)[:30]}”.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadFilter(f"Unknown filter field(s): {', '.join(unknown)}; a filter takes {', '.join(FIELDS)}.")
    workflow = parse_workflow(tenant, data.get("workflow"))
    step = parse_step(tenant, data.get("step"), workflow)
    error = text_value(data.get("error"), "error")
    if len(error) > MAX_ERROR_TEXT:
        raise BadFilter(f"error: at most {MAX_ERROR_TEXT} characters.")
    # A range whose end is not after its start matches nothing (the page's form says so before).
    start, end = (
        time_value(data.get("created_from"), "created_from"),
        time_value(data.get("created_to"), "created_to"),
    )
    state = text_value(data.get("state"), "state") or STATES[action][0]
    if state not in STATES[action]:
        raise BadFilter(f"state: a {action} takes {', '.join(STATES[action])}, not “{state[:30]}”.")
    return BulkFilter(action, workflow, step, error, start, end, state)


def text_value(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadFilter(f"{name} must be a string.")
    return value.strip()


def parse_workflow(tenant: Tenant, value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
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
        raise BadFilter("step must be a step's key (a UUID: the builder's and the API's `key`).") from None
    steps = Step.objects.for_tenant(tenant).filter(key=key)
    if workflow is not None:
        steps = steps.filter(version__workflow_id=workflow)
    if not steps.exists():
        raise UnknownObject(f"step: there is no step {key}" + (" in that workflow." if workflow else "."))
    return key


def time_value(value: Any, name: str) -> datetime | None:
    text = text_value(value, name)
    if not text:
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadFilter(f"{name} must be an ISO 8601 time with its offset, e.g. 2026-03-02T09:00:00Z.")
    return moment


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
