"""Held (sandbox) messages: release sends exactly once, discard drops.

- `release_delivery(delivery_id, tenant=None) -> bool`: claims the delivery `held -> sending` with one
  conditional UPDATE, so of two concurrent calls only one sends; renders the message again from the
  execution's item (the same templates and item, so the same message), sends it, marks it `sent`.
  Returns True when this call sent it. A recipient suppressed or unsubscribed since it was held makes
  it `skipped` instead (nothing is sent). A transient provider error puts it back to `held` (release it
  again later); a permanent one marks it `failed`. Either way the reason is in `delivery.error`.
- `discard_delivery(delivery_id, tenant=None) -> bool`: `held -> discarded`.
- `resolve_uncertain(delivery_id, action, tenant=None, by="") -> bool`: a person's answer to an
  `uncertain` message (a worker stopped while handing it over). `mark_sent`: it did arrive, so it becomes
  `sent` and its execution runs again, which finds it sent, sends nothing, and goes on to the step's
  children. `resend`: send it again (it may arrive twice): retry_execution resets it to `failed`, which
  the next attempt sends. Either way only from `uncertain`, so a double click acts once.
Pass `tenant` from views so another tenant's id does nothing (the caller turns False into a 404).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from integrations import clock
from integrations.failures import Failure
from runs.engine.context import BatchResources, StepContext
from runs.engine.control import retry_execution
from runs.engine.delivery_protocol import idempotency_key
from runs.models import Delivery
from tenants.models import Tenant
from workflows.steps import get_kind
from workflows.steps.send_kind import SendKind


def _scoped(delivery_id: int, tenant: Tenant | None) -> QuerySet[Delivery]:
    qs = Delivery.objects.filter(pk=delivery_id)
    return qs.filter(tenant=tenant) if tenant is not None else qs


def release_delivery(delivery_id: int, tenant: Tenant | None = None) -> bool:
    if (
        not _scoped(delivery_id, tenant)
        .filter(status=Delivery.Status.HELD)
        .update(status=Delivery.Status.SENDING)
    ):
        return False
    delivery = Delivery.objects.select_related("step_execution__step", "run__version").get(pk=delivery_id)
    execution = delivery.step_execution
    kind = get_kind(execution.step.kind)
    assert isinstance(kind, SendKind), "a delivery belongs to a sending step"
    ctx = StepContext(
        run=delivery.run,
        step=execution.step,
        now=clock.now(),
        resources=BatchResources(),
        execution=execution,
    )
    skip = kind.skip_reasons(ctx, [(execution.pk, execution.input)]).get(execution.pk)
    if skip:
        # Held before the recipient unsubscribed or bounced: releasing it now must not send it.
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.SKIPPED, error=f"Skipped: {skip[1]}"
        )
        return False
    try:
        _content, transport = kind.render(ctx, execution.input)
        with kind.open_channel() as channel:
            provider_id = channel.send(transport, idempotency_key=idempotency_key(execution))
    except Failure as exc:
        status = Delivery.Status.HELD if not exc.permanent else Delivery.Status.FAILED
        Delivery.objects.filter(pk=delivery_id).update(status=status, error=exc.message)
        return False
    Delivery.objects.filter(pk=delivery_id).update(
        status=Delivery.Status.SENT, provider_id=provider_id[:500], sent_at=clock.now(), error=""
    )
    return True


def discard_delivery(delivery_id: int, tenant: Tenant | None = None) -> bool:
    return bool(
        _scoped(delivery_id, tenant)
        .filter(status=Delivery.Status.HELD)
        .update(status=Delivery.Status.DISCARDED)
    )


RESOLUTIONS = ("mark_sent", "resend")


def resolve_uncertain(delivery_id: int, action: str, tenant: Tenant | None = None, by: str = "") -> bool:
    if action not in RESOLUTIONS:
        raise ValueError(f"Unknown resolution {action!r}; expected one of {', '.join(RESOLUTIONS)}.")
    delivery = _scoped(delivery_id, tenant).filter(status=Delivery.Status.UNCERTAIN).first()
    if delivery is None:
        return False
    execution = delivery.step_execution
    if action == "resend":
        return retry_execution(execution)
    with transaction.atomic():
        marked = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.UNCERTAIN).update(
            status=Delivery.Status.SENT,
            sent_at=clock.now(),
            error=f"Marked as sent by {by or 'an operator'}.",
        )
        if marked:
            retry_execution(execution)
    return bool(marked)
