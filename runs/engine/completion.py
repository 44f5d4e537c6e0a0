"""Closing a run once nothing under it is pending or running: succeeded, partial or failed.

- succeeded: no execution failed;
- partial: some failed, and some path still reached its end (an execution of a leaf step succeeded or
  was skipped, or an item was filtered: its path ended where the workflow says it should);
- failed: executions failed and no path reached its end;
- cancelled: some execution was cancelled by key (runs/engine/cancel_keys.py) while others finished.
One conditional UPDATE: it changes nothing while any execution is open, so two workers finishing the
last executions at the same time cannot both close the run, and neither closes it early. The run's event
for outbound webhooks is written in the same transaction (`runs.signals.run_finished`: runs/events/emit.py).
"""

from __future__ import annotations

from django.db import connection, transaction

from integrations import clock
from runs import signals
from runs.models import Run

CLOSE_SQL = """
UPDATE runs_run r SET finished_at = %(now)s, status = CASE
    WHEN EXISTS (SELECT 1 FROM runs_stepexecution WHERE run_id = r.id AND status = 'cancelled') THEN 'cancelled'
    WHEN NOT EXISTS (SELECT 1 FROM runs_stepexecution WHERE run_id = r.id AND status = 'failed') THEN 'succeeded'
    WHEN EXISTS (
        SELECT 1 FROM runs_stepexecution e WHERE e.run_id = r.id AND (e.status = 'filtered' OR (
            e.status IN ('succeeded', 'skipped')
            AND NOT EXISTS (SELECT 1 FROM workflows_step c WHERE c.parent_id = e.step_id)))
    ) THEN 'partial'
    ELSE 'failed' END
WHERE r.id = %(run)s AND r.status IN ('pending', 'running')
  AND NOT EXISTS (SELECT 1 FROM runs_stepexecution WHERE run_id = r.id AND status IN ('pending', 'running'))
RETURNING r.status
"""


def close_run_if_done(run_id: int) -> str | None:
    """The run's final status if this call closed it, else None."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(CLOSE_SQL, {"run": run_id, "now": clock.now()})
        row = cur.fetchone()
        if row:
            signals.run_finished.send(Run, run_id=run_id, status=row[0])
    return row[0] if row else None
