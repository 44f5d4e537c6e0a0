"""The one error type for work that failed: a step's, a channel's send, a data source's query.

Whoever raises it says whether trying again can help (`permanent` has no default). The engine retries a
transient failure with backoff, at most `max_attempts` attempts in all when that is given and lower than
the step's own limit, and fails a permanent one at once; `message` is what the person is shown. It never
decides by matching strings. Subclasses add only what they say more (ChannelError: a refused address).

`throttled`: the other side refused for its rate (HTTP 429, SES's throttling), which says nothing about
the work itself: the engine tries again after `retry_after` seconds (the provider's `Retry-After`, else
the step's backoff) without counting an attempt, and the provider's rate limit slows down
(integrations/ratelimit.py).
"""

from __future__ import annotations

import socket
import ssl
from typing import TypeVar, cast

E = TypeVar("E", bound=BaseException)


class Failure(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        max_attempts: int | None = None,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.permanent = permanent
        self.max_attempts = max_attempts
        self.throttled = throttled and not permanent
        self.retry_after = retry_after
        super().__init__(message)


# A failure's message may carry the raw text below the plain words, after this marker: the pages show the
# words and keep the raw text one click away (runs/templatetags/activity.py `error_words`).
DETAILS = "\nDetails: "


def unreachable(address: str, exc: BaseException, raw: str) -> str:
    """A network failure in plain words, "Nothing answers at 127.0.0.1:9 (connection refused)", with
    `raw` (what the library said) kept as the details."""
    reason = _socket_error(exc)
    if isinstance(reason, ConnectionRefusedError):
        words = f"Nothing answers at {address} (connection refused)"
    elif isinstance(reason, TimeoutError) or "timed out" in str(reason):
        words = f"{address} did not answer in time"
    elif isinstance(reason, socket.gaierror):
        words = f"There is no server called {address.rsplit(':', 1)[0]} (the name does not resolve)"
    elif isinstance(reason, ssl.SSLError):
        words = f"{address} refused the secure (TLS) connection"
    elif isinstance(reason, ConnectionResetError):
        words = f"{address} closed the connection"
    else:
        words = f"{address} could not be reached"
    return f"{words}.{DETAILS}{raw}"


def _socket_error(exc: BaseException) -> BaseException:
    """The socket's own error inside the wrappers of urllib, requests and urllib3 (whose connection
    error is also a TimeoutError, so the refusal underneath has to be found first)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError | ConnectionResetError | socket.gaierror | ssl.SSLError):
            return error
        linked = [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return getattr(exc, "reason", exc)


def behind(exc: BaseException | None, kind: type[E] | tuple[type[E], ...]) -> E | None:
    """The error of `kind` that `exc` is, or was raised from or while handling (at most 10 deep): what a
    library's wrapper hides, e.g. our refusal inside requests, or psycopg's error inside Django's."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return cast(E, exc)  # mypy does not narrow by a tuple of type[E]
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
