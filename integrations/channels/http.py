"""Outgoing HTTP requests (the HTTP request step), with an Idempotency-Key header.

The message is an `HttpTransport` (below): {"method": str, "url": str, "headers": {str: str},
"body": str | None}.
Requests go through `integrations.outbound` (no loopback, private or metadata addresses, also after a
redirect, which is followed); a refused address is a permanent error.
`send` returns the response's `X-Request-Id` header (the receiver's id for the request) or ""; the body
is in `last_response`, which holds (status, headers, body text) of the last call so that the step can
turn response JSON into the item.
"""

from __future__ import annotations

import urllib.parse
from typing import Required, TypedDict

import requests
from django.conf import settings

from integrations import outbound
from integrations.channels.base import Channel, ChannelError, MessageT, http_status_error
from integrations.failures import unreachable

MAX_RESPONSE_BYTES = 1_000_000


def address_of(url: str) -> str:
    """host:port of a URL, as a person would look for it ("127.0.0.1:9", "crm.example.com:443")."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return parts.netloc
    return f"{parts.hostname}:{port}"


class HttpTransport(TypedDict, total=False):
    """One request as the channel makes it (the HTTP request step's `render`)."""

    method: Required[str]
    url: Required[str]
    headers: dict[str, str]
    body: str | None  # JSON text; None: no body


class HttpRequests(Channel[MessageT]):
    """What every channel that speaks HTTP shares: one request per message, through `request`."""

    what = "The server"
    concurrent_sends = True  # one self-contained request per message

    def __init__(self) -> None:
        self.last_response: tuple[int, dict[str, str], str] | None = None

    def request(self, message: HttpTransport, *, idempotency_key: str = "") -> str:
        headers = dict(message.get("headers") or {})
        if idempotency_key:
            headers.setdefault("Idempotency-Key", idempotency_key)
        body = message.get("body")
        data = body.encode() if isinstance(body, str) and body else None
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("User-Agent", "Rowbell")
        try:
            reply = outbound.request(
                message["method"],
                message["url"],
                data=data,
                headers=headers,
                timeout=settings.HTTP_STEP_TIMEOUT,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except outbound.OutboundRefused as exc:
            raise ChannelError(exc.message, permanent=True) from exc
        except (requests.exceptions.InvalidURL, ValueError) as exc:
            raise ChannelError(f"The URL is not valid: {exc}", permanent=True) from exc
        except requests.exceptions.TooManyRedirects as exc:
            raise ChannelError(f"{self.what} redirected too many times: {exc}", permanent=True) from exc
        except (requests.RequestException, OSError) as exc:
            raw = f"{self.what} could not be reached: {exc}"
            raise ChannelError(unreachable(address_of(message["url"]), exc, raw), permanent=False) from exc
        if reply.status >= 300:  # a redirect is followed: a 3xx left is one that cannot be
            raise http_status_error(reply.status, reply.text, self.what, reply.headers)
        self.last_response = (reply.status, reply.headers, reply.text)
        return reply.headers.get("X-Request-Id", "")


class HttpChannel(HttpRequests[HttpTransport]):
    label = "HTTP"

    def send(self, message: HttpTransport, *, idempotency_key: str = "") -> str:
        return self.request(message, idempotency_key=idempotency_key)
