"""Template filters of the activity log."""

from __future__ import annotations

import json
from typing import Any

from django import template

from integrations.channels.registry import CHANNELS
from integrations.failures import DETAILS
from runs.views.presenting import attempt_rows

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON (autoescaped by the template), as a person would write it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def error_words(text: str) -> tuple[str, str]:
    """(plain words, raw text) of a failure's message (integrations/failures.py DETAILS); a message
    without raw text is its own words."""
    words, _, raw = str(text or "").partition(DETAILS)
    return words, raw


@register.filter
def cell_text(value: Any) -> str:
    """A value in a table cell: text as it is, objects and lists as compact JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


@register.filter
def short_text(text: str, limit: int = 60) -> str:
    """At most `limit` characters, cut after a whole word (or mid-word only when one word is longer)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


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
def delivery_content_templates(channel: str) -> list[str]:
    """How a message of this channel is shown: runs/delivery_content/<channel>.html by convention,
    else its content as JSON (a channel without a template of its own)."""
    return [f"runs/delivery_content/{channel}.html", "runs/delivery_content/any.html"]


@register.filter
def reports_events(channel: str) -> bool:
    """Whether the provider may report what happened to a sent message of this channel (a timeline)."""
    registered = CHANNELS.get(channel)
    return registered is not None and registered.reports_events


@register.filter
def attempt_history(execution) -> list[dict[str, Any]]:
    """The execution's last attempts, newest first (runs/views/presenting.py `attempt_rows`)."""
    return attempt_rows(execution)
