"""Helpers shared by the engine's step kinds: retry settings and template checks in validation."""

from __future__ import annotations

from typing import Any

from integrations.templating import validate_expression, validate_template
from workflows.steps.base import Field

RUN_LABEL_FIELD = Field(
    "run_label",
    "Run label",
    widget="template",
    help="Whom a run is about, shown and searched in the activity log, e.g. {{ item.email }}. "
    "Empty: the item's email, else its name.",
)

RETRY_FIELDS = (
    Field(
        "max_attempts",
        "Attempts",
        widget="number",
        help="How many times to try before failing (default 10). Only temporary errors are retried.",
    ),
    Field(
        "retry_base_seconds",
        "First retry after (s)",
        widget="number",
        help="The first retry waits up to this long (default 2); each later one up to 3× longer, at most 1 h.",
    ),
)


def clean_retry(config: dict[str, Any], errors: dict[str, str], cleaned: dict[str, Any]) -> None:
    """Copy valid retry settings into `cleaned`, recording a message for each bad one."""
    attempts = config.get("max_attempts")
    if attempts not in (None, ""):
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 50:
            errors["max_attempts"] = "Attempts must be a whole number from 1 to 50."
        else:
            cleaned["max_attempts"] = attempts
    base = config.get("retry_base_seconds")
    if base not in (None, ""):
        if not isinstance(base, int | float) or isinstance(base, bool) or not 0 < base <= 3600:
            errors["retry_base_seconds"] = "The first retry delay must be a number of seconds from 0 to 3600."
        else:
            cleaned["retry_base_seconds"] = base


def clean_template(
    config: dict[str, Any], field: str, errors: dict[str, str], cleaned: dict[str, Any], required: bool
) -> None:
    """A template field: required or not, and free of syntax errors (reported with the line)."""
    value = config.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = "This field is required."
        else:
            cleaned[field] = ""
        return
    if not isinstance(value, str):
        errors[field] = "This must be text."
        return
    problem = validate_template(value)
    if problem:
        errors[field] = f"Template error on line {problem.line}: {problem.message}"
    else:
        cleaned[field] = value


def clean_expression(
    config: dict[str, Any], field: str, errors: dict[str, str], cleaned: dict[str, Any]
) -> None:
    value = config.get(field)
    if not isinstance(value, str) or not value.strip():
        errors[field] = "Write an expression over the item, like item.plan == 'pro'."
        return
    problem = validate_expression(value)
    if problem:
        errors[field] = f"Expression error: {problem.message}"
    else:
        cleaned[field] = value.strip()


def clean_run_label(config: dict[str, Any], errors: dict[str, str], cleaned: dict[str, Any]) -> None:
    """A trigger's optional run label template; kept out of the config while empty (the default)."""
    clean_template(config, "run_label", errors, cleaned, required=False)
    if not cleaned.get("run_label"):
        cleaned.pop("run_label", None)
