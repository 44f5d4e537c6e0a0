"""Which path of its parent a step sits on: a branch's children each name one of the branch's paths."""

from __future__ import annotations

from workflows.models import Step
from workflows.steps import ConfigError, get_kind


def path_problem(parent: Step | None, on_path: str) -> str:
    """Why a child cannot sit on `on_path` under `parent`, in words, or "" when it can."""
    if parent is None:
        return "The trigger sits on no path." if on_path else ""
    try:
        paths = dict(get_kind(parent.kind).paths(parent.config))
    except ConfigError:
        return ""  # the parent's own error is reported on the parent
    if not paths:
        return f"“{parent.display_name}” has no paths; leave out “path”." if on_path else ""
    if on_path not in paths:
        choices = ", ".join(f"{pid} ({label})" for pid, label in paths.items())
        return f"Under “{parent.display_name}” every step is on one of its paths: {choices}."
    return ""
