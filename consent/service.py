"""Changes admins make (pages and REST API alike), each recorded in the audit log."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from consent.models import EmailLayout, Suppression, Topic
from consent.suppression import ImportReport, import_csv, suppress_address
from tenants.audit import record


def save_topic(tenant, actor, topic: Topic, *, created: bool, via: str | None = None) -> Topic:
    topic.tenant = tenant
    topic.save()
    record(tenant, actor, "topic.created" if created else "topic.changed", topic, via=via)
    return topic


def delete_topic(tenant, actor, topic: Topic, *, via: str | None = None) -> None:
    """Unsubscribes from it go with it; steps that chose it keep its id and send as if they chose none."""
    record(tenant, actor, "topic.deleted", topic, via=via)
    topic.delete()


def save_layout(tenant, actor, layout: EmailLayout, *, created: bool, via: str | None = None) -> EmailLayout:
    with transaction.atomic():
        layout.tenant = tenant
        if layout.is_default:
            EmailLayout.objects.filter(tenant=tenant, is_default=True).exclude(pk=layout.pk).update(
                is_default=False
            )
        layout.save()
    record(tenant, actor, "layout.created" if created else "layout.changed", layout, via=via)
    return layout


def delete_layout(tenant, actor, layout: EmailLayout, *, via: str | None = None) -> None:
    record(tenant, actor, "layout.deleted", layout, via=via)
    layout.delete()


def add_suppression(
    tenant,
    actor,
    address: str,
    reason: str,
    detail: str = "",
    *,
    source: str = "admin",
    via: str | None = None,
) -> Suppression:
    entry = suppress_address(tenant, address, reason, source=source, detail=detail)
    if entry is None:  # the forms and the API refuse a blank address before this
        raise ValueError("A blank address cannot be suppressed.")
    record(tenant, actor, "suppression.added", entry, via=via, reason=entry.reason)
    return entry


def remove_suppression(tenant, actor, entry: Suppression, *, via: str | None = None) -> None:
    record(tenant, actor, "suppression.removed", entry, via=via, reason=entry.reason)
    entry.delete()


def import_suppressions(tenant, actor, text: str, filename: str = "", via: str | None = None) -> ImportReport:
    report = import_csv(tenant, text)
    details: dict[str, Any] = {
        "added": report.added,
        "already": report.already,
        "refused": len(report.errors),
    }
    record(
        tenant,
        actor,
        "suppression.imported",
        label=filename or "CSV",
        object_type="suppression",
        via=via,
        **details,
    )
    return report
