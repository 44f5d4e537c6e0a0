"""Unsubscribe links: signed, per tenant, recipient and topic, and never expiring.

A link carries `[tenant id, address, topic id or None]` signed with Django's signing (SECRET_KEY, with
SECRET_KEY_FALLBACKS for rotation) under its own salt, so a token made for anything else never reads as
one. Anyone holding the link may change that one recipient's subscriptions for that tenant, which is
what a link in their own mailbox is for; changing a character of it gives `BadLink`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from consent.models import normalize_address

SALT = "rowbell.consent.unsubscribe"


class BadLink(Exception):
    """The token was altered, truncated, or made with a key this server no longer has."""


@dataclass(frozen=True)
class Link:
    tenant_id: int
    address: str
    topic_id: int | None


def make_token(tenant_id: int, address: str, topic_id: int | None) -> str:
    return signing.dumps([tenant_id, normalize_address(address), topic_id], salt=SALT, compress=True)


def read_token(token: str) -> Link:
    try:
        value = signing.loads(token, salt=SALT)
    except (signing.BadSignature, ValueError, UnicodeError) as exc:
        raise BadLink(str(exc)) from exc
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
        or not (value[2] is None or isinstance(value[2], int))
    ):
        raise BadLink("unexpected content")
    return Link(value[0], value[1], value[2])


def unsubscribe_url(tenant_id: int, address: str, topic_id: int | None) -> str:
    """The absolute URL of the hosted unsubscribe page, which also takes RFC 8058 one-click POSTs."""
    path = reverse("consent:unsubscribe", args=[make_token(tenant_id, address, topic_id)])
    return settings.PUBLIC_BASE_URL.rstrip("/") + path
