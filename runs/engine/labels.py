"""A run's label: whom the run is about, rendered once from the trigger's `run_label` template.

Empty template: the item's `email`, else its `name`. A template that fails on an item (an unknown
variable) falls back to the same default rather than stopping the run: the label is for people reading
the activity log, and the run itself must not depend on it.
"""

from __future__ import annotations

from typing import Any

from integrations.templating import TemplateError, render

MAX_LABEL = 200
DEFAULT_FIELDS = ("email", "name")


def default_label(item: dict[str, Any]) -> str:
    for name in DEFAULT_FIELDS:
        value = item.get(name) if isinstance(item, dict) else None
        if value not in (None, ""):
            return str(value)
    return ""


def run_label(template: str, item: dict[str, Any]) -> str:
    text = ""
    if template:
        try:
            text = render(template, {"item": item}).strip()
        except TemplateError:
            text = ""
    return " ".join((text or default_label(item)).split())[:MAX_LABEL]
