"""What a step sees while it runs: its run, step and execution, the time, and per-batch resources."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from integrations.failures import Failure
from integrations.models import DataSource
from integrations.query import connect_for_tenant_sql
from runs.engine import digest
from runs.models import Run, StepExecution
from workflows.models import Step

# Read-only data source connections kept across batches, while `shared_query_connections()` is open: a
# publish preview runs thousands of one-item batches in one job, and connecting per batch would cost
# more than its queries. Each query still runs in its own read-only transaction (integrations/query.py).
_shared_connections: ContextVar[dict[int, Any] | None] = ContextVar("shared_query_connections", default=None)


@contextlib.contextmanager
def shared_query_connections() -> Iterator[None]:
    """Batches run inside this block reuse one connection per data source; all closed at the end."""
    shared: dict[int, Any] = {}
    token = _shared_connections.set(shared)
    try:
        yield
    finally:
        _shared_connections.reset(token)
        for conn in shared.values():
            with contextlib.suppress(Exception):
                conn.close()


@dataclass
class BatchResources:
    """Connections shared by the executions of one batch, closed when the batch ends."""

    query_connections: dict[int, Any] = field(default_factory=dict)
    # What a step kind reads once per batch rather than once per message (an email's sender and
    # layout), under keys the kind chooses: the engine knows none of them.
    cache: dict[Any, Any] = field(default_factory=dict)
    # What an interrupted batch still has to write before its claims go back (runs/engine/executor.py
    # `_release_interrupted` retries them until the database takes them): the send paths' answers not
    # written yet (their ledgers' `flush`), and the executions whose message surely never left.
    release_writes: list[Callable[[], None]] = field(default_factory=list)
    unsent: list[StepExecution] = field(default_factory=list)

    def close(self) -> None:
        for conn in self.query_connections.values():
            with contextlib.suppress(Exception):
                conn.close()
        self.query_connections.clear()


@dataclass
class StepContext:
    run: Run
    step: Step
    now: datetime
    resources: BatchResources
    execution: StepExecution | None = None

    @property
    def run_context(self) -> dict[str, Any]:
        """What templates see as `run`: the event's payload and key, and whether this is a test."""
        return {
            "id": self.run.pk,
            "event_key": self.run.event_key,
            "is_test": self.run.is_test,
            "payload": self.run.payload,
        }

    def query_connection(self, datasource_id: int) -> psycopg.Connection[Any]:
        """One read-only connection per data source per batch (connecting costs more than a query), or
        per block of `shared_query_connections()`."""
        pool = _shared_connections.get()
        if pool is None:
            pool = self.resources.query_connections
        conn = pool.get(datasource_id)
        if conn is None or conn.closed:
            source = DataSource.objects.filter(tenant_id=self.run.tenant_id, pk=datasource_id).first()
            if source is None:
                raise Failure(
                    f"Data query: data source {datasource_id} does not exist in this workspace.",
                    permanent=True,
                )
            conn = connect_for_tenant_sql(source.connection_url)
            pool[datasource_id] = conn
        return conn

    def join_digest(
        self, step: Step, item: dict[str, Any], key: str, *, first_passes: bool = False
    ) -> digest.BucketJoin:
        """Add the item to the open digest bucket of `step` for `key` (runs/engine/digest.py)."""
        return digest.join_bucket(self, step, item, key, first_passes=first_passes)

    def join_digests(
        self, step: Step, requests: list[digest.JoinRequest], *, first_passes: bool = False
    ) -> dict[str, digest.BucketJoin]:
        """Join many items at once (a batch's): {source: BucketJoin} (runs/engine/digest.py)."""
        return digest.join_buckets(self.run.tenant_id, step, requests, self.now, first_passes=first_passes)

    def digest_join_request(self, execution: Any, key: str) -> digest.JoinRequest:
        """What `join_digests` needs of one of this batch's executions and its digest key."""
        return digest.JoinRequest(
            digest.source_of(execution), key, execution.input, execution.run_id, execution.pk
        )

    def digest_release_bucket(self) -> int | None:
        """The bucket this execution releases, when it is a digest's release execution."""
        if self.execution is None:
            return None
        return digest.release_bucket_id(self.execution.item_key)

    def digest_release_bucket_of(self, item_key: str) -> int | None:
        """The bucket an execution with this item key releases (None: it joins)."""
        return digest.release_bucket_id(item_key)

    def release_digest(self, bucket_id: int, judge: digest.Judge | None = None) -> dict[str, Any] | None:
        """Release the bucket (runs/engine/digest.py); `judge` re-reads its items and drops some."""
        return digest.release_bucket(bucket_id, self.now, judge)

    def digest_state(self, step: Step, key: str) -> tuple[int, datetime | None]:
        """The open bucket of `step` for `key`: its items so far and release time (0, None: none open)."""
        return digest.open_bucket_state(self.run.tenant_id, step.pk, key)
