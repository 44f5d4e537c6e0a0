"""What every channel shares: open once per batch, send many, close; one error type that says retry or not.

A channel is used as a context manager around a batch of messages, so that a transport with a
connection (SMTP) opens it once:

    with EmailChannel() as channel:
        provider_id = channel.send(message)

`send` returns the provider's id for the message (a Message-ID, a response id) or "" and raises
`ChannelError(message, permanent=...)`, the engine's one failure type (integrations/failures.py). `begin(message)` returns a Handover whose `complete()` sends it:
email sends its SMTP envelope in `begin` and the message itself in `complete`, so that the engine can
commit the message's Delivery row in between.

`concurrent_sends` says whether the engine may keep several messages of a batch in flight at once
(runs/engine/concurrent.py): true for channels that make one self-contained HTTP request per message
(the HTTP step, Slack, email through an HTTP API with django-anymail), false for SMTP, whose messages go
one after another over the batch's connection. A concurrent channel is opened once per sending thread,
so its state (a connection, `last_response`) is never shared between threads. The engine retries transient errors with backoff and fails
permanent ones at once with the message shown to the user; it never decides by matching strings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, ClassVar, Generic

from django import forms
from typing_extensions import TypeVar

from integrations.failures import Failure

# What one channel's `send` takes: a TypedDict per channel (email.py EmailTransport, http.py HttpTransport,
# slack.py SlackTransport), built by the send step's `render`. Unsaid (the engine, which carries any
# channel's message from the step to the channel), it is Any.
MessageT = TypeVar("MessageT", default=Any)


class ChannelError(Failure):
    """`refused_address`: set when the provider permanently refused that recipient address itself (SMTP
    5xx at RCPT), which puts it on the tenant's suppression list (consent.suppression)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        refused_address: str = "",
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent, throttled=throttled, retry_after=retry_after)
        self.refused_address = refused_address


@dataclass
class Answer:
    """What the provider said to one message, handed by both of the engine's send paths (one at a time,
    or several in flight) to `SendKind.result_items`: its id for the message, the error it raised, how
    long it took, and the last response of a channel that keeps one (the HTTP step's (status, headers,
    body)); None where nothing was sent (a captured, held or already sent message)."""

    provider_id: str = ""
    error: ChannelError | None = None
    took: float = 0.0
    last_response: Any = None

    @classmethod
    def of(cls, channel: Channel, provider_id: str, took: float) -> Answer:
        return cls(provider_id, None, took, getattr(channel, "last_response", None))


class Handover:
    """A message on its way to the provider: begun, then completed (it leaves) or abandoned (it does not)."""

    def __init__(self, complete: Callable[[], str], abandon: Callable[[], None] = lambda: None):
        self.complete = complete
        self.abandon = abandon


class Channel(ABC, Generic[MessageT]):
    """One transport, registered by name in integrations/channels/registry.py."""

    concurrent_sends: bool = (
        False  # several sends of a batch may be in flight at once (one channel per thread)
    )
    # Whether a sent message may later get events from the provider (delivered, bounced, opened...)
    # through a tracking webhook: the message page then has a place for them.
    reports_events: bool = False
    # How pages name the channel ("Email", "SMS") and one message of it ("Send a test email").
    label: ClassVar[str] = ""
    test_noun: ClassVar[str] = "message"

    # A provider page's "test send" asks the channel what to send and to whom: the recipient field (an
    # email address, a phone number), any other field it needs (email: the From sender), and the message.
    def test_recipient_field(self) -> forms.Field:
        return forms.CharField(label="To", max_length=500, help_text=f"Where the test {self.test_noun} goes.")

    def test_extra_fields(self, provider: Any) -> dict[str, forms.Field]:
        return {}

    def test_recipient_initial(self, user: Any) -> str:
        """The recipient the form suggests to the person testing (email: their own address)."""
        return ""

    def test_message(self, provider: Any, data: dict[str, Any]) -> MessageT:
        """The message of a test send through `provider`, from the test form's cleaned `data`."""
        raise NotImplementedError(f"The {type(self).__name__} channel has no test message")

    def open(self) -> None:
        """Set up what a batch shares (a connection). Called by __enter__."""

    def close(self) -> None:
        """Release what open() set up. Called by __exit__, also after errors."""

    @abstractmethod
    def send(self, message: MessageT, *, idempotency_key: str = "") -> str:
        """Hand one message to the provider; return its id, or raise ChannelError."""

    def begin(self, message: MessageT, *, idempotency_key: str = "") -> Handover:
        """Start handing a message over without delivering it, for the engine to overlap with its own
        bookkeeping. A channel whose first exchange already delivers (one HTTP request) does everything
        in `complete()`."""
        return Handover(lambda: self.send(message, idempotency_key=idempotency_key))

    def __enter__(self) -> Channel[MessageT]:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def http_status_error(
    status: int, body: str, what: str, headers: Mapping[str, str] | None = None
) -> ChannelError:
    """429 and 5xx are worth retrying; other 4xx mean the request itself is wrong. A 429, or any answer
    with `Retry-After`, is throttling: retried after that wait without counting an attempt."""
    snippet = body.strip()[:300]
    transient = status == 429 or status >= 500
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    return ChannelError(
        f"{what} answered HTTP {status}: {snippet}".rstrip(": "),
        permanent=not transient,
        throttled=status == 429 or (transient and retry_after is not None),
        retry_after=retry_after,
    )


# A Retry-After longer than this is capped: the engine comes back then and asks again.
MAX_RETRY_AFTER_SECONDS = 3600.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None when absent or odd."""
    if not value:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        from datetime import datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))
