"""Searchable fields of a workflow: paths into the trigger's item (`item.account_id`) whose values are
copied, when a run starts, into a narrow indexed table (runs.models.RunSearchValue), so the activity log
finds a tenant's runs by field = value without reading their payloads.

Declared on the trigger, next to the run label and the cancel key (so they are versioned, published and
carried by workflow files with the rest of the workflow): in the builder's panel one path a line, with
`hashed` after a path whose values are personal data (stored and searched as an HMAC, never as text):

    item.account_id
    item.customer.email hashed

In a workflow file: `"search_fields": [{"path": "item.account_id"}, {"path": "item.email", "hashed": true}]`
(a bare string is a path that is not hashed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms

from workflows.steps.widgets import LinesArea

MAX_FIELDS = 5
MAX_PATH = 100
# `item.` then up to five keys of letters, digits, `_` or `-` (a number indexes a list: item.tags.0).
PATH_PATTERN = re.compile(r"item(\.[A-Za-z0-9_-]{1,64}){1,5}")
HASHED_WORD = "hashed"


@dataclass(frozen=True)
class SearchField:
    path: str
    hashed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "hashed": True} if self.hashed else {"path": self.path}

    def as_line(self) -> str:
        return f"{self.path} {HASHED_WORD}" if self.hashed else self.path


def _from_line(line: str) -> SearchField:
    words = line.split()
    if len(words) == 2 and words[1].lower() == HASHED_WORD:
        return _checked(words[0], True)
    if len(words) != 1:
        raise forms.ValidationError(
            f"“{line[:80]}”: write one path a line, like item.account_id, with “hashed” after it to hash it."
        )
    return _checked(words[0], False)


def _from_json(entry: Any) -> SearchField:
    if isinstance(entry, str):
        return _from_line(entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise forms.ValidationError('Each searchable field is a path, or {"path": "item.x", "hashed": true}.')
    unknown = set(entry) - {"path", "hashed"}
    if unknown:
        raise forms.ValidationError(
            f"A searchable field takes only path and hashed, not {sorted(unknown)[0]}."
        )
    hashed = entry.get("hashed", False)
    if not isinstance(hashed, bool):
        raise forms.ValidationError(f"“hashed” of {entry['path'][:80]} must be true or false.")
    return _checked(entry["path"], hashed)


def _checked(path: str, hashed: bool) -> SearchField:
    if len(path) > MAX_PATH or not PATH_PATTERN.fullmatch(path):
        raise forms.ValidationError(
            f"“{path[:80]}” is not a path into the item: write item. and up to five keys, like "
            "item.account_id or item.customer.id."
        )
    return SearchField(path, hashed)


def parse_search_fields(value: Any) -> list[SearchField]:
    """The declared fields of a posted text (one a line) or a file's list; ValidationError says what is
    wrong. A path given twice is refused (its two entries would contradict or repeat each other)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        declared = [_from_line(line.strip()) for line in value.splitlines() if line.strip()]
    elif isinstance(value, list):
        declared = [_from_json(entry) for entry in value]
    else:
        raise forms.ValidationError("Searchable fields are a list of paths, like item.account_id.")
    if len(declared) > MAX_FIELDS:
        raise forms.ValidationError(f"At most {MAX_FIELDS} searchable fields a workflow.")
    paths = [field.path for field in declared]
    twice = next((path for path in paths if paths.count(path) > 1), None)
    if twice:
        raise forms.ValidationError(f"{twice} is declared twice.")
    return declared


def declared_search_fields(config: Any) -> list[SearchField]:
    """What a stored trigger config declares, for the engine and the activity log: a config that does not
    read (an old or hand-edited one) declares nothing rather than stopping runs."""
    try:
        return parse_search_fields((config or {}).get("search_fields"))
    except forms.ValidationError:
        return []


class SearchFieldsField(forms.Field):
    """The panel's text (one path a line) or a file's list; stored as a list of {"path", "hashed"}."""

    widget = LinesArea

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Searchable fields")
        kwargs.setdefault(
            "help_text",
            "Item fields to find runs by in the activity log, one a line, like item.account_id. "
            "Add “hashed” after personal data (item.email hashed): only an HMAC is stored, and the search "
            "hashes what you type the same way.",
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        return [field.as_json() for field in parse_search_fields(value)]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            try:
                return "\n".join(field.as_line() for field in parse_search_fields(value))
            except forms.ValidationError:
                return value
        return value
