"""What a provider's tracking webhook turns into, whatever its channel: channel-neutral delivery events.

A provider kind with a webhook (`ProviderKind.has_tracking_webhook`) reads the request itself
(`ProviderKind.read_tracking(provider, request)`: email's ESPs through anymail's own views, another
channel's gateway however it posts) and returns `TrackingEvent`s; it raises `TrackingRefused` (401:
wrong or missing credentials or signature, nothing read) or `TrackingUnreadable` (400: a body it cannot
parse). runs/tracking.py stores the events against the messages that provider sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import datetime

# The event kinds Rowbell keeps (runs.models.DeliveryEvent.Kind); a kind reports others as they are and
# they are ignored.
EVENT_KINDS = (
    "sent",
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "rejected",
    "failed",
    "unsubscribed",
)


@dataclass(frozen=True)
class TrackingEvent:
    """One thing a provider reported about one message it sent.

    `message_id`: the provider's id of the message (what `send` returned, `Delivery.provider_id`);
    `bounce`: "hard" (the address is undeliverable: it is suppressed) or "soft", for bounces; "hard" for a
    rejection of the address itself (the provider will never deliver to it);
    `event_id`: the provider's own id of the event when it has one (a replay is then stored once).
    """

    kind: str
    message_id: str
    occurred_at: datetime | None = None
    recipient: str = ""
    bounce: str = ""
    description: str = ""
    mta_response: str = ""
    click_url: str = ""
    event_id: str = ""


class TrackingRefused(Exception):
    """The request is not the provider's (missing or wrong credentials or signature): 401."""


class TrackingUnreadable(Exception):
    """The request is the provider's, or may be, but its body cannot be read: 400."""


def basic_auth_matches(authorization: str, credentials: str) -> bool:
    """Whether an `Authorization: Basic ...` header carries `credentials` ("user:password"), compared in
    constant time."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, credentials.encode())
