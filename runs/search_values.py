"""Search by payload field: what a run's searchable fields (workflows/steps/search_fields.py) store, and
how a typed value is turned into the same stored form.

Odd shapes, decided once here for storing and searching alike:
- a path the item lacks (or null): nothing is stored, the run is not found by that field;
- a list: each of its scalars (up to MAX_LIST_VALUES, repeats once), so `item.tags` finds a run by any tag;
- an object (or a list inside the list): nothing, an object is not a value one types;
- numbers and booleans: their JSON text (42, 1.5, true), so typing 42 finds 42 and "42";
- text longer than MAX_VALUE characters: "sha256:" and its digest (typing the whole text still finds it);
- a `hashed` field: an HMAC-SHA256 (SEARCH_HASH_KEY, else SECRET_KEY) of the tenant, the path and the text,
  so the same address in two tenants gives two unrelated values.
Values are matched exactly (case and spaces count).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings

from runs.models import Run, RunSearchValue
from workflows.steps.search_fields import SearchField

MAX_VALUE = 200
MAX_LIST_VALUES = 20
LONG_PREFIX = "sha256:"


def scalar_text(value: Any) -> str | None:
    """The text a scalar is searched by; None for null, an object or a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def values_at(item: Any, path: str) -> list[str]:
    """The texts at `path` (item.a.b) of an item: none, one, or one per scalar of a list."""
    node = item
    for key in path.split(".")[1:]:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return []
    candidates = node if isinstance(node, list) else [node]
    texts: list[str] = []
    for candidate in candidates:
        text = scalar_text(candidate)
        if text is not None and text not in texts:
            texts.append(text)
        if len(texts) == MAX_LIST_VALUES:
            break
    return texts


def stored_value(tenant_id: int, field: SearchField, text: str) -> str:
    """What the table holds for `text` of `field` (and what a search for it looks up)."""
    if field.hashed:
        key = (settings.SEARCH_HASH_KEY or settings.SECRET_KEY).encode()
        message = f"{tenant_id}\x00{field.path}\x00{text}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    if len(text) > MAX_VALUE:
        return LONG_PREFIX + hashlib.sha256(text.encode()).hexdigest()
    return text


def search_rows(run: Run, fields: Iterable[SearchField]) -> list[RunSearchValue]:
    """The rows of one run's searchable values (unsaved)."""
    created_at: datetime = run.created_at
    return [
        RunSearchValue(
            tenant_id=run.tenant_id,
            workflow_id=run.workflow_id,
            run=run,
            field=field.path,
            hashed=field.hashed,
            value=stored_value(run.tenant_id, field, text),
            created_at=created_at,
        )
        for field in fields
        for text in values_at(run.payload, field.path)
    ]


def record_search_values(runs: Iterable[Run], fields: list[SearchField]) -> None:
    """Store the runs' searchable values (a run started again stores nothing new)."""
    if not fields:
        return
    rows = [row for run in runs for row in search_rows(run, fields)]
    RunSearchValue.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
