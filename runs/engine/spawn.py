"""Writing an execution's children: bulk inserts that ignore conflicts, in chunks, then queue their batches.

A big fan-out's batches are queued after its first chunk (ENGINE_FANOUT_CHUNK rows), so workers send
while the rest of the rows are still being read; when the reading ends, the first lane is queued
again in case the lanes caught up with the reader and stopped.

A child's item key is the parent's (one item passed on) or `<parent key>/<row key>` (a fan-out), so a
repeated step creates nothing twice. A wait's execution is created already holding its due time in
`next_attempt_at`, and so is a message outside its send window (workflows/steps/send_window.py): due at
the window's opening, with the hold in its `output` for the run page.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings

from integrations.failures import Failure
from runs.engine.enqueue import lanes_for, schedule_next
from runs.models import Run, StepExecution
from workflows.models import Step
from workflows.steps import ConfigError, get_kind
from workflows.steps.send_kind import SendKind
from workflows.steps.send_window import Hold, hold_for, identity


class Spawner:
    def __init__(self, run: Run, children: list[Step], now: datetime, may_follow: bool = False):
        self.run = run
        self.children = children
        self.now = now
        self.rows: list[StepExecution] = []
        self.count = 0  # items produced (each makes one execution per child step)
        self.queued_lanes = 0
        self.queued_while_reading = False
        # With `may_follow`, a few items' child steps are not queued: finish() returns them for the same
        # job to run next (runs/engine/executor.py `_follow`).
        self.may_follow = may_follow
        self.follow_ups: list[int] = []
        self.skip_waits = bool((run.options or {}).get("skip_waits"))
        # The child steps that got executions (a branch feeds only one path's): only these are queued.
        self.fed: dict[int, Step] = {}

    def add(
        self,
        parent: StepExecution,
        pairs: Iterable[tuple[str | None, dict[str, Any]]],
        path: str | None = None,
    ) -> int:
        """Write one execution per (item, child step); returns how many items there were.

        With `path` (a branch's choice), only the children on that path get the items.
        """
        children = self.children if path is None else [c for c in self.children if c.path == path]
        for child in children:
            self.fed.setdefault(child.pk, child)
        produced = 0
        for key, item in pairs:
            produced += 1
            self.count += 1
            item_key = (parent.item_key if key is None else f"{parent.item_key}/{key}")[:500]
            for child in children:
                hold = self._window_hold(child, item, item_key)
                self.rows.append(
                    StepExecution(
                        tenant_id=self.run.tenant_id,
                        run_id=self.run.pk,
                        step=child,
                        parent_id=parent.pk,
                        item_key=item_key,
                        input=item,
                        next_attempt_at=hold.until if hold else self._due(child, item),
                        output=hold.as_output() if hold else None,
                    )
                )
            if len(self.rows) >= settings.ENGINE_FANOUT_CHUNK:
                self.flush()
                self.queue_batches(reading=True)
        return produced

    def _due(self, step: Step, item: dict[str, Any]) -> datetime:
        if self.skip_waits:
            return self.now
        try:
            kind = get_kind(step.kind)
        except ConfigError:
            return self.now  # the child's own execution reports the unknown kind
        try:
            return max(self.now, kind.due_at(step.config, item, self.now))
        except Failure:
            return self.now  # the wait's execution will fail with the reason, where it can be seen

    def _window_hold(self, step: Step, item: dict[str, Any], item_key: str) -> Hold | None:
        """A send step's message outside its send window: held until it opens (test runs never wait)."""
        if self.skip_waits or self.run.is_test:
            return None
        try:
            kind = get_kind(step.kind)
        except ConfigError:
            return None
        if not isinstance(kind, SendKind):
            return None
        return hold_for(
            step.config or {}, item, self.run.tenant, self.now, identity(self.run.pk, step.pk, item_key)
        )

    def flush(self) -> None:
        if self.rows:
            StepExecution.objects.bulk_create(
                self.rows, ignore_conflicts=True, batch_size=settings.ENGINE_FANOUT_CHUNK
            )
            self.rows = []

    def keep_children_of(self, parents: set[int]) -> None:
        """Forget the children not written yet of every parent but `parents` (an interrupted batch whose
        worker lost some claims writes children only for the executions it still holds)."""
        self.rows = [row for row in self.rows if row.parent_id in parents]

    def finish(self) -> list[int]:
        """Write what is left and queue the children's batches; returns the child steps left for this
        job to run next (none unless `may_follow` and few items)."""
        self.flush()
        self.queue_batches()
        if self.queued_while_reading:
            # A lane stops when it finds nothing pending, which can happen while a slow query is still
            # being read; the job id makes this a no-op when the first lane is already queued.
            for child in self.fed.values():
                schedule_next(self.run.pk, child.pk, queue=self.queue)
        return self.follow_ups

    def queue_batches(self, reading: bool = False) -> None:
        """Queue up to ENGINE_FANOUT_PARALLELISM lanes per child step (each lane chains itself)."""
        if not self.count or not self.fed:
            return
        self.queued_while_reading |= reading
        if (
            not reading
            and self.may_follow
            and not self.queued_lanes
            and self.count <= settings.ENGINE_FOLLOW_MAX_ITEMS
        ):
            self.follow_ups = list(self.fed)
            self.queued_lanes = 1
            return
        _, lanes = lanes_for(self.count)
        for lane in range(self.queued_lanes, lanes):
            for child in self.fed.values():
                schedule_next(self.run.pk, child.pk, lane=lane, queue=self.queue)
            self.queued_lanes = lane + 1

    @property
    def queue(self) -> str:
        return lanes_for(self.count)[0]
