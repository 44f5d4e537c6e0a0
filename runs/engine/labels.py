"""A run's label: whom the run is about, rendered once from the trigger's `run_label` template.

Empty template: the item's `email`, else its `name`, else the first field whose name says it names
someone (`full_name`, `work_email`). A template that fails on an item (an unknown
variable) falls back to the same default rather than stopping the run: the label is for people reading
the activity log, and the run itself must not depend on it.
"""

from __future__ import annotations

from typing import Any

from integrations.templating import TemplateError, render

MAX_LABEL = 200
DEFAULT_FIELDS = ("email", "name")


def default_label(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    for key in DEFAULT_FIELDS:
        if is_plain(item.get(key)):
            return str(item[key])
    for key, value in item.items():
        if is_plain(value) and any(word in str(key).lower() for word in DEFAULT_FIELDS):
            return str(value)
    return ""


def is_plain(value: Any) -> bool:
    """Text or a number a person can read as a label (not an object, a list, a boolean or empty)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def run_label(template: str, item: dict[str, Any]) -> str:
    text = ""
    if template:
        try:
            text = render(template, {"item": item}).strip()
        except TemplateError:
            text = ""
    return " ".join((text or default_label(item)).split())[:MAX_LABEL]
