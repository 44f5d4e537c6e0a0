"""Template filters of the activity log."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON (autoescaped by the template), as a person would write it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def delivery_summary(content: dict[str, Any]) -> str:
    """One line of a message: an email's subject, a Slack text, an HTTP call."""
    if not isinstance(content, dict):
        return ""
    if content.get("subject"):
        return str(content["subject"])
    if content.get("method") and content.get("url"):
        return f"{content['method']} {content['url']}"
    return str(content.get("text") or "")


@register.filter
def delivery_templates(channel: str) -> list[str]:
    """The template that draws a message of this channel, runs/delivery/<channel>.html, else the
    plain JSON one (for `{% include %}`, which takes the first that exists)."""
    return [f"runs/delivery/{channel}.html", "runs/delivery/other.html"]


@register.filter
def attempt_history(execution) -> list[dict[str, Any]]:
    """The execution's last attempts, newest first (runs/views/presenting.py `attempt_rows`)."""
    from runs.views.presenting import attempt_rows

    return attempt_rows(execution)
