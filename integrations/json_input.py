"""JSON typed or sent by someone else, checked before anything stores it.

PostgreSQL refuses a NUL character (`\\u0000`) in JSONB and text, and Python's parser recurses once per
nesting level (100,000 levels is a RecursionError). `load_json` parses and then walks the value once,
without recursion, and raises `JsonInputError` naming where the problem is (`$.payload.tags[2]`):

- a NUL in any key or string value, or half a UTF-16 surrogate pair (`\\ud800` alone: not text),
- nesting deeper than JSON_MAX_DEPTH (64 by default: real events nest a handful of levels),
- NaN, Infinity or a number too large for a float (1e400): JSON has no such numbers.

The API's schema states the same (config/api_schema.py `JSON_COMPONENTS`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django import forms
from django.conf import settings

NUL = "\x00"
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JsonInputError(ValueError):
    """The text is not JSON Rowbell can store; the message says what and where."""


def max_depth() -> int:
    return getattr(settings, "JSON_MAX_DEPTH", 64)


def load_json(text: str | bytes) -> Any:
    """The parsed value; JsonInputError when it cannot be stored. Text that is not JSON at all raises
    json's own ValueError (JSONDecodeError, UnicodeDecodeError), which callers word for their readers."""
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise JsonInputError(too_deep("$")) from None
    check_storable(value)
    return value


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise JsonInputError(f"The number {text[:40]} is too large: send it as a string.")
    return number


def _no_constant(name: str) -> None:
    raise JsonInputError(f"{name} is not a JSON number: send null or a string.")


def check_storable(value: Any, root: str = "$") -> None:
    """JsonInputError when `value` (already parsed) has a NUL anywhere or nests deeper than allowed."""
    limit = max_depth()
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, str):
            if _NOT_TEXT.search(current):
                raise JsonInputError(not_text(path, current))
            continue
        if not isinstance(current, dict | list):
            continue
        if depth >= limit:
            raise JsonInputError(too_deep(path))
        if isinstance(current, dict):
            for key, child in current.items():
                child_path = child_path_of(path, key)
                if _NOT_TEXT.search(key):
                    raise JsonInputError(not_text(child_path, key, in_key=True))
                stack.append((child, child_path, depth + 1))
        else:
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(current))


def child_path_of(path: str, key: str) -> str:
    """`$.name` for plain keys, `$["odd key"]` (JSON-escaped, so a NUL shows as \\u0000) for the rest."""
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{json.dumps(key)}]"


def not_text(path: str, text: str, *, in_key: bool = False) -> str:
    where = f"The key {path}" if in_key else f"The value at {path}"
    if NUL in text:
        return f"{where} contains a NUL character (\\u0000), which cannot be stored: remove it."
    return f"{where} contains half a surrogate pair (\\ud800-\\udfff alone), which is not text: remove it."


def too_deep(path: str) -> str:
    if len(path) > 80:
        path = f"{path[:60]}…{path[-15:]}"
    return (
        f"The JSON nests deeper than {max_depth()} levels (at {path}): "
        f"flatten it (JSON_MAX_DEPTH is the limit)."
    )


class StorableJSONFormField(forms.JSONField):
    """Django's JSON form field (the admin's), with the same checks: a form error, not a 500."""

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise forms.ValidationError(too_deep("$")) from None
        try:
            check_storable(converted)
        except JsonInputError as exc:
            raise forms.ValidationError(str(exc)) from None
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)  # shown back as typed, like any invalid JSON
