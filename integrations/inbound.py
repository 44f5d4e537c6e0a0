"""What every inbound JSON request shares (the webhook trigger and the REST API's "start a run"): the body
size limit, a body that must be a JSON object Rowbell can store (no NUL character anywhere, nesting at
most JSON_MAX_DEPTH levels: integrations/json_input.py), and the optional `Idempotency-Key` that becomes
the event key.

Each check raises `InboundRejected(status_code, detail)`; the view answers `{"detail": ...}` with that status.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.http.request import RawPostDataException

from integrations.json_input import NUL, JsonInputError, load_json

# Sent by a caller that may retry: the same key twice starts one run.
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


class InboundRejected(Exception):
    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def read_body(request: HttpRequest) -> bytes:
    """The raw body, or 413 when it is larger than WEBHOOK_MAX_BODY_BYTES (declared or actual)."""
    limit = getattr(settings, "WEBHOOK_MAX_BODY_BYTES", 256 * 1024)
    too_big = InboundRejected(413, f"The body is larger than the limit of {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_big from None
    except RawPostDataException:
        # Something read a multipart form before us: the raw body is gone, and it was not JSON anyway.
        raise InboundRejected(400, "The body must be JSON (Content-Type: application/json).") from None
    if len(body) > limit:
        raise too_big
    return body


def parse_object(body: bytes) -> dict:
    """The body as a JSON object, or 400 saying why it is not one (or cannot be stored)."""
    try:
        payload = load_json(body)
    except JsonInputError as exc:
        raise InboundRejected(400, str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InboundRejected(400, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise InboundRejected(400, f"The body must be a JSON object ({{...}}), not {json_type(payload)}.")
    return payload


def json_type(value: object) -> str:
    """What a parsed JSON value was, in JSON's words ("an array", "null"), for error messages."""
    if value is None:
        return "null"
    names = {bool: "true/false", dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value), "a number")


def event_key(headers: Mapping[str, str], source: str) -> str:
    """`<source>:<Idempotency-Key>` from the request's headers, so the same key twice starts one run; a
    fresh key when none is sent."""
    key = headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InboundRejected(400, f"The Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters.")
    if NUL in key:
        raise InboundRejected(400, "The Idempotency-Key contains a NUL character (\\0): remove it.")
    return f"{source}:{key}" if key else f"{source}:auto:{uuid.uuid4()}"
