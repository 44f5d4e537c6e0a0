"""What a step sees while it runs, as the step side declares it.

runs.engine.context.StepContext (the engine's concrete context) satisfies this Protocol; the kinds are
typed against it so that workflows/steps/ does not import runs, which sits above workflows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from workflows.models import Step


class StepRun(Protocol):
    """The run a step executes in (runs.models.Run)."""

    @property
    def tenant_id(self) -> int: ...

    @property
    def is_test(self) -> bool: ...

    @property
    def options(self) -> Any: ...


class StepExecutionState(Protocol):
    """The execution being run (runs.models.StepExecution): its output so far (a wait's skip request) and
    its id (the key a throttle's slot is counted under)."""

    @property
    def pk(self) -> int: ...

    @property
    def output(self) -> Any: ...

    @property
    def item_key(self) -> str: ...


class SentDelivery(Protocol):
    """A message whose hand-over to the provider was interrupted (runs.models.Delivery), as a send kind's
    `was_accepted` reads it."""

    @property
    def sent_via_id(self) -> int | None: ...

    @property
    def step_execution_id(self) -> int: ...

    @property
    def content(self) -> Any: ...


class StepResources(Protocol):
    """What the executions of one batch share (runs.engine.context.BatchResources)."""

    @property
    def cache(self) -> dict[Any, Any]: ...


class StepContext(Protocol):
    """The run, step and execution, the time, per-batch resources, and what templates see as `run`."""

    @property
    def run(self) -> StepRun: ...

    @property
    def step(self) -> Step: ...

    @property
    def now(self) -> datetime: ...

    @property
    def resources(self) -> StepResources: ...

    @property
    def execution(self) -> StepExecutionState | None: ...

    @property
    def run_context(self) -> dict[str, Any]: ...

    def query_connection(self, datasource_id: int) -> Any: ...

    # Digests (runs/engine/digest.py): joining a key's open bucket, and releasing one.
    def join_digest(
        self, step: Step, item: dict[str, Any], key: str, *, first_passes: bool = False
    ) -> Any: ...

    # A batch's joins at once (the digest's `prepare_batch`): requests from `digest_join_request`.
    def join_digests(
        self, step: Step, requests: list[Any], *, first_passes: bool = False
    ) -> dict[str, Any]: ...

    def digest_join_request(self, execution: Any, key: str) -> Any: ...

    def digest_release_bucket(self) -> int | None: ...

    def digest_release_bucket_of(self, item_key: str) -> int | None: ...

    # `judge` gets the bucket's entries (each with `item`, `payload`: its run's trigger row as logged, and
    # `own_row`) and says, per entry, the item to carry (None: drop it) and the reason.
    def release_digest(
        self,
        bucket_id: int,
        judge: Callable[[list[Any]], list[tuple[dict[str, Any] | None, str]]] | None = None,
    ) -> dict[str, Any] | None: ...

    def digest_state(self, step: Step, key: str) -> tuple[int, datetime | None]: ...
