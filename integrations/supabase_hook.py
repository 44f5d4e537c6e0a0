"""Supabase's Send Email hook: verifying its request and turning its body into an item.

Supabase Auth (its Send Email hook, HTTPS type) POSTs `{"user": {...}, "email_data": {...}}` for each
auth email, signed the Standard Webhooks way: headers `webhook-id`, `webhook-timestamp` (Unix seconds)
and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`), with a secret written
`v1,whsec_<base64>`. The signature and the timestamp (at most 5 minutes either side of now) are checked
by the `standardwebhooks` package, the reference implementation of that specification, pinned in
pyproject.toml; replays (a `webhook-id` seen before) are refused by runs/supabase_hooks.py.

Refusals are InboundRejected: 401 for a missing, bad or stale signature, 400 for a body that is not the
hook's shape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integrations.inbound import InboundRejected, parse_object

# The action types whose emails a starter workflow sends (Supabase's email_action_type values that carry
# a token or a link); the *_notification types are passed on as items too, with no token.
ACTIONS: dict[str, str] = {
    "signup": "Confirm your sign-up",
    "magiclink": "Your sign-in link",
    "recovery": "Reset your password",
    "invite": "You have been invited",
    "email_change": "Confirm your new email address",
    "reauthentication": "Your confirmation code",
}
TOKEN_FIELDS = ("token", "token_hash", "redirect_to", "site_url", "token_new", "token_hash_new")
MAX_WEBHOOK_ID = 200


def hook_secret(workflow_secret: str) -> str:
    """The secret to paste into Supabase (`v1,whsec_<base64 of 32 bytes>`), derived from the workflow's
    own webhook secret: rotating that one rotates this one, and nothing new is stored."""
    key = hmac.new(workflow_secret.encode(), b"supabase-send-email-hook", hashlib.sha256).digest()
    return "v1,whsec_" + base64.b64encode(key).decode()


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The request's `webhook-id` once its signature and timestamp check out; InboundRejected(401) not."""
    webhook_id = (headers.get("webhook-id") or "").strip()
    if not webhook_id or len(webhook_id) > MAX_WEBHOOK_ID:
        raise InboundRejected(
            401, "Missing or overlong webhook-id header: this is not a Supabase hook request."
        )
    wanted = {
        name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    try:
        Webhook(secret.removeprefix("v1,")).verify(body, wanted, json_parse=False)
    except WebhookVerificationError as exc:
        raise InboundRejected(401, _refusal(str(exc))) from None
    except (ValueError, UnicodeDecodeError):  # a signature that is not "v1,<base64>", a body not UTF-8
        raise InboundRejected(401, _refusal("No matching signature found")) from None
    return webhook_id


def _refusal(reason: str) -> str:
    if "too old" in reason or "too new" in reason:
        return (
            "The webhook-timestamp is more than 5 minutes from Rowbell's clock: a stale or replayed request "
            "(or a clock that is off)."
        )
    if "Missing" in reason:
        return "Missing webhook-id, webhook-timestamp or webhook-signature header."
    return "The webhook-signature does not match: check that Supabase has this workflow's hook secret."


def auth_email_item(body: bytes) -> dict[str, Any]:
    """The run's item: the user, the action type, the recipient and the token fields, plus the link.

    `email` is who gets the message and `code` / `confirmation_url` what it carries (the 6-digit code,
    and Supabase's verify link built from `site_url`, the hash, the action and `redirect_to`, as
    Supabase's own templates build it). For most actions: the user's address, `token`, `token_hash`.
    An email change confirms the new address (`new_email`) with `token_new` (or `token` when only one
    was made) and `token_hash` — Supabase's naming is historical: `token_hash` belongs to the new
    address. With Secure email change on, the current address must confirm too: `current_email`,
    `current_code` (`token`) and `current_confirmation_url` (from `token_hash_new`) are for that
    second email, and are empty otherwise.
    """
    payload = parse_object(body)
    user, data = payload.get("user"), payload.get("email_data")
    if not isinstance(user, dict) or not isinstance(data, dict):
        raise InboundRejected(
            400, 'The body must hold "user" and "email_data" objects (Supabase Send Email hook).'
        )
    action = data.get("email_action_type")
    if not isinstance(action, str) or not action:
        raise InboundRejected(400, 'The body\'s "email_data" has no "email_action_type".')
    fields = {name: _text(data.get(name)) for name in TOKEN_FIELDS}
    current, new_email = _text(user.get("email")), _text(user.get("new_email") or user.get("email_new"))
    item: dict[str, Any] = {
        "action": action,
        "email": current or new_email,
        "new_email": new_email,
        "user": user,
        **fields,
        "code": fields["token"],
        "confirmation_url": confirmation_url(action, fields["token_hash"], fields),
        "current_email": "",
        "current_code": "",
        "current_confirmation_url": "",
    }
    if action == "email_change":
        item["email"] = new_email or current
        item["code"] = fields["token_new"] or fields["token"]
        if fields["token_hash_new"]:
            item["current_email"] = current
            item["current_code"] = fields["token"]
            item["current_confirmation_url"] = confirmation_url(action, fields["token_hash_new"], fields)
    return item


def confirmation_url(action: str, token_hash: str, fields: Mapping[str, str]) -> str:
    if not fields["site_url"] or not token_hash:
        return ""
    query = urlencode(
        {"token": token_hash, "type": action, "redirect_to": fields["redirect_to"]}, quote_via=quote
    )
    return f"{fields['site_url'].rstrip('/')}/verify?{query}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def sample_body() -> dict[str, Any]:
    """A signup request as Supabase sends it (the trigger's sample item and the tests' base)."""
    return {
        "user": {
            "id": "8484b834-f29e-4af2-bf42-80644d154f76",
            "aud": "authenticated",
            "role": "authenticated",
            "email": "ada@example.com",
            "phone": "",
            "user_metadata": {"full_name": "Ada Lovelace"},
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "created_at": "2026-05-14T12:56:33.821567Z",
            "is_anonymous": False,
        },
        "email_data": {
            "token": "305805",
            "token_hash": "7d5b7b1964cf5d388340a7f04f1dbb5eeb6c7b52ef8270e1737a58d0",
            "redirect_to": "https://app.example.com/welcome",
            "email_action_type": "signup",
            "site_url": "https://project-ref.supabase.co/auth/v1",
            "token_new": "",
            "token_hash_new": "",
        },
    }


def sign(secret: str, body: bytes, webhook_id: str, timestamp: int) -> dict[str, str]:
    """The headers Supabase would send with `body` (the builder's test sends and the tests)."""
    signature = Webhook(secret.removeprefix("v1,")).sign(
        webhook_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode()
    )
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
