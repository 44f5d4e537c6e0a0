"""Changing one recipient's subscriptions: unsubscribe from a topic or from everything, and back."""

from __future__ import annotations

from dataclasses import dataclass

from consent.models import Topic, Unsubscribe, normalize_address


def unsubscribe(tenant_id: int, address: str, topic: Topic | None, source: str) -> None:
    """Idempotent: a second unsubscribe (a double click, a mail client retrying) changes nothing."""
    Unsubscribe.objects.bulk_create(
        [
            Unsubscribe(
                tenant_id=tenant_id,
                address=normalize_address(address),
                topic=topic,
                source=source,
            )
        ],
        ignore_conflicts=True,
    )


def resubscribe(tenant_id: int, address: str, topic: Topic | None) -> None:
    rows = Unsubscribe.objects.filter(tenant_id=tenant_id, address=normalize_address(address))
    (rows.filter(topic=topic) if topic is not None else rows.filter(topic__isnull=True)).delete()


@dataclass
class TopicState:
    topic: Topic
    subscribed: bool


def preferences(tenant_id: int, address: str) -> tuple[bool, list[TopicState]]:
    """(unsubscribed from everything, each topic of the tenant with whether the recipient gets it)."""
    rows = Unsubscribe.objects.filter(tenant_id=tenant_id, address=normalize_address(address))
    off = set(rows.values_list("topic_id", flat=True))
    topics = Topic.objects.filter(tenant_id=tenant_id).order_by("name")
    return None in off, [TopicState(topic, topic.pk not in off) for topic in topics]
