"""Filters for the builder's templates."""

from __future__ import annotations

from typing import Any

from django import template

from workflows.steps import ConfigError, get_kind

register = template.Library()


@register.filter
def kind_label(kind: str) -> str:
    try:
        return get_kind(kind).label
    except ConfigError:
        return kind


@register.filter
def lookup(mapping: dict, key: Any) -> Any:
    return mapping.get(key) if mapping else None


@register.filter
def variable(name: str) -> str:
    """The placeholder the variable picker inserts."""
    return "{{ item." + name + " }}" if name.isidentifier() else "{{ item[" + repr(name) + "] }}"


@register.filter
def expression_variable(name: str) -> str:
    """What a chip inserts into a condition: the expression itself, without the braces."""
    return "item." + name if name.isidentifier() else "item[" + repr(name) + "]"
