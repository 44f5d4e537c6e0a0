"""Cancel by key: stop a workflow's runs about one thing (`order:42`), including work not created yet.

A workflow's trigger may declare a `cancel_key` template (`order:{{ item.id }}`); each run stores the
rendered key when it starts (`Run.cancel_key`). `cancel_by_key(workflow, key)` then writes a tombstone
(`CancelTombstone`: tenant, workflow, key, until) and, in the same transaction, cancels the pending
executions of the workflow's open runs with that key. The tombstone is what makes it complete: the claim
of every batch (runs/engine/executor.py, CLAIM_SQL) looks for a live tombstone of its run's key and
cancels what it would have claimed, so a fan-out still being read, a retry, children of a batch that was
running, or a run started later for the same key are cancelled too, until `until`.

Exactly one of sent / cancelled per item: the cancel never touches a `running` execution (its batch
finishes and settles as usual; its children are cancelled at their claim), and neither the cancel nor a
claim cancels an execution whose message may have left (a Delivery `sending`, `sent` or `uncertain`, e.g.
a batch reclaimed from a killed worker): that one runs on, so that the existing rules decide (a `sent`
message is not sent again, a `sending` one is reported uncertain). A run whose open work is all cancelled
ends `cancelled` (runs/engine/completion.py).

The answer counts what changed state: runs and executions cancelled by this call. The tombstone's
`cancelled` adds those cancelled later at their claim. `undo_cancel` puts back what the cancel moved,
only while none of it was due (nothing would have run in between) and nothing was cancelled at a claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from integrations import clock
from integrations.templating import TemplateError, render
from runs import signals
from runs.models import CancelTombstone, Run, StepExecution
from workflows.models import Workflow

MAX_KEY = 255
OPEN_RUN = ("pending", "running")

# A Delivery in one of these states means the message may have left: such an execution is never cancelled.
MAY_HAVE_LEFT = "('sending', 'sent', 'uncertain')"
CANCEL_PENDING_SQL = f"""
UPDATE runs_stepexecution e SET status = 'cancelled', finished_at = %(now)s, error = %(why)s
WHERE e.run_id = ANY(%(runs)s) AND e.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM runs_delivery d WHERE d.step_execution_id = e.id AND d.status IN {MAY_HAVE_LEFT})
RETURNING e.id, e.run_id, e.next_attempt_at
"""
# The claim's view of a run's tombstone (joined by CLAIM_SQL): one live tombstone of the run's key.
TOMBSTONE_OF_RUN = """
SELECT t.id FROM runs_run r JOIN runs_canceltombstone t ON t.workflow_id = r.workflow_id AND t.key = r.cancel_key
WHERE r.id = %(run)s AND r.cancel_key <> '' AND t.undone_at IS NULL AND t.until > %(now)s
ORDER BY t.id LIMIT 1
"""
# Which claimed rows a tombstone cancels (the rest are claimed as usual).
CANCELS_AT_CLAIM = (
    "tombstone.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs_delivery d "
    f"WHERE d.step_execution_id = e.id AND d.status IN {MAY_HAVE_LEFT})"
)


class BadCancelKey(ValueError):
    """The key cannot name runs: empty (runs without a key must not all match it) or too long."""


class CannotUndo(Exception):
    """The cancel cannot be undone; the message says why."""


@dataclass(frozen=True)
class Cancellation:
    tombstone: CancelTombstone
    runs: int  # runs that ended `cancelled` by this call
    executions: int  # executions this call moved to `cancelled`
    runs_found: int  # open runs with the key (some may still finish a batch that was running)


def render_cancel_key(template: str, item: object) -> str:
    """The run's key; empty when there is no template or the item lacks what it names (such a run
    cannot be cancelled by key, rather than sharing a key like `order:` with every other such run)."""
    if not template:
        return ""
    try:
        key = render(template, {"item": item}).strip()
    except TemplateError:
        return ""
    return key if len(key) <= MAX_KEY else ""


def default_until(now: datetime) -> datetime:
    return now + timedelta(seconds=getattr(settings, "CANCEL_KEY_TOMBSTONE_SECONDS", 7 * 24 * 3600))


def cancel_by_key(
    workflow: Workflow,
    key: str,
    *,
    until: datetime | None = None,
    source: str = CancelTombstone.Source.API,
    by: str = "",
) -> Cancellation:
    """Write the tombstone and cancel the pending work of the workflow's open runs with `key`."""
    key = key.strip() if isinstance(key, str) else ""
    if not key or len(key) > MAX_KEY:
        raise BadCancelKey(f"A cancel key is 1 to {MAX_KEY} characters, like order:42.")
    now = clock.now()
    with transaction.atomic():
        tombstone = CancelTombstone.objects.create(
            tenant_id=workflow.tenant_id,
            workflow=workflow,
            key=key,
            until=until or default_until(now),
            source=source,
            created_by=by[:200],
            created_at=now,
        )
        runs = dict(
            Run.objects.select_for_update()
            .filter(workflow=workflow, cancel_key=key, status__in=OPEN_RUN)
            .values_list("id", "status")
        )
        moved = _cancel_pending(list(runs), now, f"Cancelled by key {key!r}") if runs else []
        closed = _close_cancelled(list(runs), now)
        tombstone.cancelled = len(moved)
        tombstone.undo = {
            "executions": [pk for pk, _run, _due in moved],
            # The earliest moment one of them was due: undoing is possible only before it.
            "due": min((due for _pk, _run, due in moved if due), default=None)
            and min(due for _pk, _run, due in moved if due).isoformat(),
            "runs": {str(pk): runs[pk] for pk in closed},
        }
        tombstone.save(update_fields=["cancelled", "undo"])
    return Cancellation(tombstone, runs=len(closed), executions=len(moved), runs_found=len(runs))


def cancelled_at_claim(run_id: int, tombstone_id: int, claimed: int, now: datetime) -> int:
    """A claim met a tombstone and cancelled `claimed` executions: cancel the rest of the run's pending
    work now (instead of claim by claim), count it on the tombstone, close the run if nothing is open."""
    key = Run.objects.filter(pk=run_id).values_list("cancel_key", flat=True).first() or ""
    with transaction.atomic():
        more = len(_cancel_pending([run_id], now, f"Cancelled by key {key!r}"))
        CancelTombstone.objects.filter(pk=tombstone_id).update(
            cancelled=F("cancelled") + claimed + more,
            cancelled_when_due=F("cancelled_when_due") + claimed,
        )
        _close_cancelled([run_id], now)
    return claimed + more


def undo_cancel(tombstone: CancelTombstone) -> int:
    """Put back the executions and runs the cancel moved; how many executions. Raises CannotUndo when
    something was due in between (it would have run) or was cancelled when claimed."""
    now = clock.now()
    with transaction.atomic():
        locked = CancelTombstone.objects.select_for_update().get(pk=tombstone.pk)
        if locked.undone_at is not None:
            raise CannotUndo("This cancel was already undone.")
        if locked.cancelled_when_due:
            raise CannotUndo(
                f"{locked.cancelled_when_due} execution(s) were cancelled when they came due, so they "
                "would have run by now: this cancel can no longer be undone."
            )
        undo = locked.undo or {}
        if undo.get("due") and datetime.fromisoformat(undo["due"]) <= now:
            raise CannotUndo(
                "Work this cancel stopped was due in the meantime, so it would have run by now: "
                "this cancel can no longer be undone."
            )
        ids = undo.get("executions", [])
        restored = StepExecution.objects.filter(pk__in=ids, status=StepExecution.Status.CANCELLED).update(
            status=StepExecution.Status.PENDING, finished_at=None, error=""
        )
        # Every run that got work back reopens: those the cancel closed, and those that closed as
        # `cancelled` since (a batch that was running finished), or the sweeper would cancel it again.
        previous = {int(pk): status for pk, status in (undo.get("runs") or {}).items()}
        reopened = set(StepExecution.objects.filter(pk__in=ids).values_list("run_id", flat=True))
        for run_id in reopened | set(previous):
            Run.objects.filter(pk=run_id, status=Run.Status.CANCELLED).update(
                status=previous.get(run_id, Run.Status.RUNNING), finished_at=None
            )
        locked.undone_at = now
        locked.undo = {}
        locked.save(update_fields=["undone_at", "undo"])
    tombstone.refresh_from_db()
    return restored


def tombstones_for(run: Run) -> list[CancelTombstone]:
    """The cancels that apply to this run's key (newest first), for its page."""
    if not run.cancel_key:
        return []
    return list(
        CancelTombstone.objects.filter(workflow_id=run.workflow_id, key=run.cancel_key).order_by("-id")
    )


def _cancel_pending(run_ids: list[int], now: datetime, why: str) -> list[tuple[int, int, datetime]]:
    with connection.cursor() as cur:
        cur.execute(CANCEL_PENDING_SQL, {"runs": run_ids, "now": now, "why": why[:500]})
        return [tuple(row) for row in cur.fetchall()]


def _close_cancelled(run_ids: list[int], now: datetime) -> list[int]:
    """End as `cancelled` the runs of `run_ids` with nothing open left; their ids."""
    if not run_ids:
        return []
    closed = list(
        Run.objects.filter(pk__in=run_ids, status__in=OPEN_RUN)
        .exclude(executions__status__in=StepExecution.OPEN)
        .values_list("id", flat=True)
    )
    if closed:
        Run.objects.filter(pk__in=closed, status__in=OPEN_RUN).update(
            status=Run.Status.CANCELLED, finished_at=now
        )
        for run_id in closed:
            signals.run_finished.send(Run, run_id=run_id, status=Run.Status.CANCELLED)
    return closed
