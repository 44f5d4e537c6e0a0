"""Sending a batch with several messages in flight, when the step's `messages_in_flight` is over 1.

A provider behind an HTTP API answers in 30-300 ms; one request at a time, a batch spends nearly all its
time waiting. Here a batch keeps up to ENGINE_SEND_CONCURRENCY requests in flight (a thread pool per
batch, that is per provider and batch), with the Delivery protocol of runs/engine/delivery_protocol.py unchanged:

- only the worker's main thread touches the database (Django's connections are per thread). Whenever
  places in the pool are free, it renders that many messages (a window), writes their `sending`
  Delivery rows in one statement and waits for its commit, then submits their requests: no request
  leaves before its row is durable. The answers received so far ride, as `sent` marks, on that same
  insert (runs/engine/ledger.py), so a message costs at most one statement, and a window one commit;
- recipients the kind says must not be sent to (`SendKind.skip_reasons`: suppressed or unsubscribed, one
  statement for the batch, as on the serial path) get their `skipped` Delivery and never reach the pool;
- the pool's threads only call the provider, each through its own channel (opened on the thread's first
  message, closed with the batch), so no connection or `last_response` is shared between threads;
- answers are settled in whatever order they come (each carries its own execution and Delivery id): a
  `sent` mark, or `failed` with the provider's reason and a retry for a transient error, which touches no
  other message (the kind's `on_refused` hears of a refusal, as on the serial path); the next message is
  prepared as soon as a place in the pool is free.

A worker killed mid-batch leaves `sending` exactly the messages whose answers it had not written: the
requests in flight and the answers since the last insert (reported uncertain, never re-sent on their
own). An interrupted batch (RQ's job timeout, a lost lease, a broken connection) starts no new request
(a window whose rows were being committed, and requests the pool had not picked up yet, are marked
`failed` "not sent", so that the next attempt sends them), waits for the requests in flight (each bounded by its channel's timeout), writes their answers, and
keeps their outcomes; the executor returns the items not begun to `pending` (executor._release_interrupted).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from psycopg.errors import UniqueViolation

from common import logs as logcontext
from integrations.channels.base import Answer, Channel, ChannelError
from runs.engine import connections, metrics
from runs.engine.context import StepContext
from runs.engine.delivery_protocol import (
    Outgoing,
    already_handled,
    idempotency_key,
    prepare,
    skipped,
)
from runs.engine.ledger import DeliveryLedger
from runs.engine.outcome import ClaimLost, Outcome, guarded, spawned
from runs.engine.pacing import Pacer
from runs.engine.spawn import Spawner
from runs.models import Delivery, StepExecution
from workflows.steps.send_kind import SendKind

logger = logging.getLogger(__name__)

# How long an interrupted batch waits for its requests in flight, beyond the channels' own timeouts.
DRAIN_GRACE_SECONDS = 5.0


@dataclass
class InFlight:
    execution: StepExecution
    delivery_id: int
    content: dict[str, Any]
    started: float  # monotonic, when this message's turn began


class ChannelPerThread:
    """One open channel per sending thread, all closed with the batch."""

    def __init__(self, kind: SendKind):
        self.kind = kind
        self.local = threading.local()
        self.opened: list[Channel] = []
        self.lock = threading.Lock()

    def get(self) -> Channel:
        channel = getattr(self.local, "channel", None)
        if channel is None:
            channel = self.kind.open_channel()
            channel.open()
            self.local.channel = channel
            with self.lock:
                self.opened.append(channel)
        return channel

    def close(self) -> None:
        with self.lock:
            opened, self.opened = self.opened, []
        for channel in opened:
            with contextlib.suppress(Exception):
                channel.close()


def _fill(
    future: Future[Answer],
    channels: ChannelPerThread,
    transport: dict[str, Any],
    key: str,
    pacer: Pacer | None = None,
    turn: float | None = None,
) -> None:
    """In a pool thread: the request, unless the batch was interrupted before this thread got to it."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        if pacer is not None and turn is not None:
            pacer.on_time(transport, turn)
        future.set_result(request(channels, transport, key))
    except BaseException as exc:
        future.set_exception(exc)


def request(channels: ChannelPerThread, transport: dict[str, Any], key: str) -> Answer:
    """In a pool thread: hand one message to the provider (its Delivery row is already committed)."""
    started = time.monotonic()
    channel = channels.get()
    try:
        provider_id = channel.send(transport, idempotency_key=key)
    except ChannelError as exc:
        return Answer(error=exc, took=time.monotonic() - started)
    return Answer.of(channel, provider_id, time.monotonic() - started)


class ConcurrentBatch:
    def __init__(
        self, ctx: StepContext, kind: SendKind, spawner: Spawner, outcomes: dict[int, Outcome], limit: int
    ):
        self.ctx, self.kind, self.spawner, self.outcomes, self.limit = ctx, kind, spawner, outcomes, limit
        self.ledger = DeliveryLedger()
        self.channels = ChannelPerThread(kind)
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"send-{kind.channel}")
        self.flights: dict[Future[Answer], InFlight] = {}
        self.launching: list[tuple[Outgoing, float]] = []  # a window whose rows are being committed
        self.skips: dict[int, tuple[str, str]] = {}  # execution id: (recipient, reason) not to send to
        self.pacer = Pacer(ctx, kind)  # the provider's limit, shared by every worker
        self.turns: dict[int, float] = {}  # execution id: when its tokens are due (monotonic)

    def run(self, executions: list[StepExecution], existing: dict[int, Delivery]) -> None:
        # Suppressed or unsubscribed recipients: one statement for the whole batch, as on the serial path.
        self.skips = self.kind.skip_reasons(
            self.ctx, [(e.pk, e.input) for e in executions if e.pk not in existing]
        )
        try:
            position = 0
            while position < len(executions):
                self._make_room(len(executions) - position)
                window: list[tuple[Outgoing, float]] = []
                while position < len(executions) and len(window) < self.limit - len(self.flights):
                    execution = executions[position]
                    position += 1
                    staged = self._stage(execution, existing.get(execution.pk), self.skips.get(execution.pk))
                    if staged is None:
                        continue
                    wait = self.pacer.reserve(staged[0].transport, idle=self._idle)
                    self.turns[execution.pk] = time.monotonic() + wait
                    if wait > 0:  # its turn is later: what has its turn leaves now, this one at its turn
                        self._launch(window)
                        window = []
                        self._idle(wait)
                        self._launch([staged])
                        continue
                    window.append(staged)
                self._launch(window)
            self._settle(list(self.flights))
            self.ledger.flush()
        except BaseException:
            self._interrupted()
            raise
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.channels.close()
            metrics.record_send_latencies(self.kind.channel, self.ledger.latencies)
            self.pacer.finish()

    def _idle(self, seconds: float) -> None:
        """Wait `seconds` for the provider's limit, settling the answers that come in meanwhile."""
        deadline = time.monotonic() + seconds
        current = self.ctx.execution  # the staged message's, which settling answers changes
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not self.flights:
                    time.sleep(left)
                    return
                done, _ = wait(self.flights, timeout=left, return_when=FIRST_COMPLETED)
                self._settle(list(done))
        finally:
            self.ctx.execution = current

    def _make_room(self, remaining: int) -> None:
        """Settle the answers already in; wait for more until a window's worth of places is free.

        A window is at least a quarter of the pool (or what is left of the batch), so that one commit
        serves several messages: one per answer would spend the pool's time waiting on commits.
        """
        self._settle([future for future in self.flights if future.done()])
        wanted = min(max(1, self.limit // 4), remaining)
        while self.flights and self.limit - len(self.flights) < wanted:
            done, _ = wait(self.flights, return_when=FIRST_COMPLETED)
            self._settle(list(done))

    def _stage(
        self, execution: StepExecution, delivery: Delivery | None, skip: tuple[str, str] | None = None
    ) -> tuple[Outgoing, float] | None:
        """Render one message; a message that sends nothing (captured, held, already sent, skipped) ends here."""
        ctx = self.ctx
        ctx.execution = execution
        started = time.monotonic()

        def stage() -> Outgoing | Outcome:
            if skip:
                return spawned(execution, self.spawner, skipped(ctx, self.kind, execution, skip, self.ledger))
            prepared = prepare(ctx, self.kind, execution, delivery, self.ledger, begin=False)
            return prepared if isinstance(prepared, Outgoing) else spawned(execution, self.spawner, prepared)

        with logcontext.bound(execution_id=execution.pk):
            result, failed = guarded(ctx, execution, stage)
        if isinstance(result, Outgoing):
            return result, started
        (failed or result).took = time.monotonic() - started
        self.outcomes[execution.pk] = failed or result
        return None

    def _launch(self, window: list[tuple[Outgoing, float]]) -> None:
        """Commit the window's Delivery rows in one statement, then send their requests."""
        self.launching = window
        new = [outgoing for outgoing, _ in window if outgoing.delivery is None]
        ids = self._insert(new) if new else {}
        for outgoing, started in window:
            execution = outgoing.execution
            delivery_id = outgoing.delivery if isinstance(outgoing.delivery, int) else ids.get(execution.pk)
            if delivery_id is not None:  # durable: its request may leave now
                self._submit(InFlight(execution, delivery_id, outgoing.content, started), outgoing.transport)
        self.launching = []

    def _insert(self, new: list[Outgoing]) -> dict[int, int]:
        """{execution id: Delivery id}; a message another worker already wrote ends as already handled."""
        try:
            return self.ledger.create_many([_fields(outgoing) for outgoing in new])
        except UniqueViolation:
            pass  # one of them has a row already (its batch was handed over): insert them one by one
        ids = {}
        for outgoing in new:
            execution = outgoing.execution
            try:
                ids[execution.pk] = self.ledger.create(**_fields(outgoing))
            except UniqueViolation:
                _, failed = guarded(self.ctx, execution, functools.partial(already_handled, execution))
                assert failed is not None  # already_handled always raises
                self.outcomes[execution.pk] = failed
        return ids

    def _submit(self, flight: InFlight, transport: dict[str, Any]) -> None:
        """Track the request before the pool may send it, so an interruption can never lose sight of it."""
        future: Future[Answer] = Future()
        self.flights[future] = flight
        turn = self.turns.pop(flight.execution.pk, None)
        key = idempotency_key(flight.execution)
        self.pool.submit(_fill, future, self.channels, transport, key, self.pacer, turn)

    def _settle(self, futures: list[Future[Answer]]) -> None:
        """Write each answer (sent or failed) and its execution's outcome, whatever the order they came in."""
        for future in futures:
            self._settle_one(future, self.flights[future])
            del self.flights[future]  # only now: an interruption mid-settle leaves it to _interrupted

    def _settle_one(self, future: Future[Answer], flight: InFlight) -> None:
        execution = flight.execution
        self.ctx.execution = execution

        def produce() -> Outcome:
            answer: Answer = future.result()  # an unexpected error in the thread is raised here
            if answer.error is not None:
                self.pacer.throttled(answer.error)
                self.kind.on_refused(self.ctx, answer.error, flight.delivery_id)
                self.ledger.failed(execution, answer.error.message)
                raise answer.error
            self.ledger.latencies.append(answer.took)
            self.ledger.sent(flight.delivery_id, answer.provider_id, execution)
            items = self.kind.result_items(self.ctx, execution.input, flight.content, answer)
            return spawned(execution, self.spawner, items)

        with logcontext.bound(execution_id=execution.pk):
            outcome, failed = guarded(self.ctx, execution, produce, check_lease=False)
        result = failed or outcome
        result.took = time.monotonic() - flight.started
        self.outcomes[execution.pk] = result

    def _interrupted(self) -> None:
        """Start nothing new; wait for the requests in flight and note what they answered.

        The answers, and the messages that never left (`failed`, "not sent"), are written when the
        executor releases the batch, retried until the database takes them (it may be what broke)."""
        connections.reset_if_busy()  # a Delivery insert left in flight by the interruption
        current = self.ctx.execution  # the item the interruption struck counts a failed attempt
        unsent = self.ctx.resources.unsent
        submitted = {flight.execution.pk for flight in self.flights.values()}
        unsent += [o.execution for o, _ in self.launching if o.execution.pk not in submitted]
        for future, flight in list(self.flights.items()):
            if future.cancel():  # never picked up by the pool: its request did not leave
                del self.flights[future]
                unsent.append(flight.execution)
        if self.flights:
            timeout = max(settings.HTTP_STEP_TIMEOUT, settings.EMAIL_TIMEOUT) + DRAIN_GRACE_SECONDS
            done, pending = wait(self.flights, timeout=timeout)
            for future in pending:  # their rows stay `sending`: reported uncertain, never re-sent alone
                self.flights.pop(future)
            try:
                self._settle(list(done))
            except ClaimLost:
                pass  # refused and logged where it was refused; the rest of the batch is not ours either
            except Exception:
                logger.warning("Could not record the answers of an interrupted batch", exc_info=True)
                connections.reset_if_busy()
        self.ctx.resources.release_writes.append(self.ledger.flush)
        self.ctx.execution = current


def send_concurrently(
    ctx: StepContext,
    kind: SendKind,
    executions: list[StepExecution],
    spawner: Spawner,
    outcomes: dict[int, Outcome],
    existing: dict[int, Delivery],
    limit: int,
) -> None:
    """Fill `outcomes` for a batch of sends with up to `limit` requests in flight."""
    ConcurrentBatch(ctx, kind, spawner, outcomes, limit).run(executions, existing)


def _fields(outgoing: Outgoing) -> dict[str, Any]:
    assert outgoing.fields is not None, "a concurrent send's row is inserted with its window"
    return outgoing.fields
