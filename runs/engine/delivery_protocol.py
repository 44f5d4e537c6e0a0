"""The delivery protocol for send steps: a Delivery row before any side effect, marked after.

Per message (one execution of a send step):
- a test run (`run.is_test`) stores the rendered message as `captured` and sends nothing, unless the
  run has `options.override_recipient` and the channel can be redirected (email): then it is sent to
  that address only;
- a sandbox version (`run.version.sandbox`, not a test) stores it as `held`; a person releases it later
  (runs/engine/deliveries.py);
- otherwise the row is written as `sending`, the channel called, and the row marked `sent` (or
  `failed` with the provider's reason; transient failures are retried with backoff). The `sent` mark
  rides on the next message's insert (runs/engine/ledger.py): one statement and one commit per message,
  and that commit overlaps the channel's envelope (SMTP's MAIL and RCPT), which delivers nothing: the
  message itself (DATA) leaves only once the row is committed.
Before any of a batch is sent, the kind names the messages that must not be sent at all
(`SendKind.skip_reasons`: for email, suppressed or unsubscribed recipients and empty addresses, found
with one statement per batch): each gets a Delivery `skipped` with the reason (in a test run, "Would be
skipped: ..."), its execution reads `skipped` (not failed: the run is not partial), and the path goes
on only if the step says so.
A retry that finds the message `sent`, `held`, `captured` or `skipped` does not send again. One still `sending`
means a worker died between the provider call and the mark: it becomes `uncertain` and is never
re-sent on its own (a person resolves it: mark as sent, or send again), except by a step whose receiver
de-duplicates and which opted in (`SendKind.resends_uncertain`: an HTTP step with `resend_uncertain`).
Every write to a Delivery is made under the execution's claim (runs/engine/ledger.py): a worker that lost
it (frozen past its lease) inserts nothing, so sends nothing, and its marks change nothing (ClaimLost
stops its batch). A message whose insert failed or whose hand-over was abandoned never left: an
interrupted batch marks it `failed` "not sent" (BatchResources.unsent) when it releases the batch.

The channel is opened once per batch (one SMTP connection for up to ENGINE_BATCH_SIZE messages). When
the step says several messages may be in flight (`SendKind.messages_in_flight`: ENGINE_SEND_CONCURRENCY
for HTTP APIs, EMAIL_SMTP_CONNECTIONS for SMTP), the batch keeps that many in flight instead, each
thread with its own channel, with the same guarantee for each (runs/engine/concurrent.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from django.conf import settings
from psycopg.errors import UniqueViolation

from integrations.channels.base import Answer, Channel, ChannelError
from integrations.failures import Failure
from integrations.message_keys import message_key
from runs.engine import liveness, metrics
from runs.engine.context import StepContext
from runs.engine.ledger import DeliveryLedger, PendingCreate, set_status
from runs.engine.outcome import ClaimLost, Outcome, apply
from runs.engine.pacing import Pacer
from runs.engine.spawn import Spawner
from runs.models import Delivery, StepExecution
from workflows.steps.results import Deferred, Skipped
from workflows.steps.send_kind import SendKind

UNCERTAIN = (
    "Uncertain: a worker stopped while this message was being handed to the provider, so it may or may "
    "not have been sent. It is not re-sent automatically: mark it as sent, or send it again (it may then arrive "
    "twice)."
)


ALREADY_HANDLED = (
    "Another worker already wrote this message (its batch was handed over); not sent again here."
)

logger = logging.getLogger(__name__)


def idempotency_key(execution: StepExecution) -> str:
    """The key every attempt of this message carries (`X-Rowbell-Key`, `Idempotency-Key`, an ESP's
    metadata): opaque to whoever reads the message (no internal id), the same on every attempt, and
    computed again from the execution when Rowbell asks the provider about it (integrations/message_keys.py)."""
    return message_key(execution.pk)


class LazyChannel:
    """Opens the channel on the first real send (a batch of captured or held messages opens nothing)."""

    def __init__(self, kind: SendKind):
        self.kind = kind
        self.channel: Channel | None = None

    def get(self) -> Channel:
        if self.channel is None:
            self.channel = self.kind.open_channel()
            self.channel.open()
        return self.channel

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()


@dataclass
class Outgoing:
    """A message to hand to the channel once its Delivery row (an id, or its insert in flight) is committed."""

    execution: StepExecution
    delivery: int | PendingCreate | None  # None: not inserted yet (`fields` says what to insert)
    content: dict[str, Any]
    transport: dict[str, Any]
    fields: dict[str, Any] | None = None


def send_serially(
    ctx: StepContext,
    kind: SendKind,
    executions: list[StepExecution],
    spawner: Spawner,
    outcomes: dict[int, Outcome],
    existing: dict[int, Delivery],
) -> None:
    """Fill `outcomes` message by message over one channel; send latencies go to the metrics once per
    batch. `existing`: the Delivery rows earlier attempts wrote, by execution id."""
    skips = kind.skip_reasons(ctx, [(e.pk, e.input) for e in executions if e.pk not in existing])
    channel = LazyChannel(kind)
    ledger = DeliveryLedger()
    pacer = Pacer(ctx, kind)
    try:
        for execution in executions:
            ctx.execution = execution
            skip = skips.get(execution.pk)
            produce: Callable[[], Any]
            if skip:
                produce = functools.partial(skipped, ctx, kind, execution, skip, ledger)
            else:
                delivery = existing.get(execution.pk)
                produce = functools.partial(
                    send_message, ctx, kind, execution, delivery, channel, ledger, pacer
                )
            outcomes[execution.pk] = apply(ctx, execution, spawner, produce)
    except BaseException:
        # Interrupted: the answers not written yet are written when the batch is released (retried
        # until the database takes them), before the claims go back.
        with contextlib.suppress(Exception):
            channel.close()
        ctx.resources.release_writes.append(ledger.flush)
        raise
    finally:
        metrics.record_send_latencies(kind.channel, ledger.latencies)
    channel.close()
    ledger.flush()


def delivery_mode(ctx: StepContext) -> str:
    run = ctx.run
    if run.is_test:
        return "override" if (run.options or {}).get("override_recipient") else "capture"
    return "hold" if run.version.sandbox else "send"


def send_message(
    ctx: StepContext,
    kind: SendKind,
    execution: StepExecution,
    delivery: Delivery | None,
    channel: LazyChannel,
    ledger: DeliveryLedger,
    pacer: Pacer | None = None,
) -> list[dict[str, Any]]:
    prepared = prepare(ctx, kind, execution, delivery, ledger, pacer=pacer)
    if isinstance(prepared, Outgoing):
        return _send(ctx, kind, prepared, channel, ledger, pacer)
    return prepared


def prepare(
    ctx: StepContext,
    kind: SendKind,
    execution: StepExecution,
    delivery: Delivery | None,
    ledger: DeliveryLedger,
    begin: bool = True,
    pacer: Pacer | None = None,
) -> list[dict[str, Any]] | Outgoing:
    """Everything before the hand-over: the items that go on (captured, held, already sent), or the
    message to send with its `sending` Delivery row begun (the insert may still be in flight), or, with
    `begin=False`, the row's fields for the caller to insert together with others. With a `pacer`, the
    message's tokens are taken (waiting for its turn) before its row says `sending`."""
    item = execution.input
    if delivery is not None:
        ledger.flush()
        return _resume(ctx, kind, execution, delivery, pacer=pacer)
    content, transport = kind.render(ctx, item)
    mode = delivery_mode(ctx)
    if mode == "override":
        redirected = kind.override_recipient(content, transport, ctx.run.options["override_recipient"])
        if redirected is None:
            mode = "capture"
        else:
            content, transport = redirected
    if mode in ("capture", "hold"):
        status = Delivery.Status.CAPTURED if mode == "capture" else Delivery.Status.HELD
        try:
            _create(ctx, kind, execution, content, status, ledger)
        except UniqueViolation:
            already_handled(execution)
        return kind.result_items(ctx, item, content, None)
    fields = _fields(ctx, kind, execution, content, Delivery.Status.SENDING)
    if pacer is not None:
        _pace(pacer, transport)
    if not begin:
        return Outgoing(execution, None, content, transport, fields)
    try:
        pending = ledger.begin_create(**fields)
    except BaseException:
        # Interrupted while the insert ran: it may still commit a `sending` row, and its message never
        # left, so the release marks that row "not sent" and the item's retry sends it.
        ctx.resources.unsent.append(execution)
        raise
    return Outgoing(execution, pending, content, transport)


def skipped(
    ctx: StepContext, kind: SendKind, execution: StepExecution, skip: tuple[str, str], ledger: DeliveryLedger
) -> Skipped | Deferred:
    """A message that must not be sent: a `skipped` Delivery with the reason; the execution succeeds.
    A reason with `until` (a message over its recipient's frequency budget whose step defers it) holds
    the execution until then instead, with no Delivery: it is checked again when it comes back."""
    recipient, reason = skip
    until = getattr(reason, "until", None)
    if until is not None and not ctx.run.is_test:
        return Deferred(until, {"budget": f"Deferred: {reason}", "deferred_until": until.isoformat()})
    said = f"{'Would be skipped' if ctx.run.is_test else 'Skipped'}: {reason}"
    fields = {
        **_fields(ctx, kind, execution, {"to": recipient, "skipped": said}, Delivery.Status.SKIPPED),
        "recipient": recipient,
        "error": said,
    }
    try:
        ledger.create(**fields)
    except UniqueViolation:
        already_handled(execution)
    return Skipped(kind.result_items_when_skipped(ctx.step.config, execution.input), {"skipped": said})


def _create(
    ctx: StepContext,
    kind: SendKind,
    execution: StepExecution,
    content: dict[str, Any],
    status: str,
    ledger: DeliveryLedger,
) -> int:
    return ledger.create(**_fields(ctx, kind, execution, content, status))


def _fields(
    ctx: StepContext, kind: SendKind, execution: StepExecution, content: dict[str, Any], status: str
) -> dict[str, Any]:
    return {
        "tenant_id": ctx.run.tenant_id,
        "run_id": ctx.run.pk,
        "execution_id": execution.pk,
        "channel": kind.channel,
        "recipient": kind.recipient(content),
        "status": status,
        "content": content,
        "attempt": execution.attempts,  # the claim this row is written under (runs/engine/ledger.py)
        "sent_via_id": kind.provider_id(ctx),
    }


def _send(
    ctx: StepContext,
    kind: SendKind,
    outgoing: Outgoing,
    channel: LazyChannel,
    ledger: DeliveryLedger,
    pacer: Pacer | None = None,
) -> list[dict[str, Any]]:
    """Hand the message over once its Delivery row is committed.

    `outgoing.delivery` is the row's id, or its insert still in flight: the channel's envelope (SMTP's
    MAIL and RCPT, which deliver nothing) then overlaps the commit, and the message leaves only after it.
    """
    execution, delivery, content, transport = (
        outgoing.execution,
        outgoing.delivery,
        outgoing.content,
        outgoing.transport,
    )
    assert delivery is not None, "a serial send begins its row's insert before the hand-over"
    started = time.monotonic()
    try:
        handover = channel.get().begin(transport, idempotency_key=idempotency_key(execution))
    except ChannelError as exc:
        delivery_id = _committed(delivery)
        if pacer is not None:
            pacer.throttled(exc)
        kind.on_refused(ctx, exc, delivery_id)
        _failed(ledger, execution, exc)
    except BaseException:
        ctx.resources.unsent.append(execution)  # its message never left
        with contextlib.suppress(Exception):
            _committed(delivery)  # the connection must be free again, whatever happens next
        raise
    try:
        delivery_id = committed(delivery, execution)
    except BaseException:
        handover.abandon()
        ctx.resources.unsent.append(execution)
        raise
    try:
        provider_id = handover.complete()
    except ChannelError as exc:
        if pacer is not None:
            pacer.throttled(exc)
        # An ESP refuses in its one request (SMTP at RCPT, in `begin`): the kind hears of it either way.
        kind.on_refused(ctx, exc, delivery_id)
        _failed(ledger, execution, exc)
    took = time.monotonic() - started
    ledger.latencies.append(took)
    ledger.sent(delivery_id, provider_id, execution)
    return kind.result_items(ctx, execution.input, content, Answer.of(channel.get(), provider_id, took))


def already_handled(execution: StepExecution) -> NoReturn:
    """This attempt meets a row it did not read when its batch began: one written by a worker whose
    insert was in flight while the sweeper took its claim (the fence read the claim just before). Expected,
    so one line, not a traceback; the row is reported as it is by the item's next attempt."""
    logger.info("Execution %s: %s", execution.pk, ALREADY_HANDLED, extra={"execution_id": execution.pk})
    raise Failure(ALREADY_HANDLED, permanent=False)


def _committed(delivery: int | PendingCreate) -> int:
    return delivery.wait() if isinstance(delivery, PendingCreate) else delivery


def committed(delivery: int | PendingCreate, execution: StepExecution) -> int:
    """The Delivery row's id once it is committed; another worker's row for it ends this message here."""
    try:
        return _committed(delivery)
    except UniqueViolation:
        already_handled(execution)


def _failed(ledger: DeliveryLedger, execution: StepExecution, exc: ChannelError) -> NoReturn:
    """The provider refused the message: its Delivery says why, and the error goes on to the executor
    (retried when transient)."""
    ledger.failed(execution, exc.message)
    raise exc


def _pace(pacer: Pacer, transport: dict[str, Any]) -> None:
    """Wait for the message's turn under the provider's limit (one at a time: nothing else to do)."""
    wait = pacer.reserve(transport)
    if wait > 0:
        time.sleep(wait)


def _resume(
    ctx: StepContext,
    kind: SendKind,
    execution: StepExecution,
    delivery: Delivery,
    again: bool = True,
    pacer: Pacer | None = None,
) -> list[dict[str, Any]] | Outgoing:
    """A later attempt of an execution that already has its Delivery: never send twice.

    Its writes are fenced by this attempt's claim (runs/engine/ledger.py). One that changes nothing while
    the claim holds met a late write of a worker that lost this execution before this attempt claimed
    it (e.g. its `sent` mark): the Delivery is read again and resumed from what it says now.
    """
    done = (
        Delivery.Status.SENT,
        Delivery.Status.HELD,
        Delivery.Status.CAPTURED,
        Delivery.Status.DISCARDED,
        Delivery.Status.SKIPPED,
    )
    if delivery.status in done:
        return kind.result_items(ctx, execution.input, delivery.content, None)
    resend = kind.resends_uncertain(ctx.step.config)
    asked = None
    if delivery.status == Delivery.Status.SENDING and not resend:
        asked = _ask_provider(ctx, kind, execution, delivery)
        if asked is True:
            return _mark_accepted(ctx, kind, execution, delivery, again)
    if (
        delivery.status in (Delivery.Status.SENDING, Delivery.Status.UNCERTAIN)
        and not resend
        and asked is not False
    ):
        if delivery.status == Delivery.Status.SENDING and not _guarded(
            execution, Delivery.Status.UNCERTAIN, UNCERTAIN, [Delivery.Status.SENDING]
        ):
            return _resume_again(ctx, kind, execution, delivery, again)
        raise Failure(UNCERTAIN, permanent=True)
    # `failed`: the provider refused it, so it was not sent; or uncertain, and the step's receiver
    # de-duplicates by Idempotency-Key (the same on every attempt). Claim it for this attempt, then send.
    content, transport = kind.render(ctx, execution.input)
    if delivery_mode(ctx) == "override":
        # A channel that cannot be redirected captured the message (`prepare`): it is not resumed here.
        redirected = kind.override_recipient(content, transport, ctx.run.options["override_recipient"])
        if redirected is not None:
            content, transport = redirected
    resendable = [Delivery.Status.FAILED]
    if resend:
        resendable += [Delivery.Status.SENDING, Delivery.Status.UNCERTAIN]
    elif asked is False:  # the provider says it never accepted it: this is its one sending
        resendable += [Delivery.Status.SENDING]
    if pacer is not None:
        _pace(pacer, transport)
    if not _guarded(execution, Delivery.Status.SENDING, None, resendable):
        return _resume_again(ctx, kind, execution, delivery, again)
    return Outgoing(execution, delivery.pk, content, transport)


ASKED_SENT = "The worker stopped while handing this message over; the provider says it accepted it."


def _ask_provider(
    ctx: StepContext, kind: SendKind, execution: StepExecution, delivery: Delivery
) -> bool | None:
    """Whether the provider accepted a message left `sending` (True, False, None: it cannot tell).

    A provider's search may not show a message accepted moments ago, so "not there" is only trusted
    once the row is PROVIDER_LOOKUP_SETTLE_SECONDS old; before that the item waits (no attempt used)."""
    try:
        accepted = kind.was_accepted(ctx, delivery)
    except Exception:  # a lookup that breaks decides nothing: the message stays uncertain
        logger.warning("Could not ask the provider about execution %s", execution.pk, exc_info=True)
        return None
    if accepted is False:
        age = (ctx.now - delivery.created_at).total_seconds()
        settle = float(settings.PROVIDER_LOOKUP_SETTLE_SECONDS)
        if age < settle:
            raise Failure(
                "Asking the provider whether it accepted this message (a worker stopped while handing it "
                "over); its answer is trusted once the message is older.",
                permanent=False,
                throttled=True,
                retry_after=settle - age,
            )
    return accepted


def _mark_accepted(
    ctx: StepContext, kind: SendKind, execution: StepExecution, delivery: Delivery, again: bool
) -> list[dict[str, Any]] | Outgoing:
    """The provider has the message: `sent`, and the item goes on, as **Mark as sent** would."""
    if not _guarded(execution, Delivery.Status.SENT, ASKED_SENT, [Delivery.Status.SENDING]):
        return _resume_again(ctx, kind, execution, delivery, again)
    Delivery.objects.filter(pk=delivery.pk, sent_at__isnull=True).update(sent_at=ctx.now)
    return kind.result_items(ctx, execution.input, delivery.content, None)


def _guarded(execution: StepExecution, status: str, error: str | None, only_from: Sequence[str]) -> bool:
    return bool(set_status([execution], status, error, only_from))


def _resume_again(
    ctx: StepContext, kind: SendKind, execution: StepExecution, delivery: Delivery, again: bool
) -> list[dict[str, Any]] | Outgoing:
    before = delivery.status
    delivery.refresh_from_db()
    if again and delivery.status != before:
        return _resume(ctx, kind, execution, delivery, again=False)
    raise ClaimLost(f"execution {execution.pk} is no longer held by worker {liveness.worker_name!r}")
