"""Keyset pagination on (created_at, id), newest first: page 1,000 costs what page 1 costs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest

PAGE_SIZE = 50
# Integer microseconds since the epoch: float timestamps would round and skip or repeat a row.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class BadCursor(ValueError):
    """The `after` parameter of a page link was edited or truncated."""


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


CURSOR_REGEX = r"^[0-9]{1,16}\.[0-9]{1,18}$"
CURSOR_PATTERN = re.compile(CURSOR_REGEX.strip("^$"))


def encode_cursor(created_at: datetime, pk: int) -> str:
    return f"{(created_at - EPOCH) // MICROSECOND}.{pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    # Exactly what encode_cursor writes (the API's schema states this pattern): int() alone would also
    # take "+1", " 1", "1_0" or a bigint PostgreSQL refuses.
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise BadCursor(f"“{cursor[:100]}” is not a page position; start again from the newest.")
    try:
        micros, pk = cursor.split(".", 1)
        when = EPOCH + int(micros) * MICROSECOND
        return when, int(pk)
    except (ValueError, OverflowError, OSError):
        raise BadCursor(f"“{cursor}” is not a page position; start again from the newest.") from None


def keyset_page(
    qs: QuerySet, cursor: str | None, size: int = PAGE_SIZE, keys: tuple[str, str] = ("created_at", "id")
) -> Page:
    """The `size` rows after `cursor` (newest first by `keys`: a time, then a unique id); raises
    BadCursor for a malformed cursor."""
    time_key, id_key = keys
    qs = qs.order_by(f"-{time_key}", f"-{id_key}")
    if cursor:
        created_at, pk = decode_cursor(cursor)
        # The `lte` bound lets PostgreSQL start the index scan at the cursor; the OR finishes the tie.
        qs = qs.filter(
            Q(**{f"{time_key}__lt": created_at}) | Q(**{time_key: created_at, f"{id_key}__lt": pk}),
            **{f"{time_key}__lte": created_at},
        )
    rows = list(qs[: size + 1])
    if len(rows) > size:
        last = rows[size - 1]
        return Page(rows[:size], encode_cursor(getattr(last, time_key), getattr(last, id_key)))
    return Page(rows, None)


def pager_links(request: HttpRequest, page: Page) -> dict[str, str]:
    """Query strings for the first page and the next one, keeping the current filters."""
    params = request.GET.copy()
    params.pop("after", None)
    first = params.urlencode()
    if page.next_cursor:
        params["after"] = page.next_cursor
    return {"first_query": first, "next_query": params.urlencode() if page.next_cursor else ""}
