"""How many messages wait to go through a provider: the "3,200 queued" of its page's limit line.

The sends of a tenant's open executions (pending or running), grouped by step in one statement, counted
for the provider their step's sender uses (a step without a sender uses the tenant's default one).
Registered with integrations/ratelimit.py when the engine loads (runs/apps.py).
"""

from __future__ import annotations

from django.db.models import Count

from integrations.models import Provider, Sender
from runs.models import StepExecution
from workflows.steps import STEP_KINDS
from workflows.steps.send_kind import SendKind


def queued_messages(provider: Provider) -> int:
    kinds = [
        key
        for key, kind in STEP_KINDS.items()
        if isinstance(kind, SendKind) and kind.channel == provider.channel
    ]
    senders = dict(Sender.objects.filter(tenant_id=provider.tenant_id).values_list("pk", "provider_id"))
    default = (
        Sender.objects.filter(tenant_id=provider.tenant_id, is_default=True)
        .values_list("pk", flat=True)
        .first()
    )
    groups = (
        StepExecution.objects.filter(
            tenant_id=provider.tenant_id,
            status__in=(StepExecution.Status.PENDING, StepExecution.Status.RUNNING),
            step__kind__in=kinds,
            run__is_test=False,
        )
        .values("step_id", "step__config")
        .annotate(n=Count("id"))
    )
    total = 0
    for group in groups:
        config = group["step__config"] if isinstance(group["step__config"], dict) else {}
        sender = config.get("sender") or default
        if sender is not None and senders.get(sender) == provider.pk:
            total += group["n"]
    return total
