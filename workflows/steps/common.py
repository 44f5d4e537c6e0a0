"""Fields and settings shared by the step kinds: the run label of triggers and the retry settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms

from workflows.steps.fields import NumberField, TemplateField
from workflows.steps.forms import StepSettings

RETRY_NAMES = ("max_attempts", "retry_base_seconds")


def run_label_field() -> TemplateField:
    return TemplateField(
        label="Run label",
        help_text="Whom a run is about, shown and searched in the activity log, e.g. {{ item.email }}. "
        "Empty: the item's email, else its name.",
    )


def cancel_key_field() -> TemplateField:
    return TemplateField(
        label="Cancel key",
        help_text="Names what a run is about, so its runs can be cancelled together later, e.g. "
        "order:{{ item.id }} (REST API: POST /api/v1/workflows/<id>/cancel/ with that key). Empty: none.",
    )


class BoundedNumberField(NumberField):
    """A number that `accepts` takes, with one message that says which."""

    def __init__(self, accepts: Callable[[Any], bool], message: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.accepts, self.message = accepts, message

    def to_python(self, value: Any) -> Any:
        try:
            number = super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(self.message) from None
        if number is None:
            return None
        if not self.accepts(number):
            raise forms.ValidationError(self.message)
        return number


class RetryForm(forms.Form):
    """The retry settings of a step that can fail for a while (a query, a send); folded in the panel."""

    advanced: ClassVar[tuple[str, ...]] = RETRY_NAMES

    max_attempts = BoundedNumberField(
        lambda n: isinstance(n, int) and 1 <= n <= 50,
        "Attempts must be a whole number from 1 to 50.",
        label="Attempts",
        help_text="How many times to try before failing (default 10). Only temporary errors are retried.",
    )
    retry_base_seconds = BoundedNumberField(
        lambda n: 0 < n <= 3600,
        "The first retry delay must be a number of seconds from 0 to 3600.",
        label="First retry after (s)",
        help_text="The first retry waits up to this long (default 2); each later one up to 3× longer, at most 1 h.",
    )


@dataclass(kw_only=True)
class RetrySettings(StepSettings):
    """Retry settings; None is the engine's default (runs/engine/retries.py)."""

    omitted_when_empty: ClassVar[tuple[str, ...]] = RETRY_NAMES

    max_attempts: int | None = None
    retry_base_seconds: float | None = None
