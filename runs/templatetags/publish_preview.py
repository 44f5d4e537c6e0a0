"""Filters of the publish dialog: numbers with thousands separators, and a diff line's kind."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def thousands(value: Any) -> str:
    """1284 → "1,284"; anything else as it is."""
    return f"{value:,}" if isinstance(value, int) else str(value)


@register.filter
def diff_kind(line: str) -> str:
    """The CSS class of a unified diff line: added, removed, hunk or context."""
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    if line.startswith("@@"):
        return "diff-hunk"
    return "diff-same"


@register.filter
def arrow(pair: Any) -> str:
    """(before, after) → "4 → 2", or "4" when equal."""
    before, after = pair
    return f"{before:,}" if before == after else f"{before:,} → {after:,}"
