"""The key a message carries to its provider: opaque, stable, and ours to recompute.

Outgoing messages used to carry `X-Rowbell-Key: rowbell-exec-<execution id>`, which told every recipient
(and every ESP) how many messages Rowbell had sent. The key is now `rowbell-` and 32 hex digits, an
HMAC-SHA256 of the execution's id under a key derived from SECRET_KEY: the same on every attempt (receivers
that de-duplicate by `Idempotency-Key` still can), meaningless outside, and computed again from the
execution when the sweeper asks a provider whether it accepted that message (nothing to store). Rotating
SECRET_KEY changes the keys of messages not yet sent, which only matters for messages in flight then.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from django.conf import settings

PATTERN = re.compile(r"rowbell-[0-9a-f]{32}")


def _secret() -> bytes:
    return hashlib.sha256(b"rowbell message key\x00" + settings.SECRET_KEY.encode()).digest()


def message_key(execution_id: int) -> str:
    digest = hmac.new(_secret(), str(int(execution_id)).encode(), hashlib.sha256).hexdigest()
    return f"rowbell-{digest[:32]}"
