"""JSON typed or sent by someone else, checked before anything stores it.

PostgreSQL refuses a NUL character (`\\u0000`) in JSONB and text, and Python's parser recurses once per
nesting level (100,000 levels is a RecursionError). `load_json` parses and then walks the value once,
without recursion, and raises `JsonInputError` naming where the problem is (`$.payload.tags[2]`):

- a NUL in any key or string value,
- nesting deeper than JSON_MAX_DEPTH (64 by default: real events nest a handful of levels).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

NUL = "\x00"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JsonInputError(ValueError):
    """The text is not JSON Rowbell can store; the message says what and where."""


def max_depth() -> int:
    return getattr(settings, "JSON_MAX_DEPTH", 64)


def load_json(text: str | bytes) -> Any:
    """The parsed value; JsonInputError when it cannot be stored. Text that is not JSON at all raises
    json's own ValueError (JSONDecodeError, UnicodeDecodeError), which callers word for their readers."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonInputError(too_deep("$")) from None
    check_storable(value)
    return value


def check_storable(value: Any, root: str = "$") -> None:
    """JsonInputError when `value` (already parsed) has a NUL anywhere or nests deeper than allowed."""
    limit = max_depth()
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, str):
            if NUL in current:
                raise JsonInputError(has_nul(path))
            continue
        if not isinstance(current, dict | list):
            continue
        if depth >= limit:
            raise JsonInputError(too_deep(path))
        if isinstance(current, dict):
            for key, child in current.items():
                child_path = child_path_of(path, key)
                if NUL in key:
                    raise JsonInputError(has_nul(child_path, in_key=True))
                stack.append((child, child_path, depth + 1))
        else:
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(current))


def child_path_of(path: str, key: str) -> str:
    """`$.name` for plain keys, `$["odd key"]` (JSON-escaped, so a NUL shows as \\u0000) for the rest."""
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{json.dumps(key)}]"


def has_nul(path: str, *, in_key: bool = False) -> str:
    where = f"The key {path}" if in_key else f"The value at {path}"
    return f"{where} contains a NUL character (\\u0000), which cannot be stored: remove it."


def too_deep(path: str) -> str:
    if len(path) > 80:
        path = f"{path[:60]}…{path[-15:]}"
    return (
        f"The JSON nests deeper than {max_depth()} levels (at {path}): "
        f"flatten it (JSON_MAX_DEPTH is the limit)."
    )
