"""The engine: runs every step of a published version for every item, on RQ workers, durably.

Public entry points (stable contracts; see each module's docstring):
- start_run(workflow, payload, event_key, *, version=None, is_test=False, options=None) -> Run
- start_runs(workflow, [(payload, event_key), ...], *, version=None, is_test=False, options=None)
- cancel_run(run), retry_execution(execution), replay_run(run) -> Run          (control.py)
- release_delivery(delivery_id, tenant=None) -> bool, discard_delivery(...)       (deliveries.py)
- resolve_uncertain(delivery_id, "mark_sent" | "resend", tenant=None, by="") -> bool (deliveries.py)
- cancel_by_key(workflow, key, *, until=None) -> Cancellation, undo_cancel(tombstone) (cancel_keys.py)
- sweep() -> SweepReport                                                          (sweeper.py)
Run options (test runs): {"skip_waits": bool, "override_recipient": "tester@example.com"}.
Time: everything reads integrations.clock.now(), which tests patch to travel.
"""

from runs.engine.cancel_keys import BadCancelKey, CannotUndo, cancel_by_key, undo_cancel
from runs.engine.control import cancel_run, replay_run, retry_execution
from runs.engine.deliveries import discard_delivery, release_delivery, resolve_uncertain
from runs.engine.start import WorkflowNotPublished, start_run, start_runs

__all__ = [
    "BadCancelKey",
    "CannotUndo",
    "WorkflowNotPublished",
    "cancel_by_key",
    "cancel_run",
    "discard_delivery",
    "release_delivery",
    "replay_run",
    "resolve_uncertain",
    "retry_execution",
    "start_run",
    "start_runs",
    "undo_cancel",
]
