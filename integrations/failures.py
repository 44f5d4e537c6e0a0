"""The one error type for work that failed: a step's, a channel's send, a data source's query.

Whoever raises it says whether trying again can help (`permanent` has no default). The engine retries a
transient failure with backoff, at most `max_attempts` attempts in all when that is given and lower than
the step's own limit, and fails a permanent one at once; `message` is what the person is shown. It never
decides by matching strings. Subclasses add only what they say more (ChannelError: a refused address).
"""

from __future__ import annotations


class Failure(Exception):
    def __init__(self, message: str, *, permanent: bool, max_attempts: int | None = None) -> None:
        self.message = message
        self.permanent = permanent
        self.max_attempts = max_attempts
        super().__init__(message)
