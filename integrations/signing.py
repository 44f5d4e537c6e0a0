"""How Rowbell signs a webhook body, both ways: inbound (a workflow's webhook trigger, checked by
runs/webhooks.py) and outbound (the events Rowbell POSTs to a tenant's endpoints, runs/events/delivery.py).

The headers are

    X-Rowbell-Timestamp: <unix time in seconds>
    X-Rowbell-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed by the secret>

A signature is accepted only within WEBHOOK_TIMESTAMP_TOLERANCE seconds of its timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from django.conf import settings

TIMESTAMP_HEADER = "X-Rowbell-Timestamp"
SIGNATURE_HEADER = "X-Rowbell-Signature"


class BadSignature(Exception):
    """The request is not signed with the secret, or not recently; the message says what to fix."""


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds to a POST of `body` (what the docs' examples compute)."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: compute_signature(secret, stamp, body)}


def verify_signature(headers: Mapping[str, str], secret: str, body: bytes) -> tuple[str, int]:
    """(signature, timestamp) when `body` is signed with `secret`, recently; else BadSignature."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise BadSignature(f"Missing signature: send the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers.")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise BadSignature(f"{TIMESTAMP_HEADER} must be a Unix time in seconds.") from None
    tolerance = getattr(settings, "WEBHOOK_TIMESTAMP_TOLERANCE", 300)
    if age > tolerance:
        raise BadSignature(
            f"The timestamp is {int(age)} s away from now (more than {tolerance} s): sign the request again."
        )
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise BadSignature(
            "Bad signature: HMAC-SHA256 the text '<timestamp>.<body>' with the workflow's webhook secret."
        )
    return expected, int(timestamp)
