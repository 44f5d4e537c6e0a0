"""Condition: a sandboxed Jinja2 expression over the item; true passes the item on, false ends the path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.failures import Failure
from integrations.templating import TemplateError, evaluate
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.context import StepContext
from workflows.steps.fields import ExpressionField
from workflows.steps.forms import StepForm, StepSettings


@dataclass
class ConditionSettings(StepSettings):
    expression: str = "true"


class ConditionForm(StepForm):
    settings_class = ConditionSettings

    expression = ExpressionField(
        label="Expression",
        help_text="Jinja2 expression over `item`, e.g. item.onboarded_at is none or item.plan == 'pro'.",
    )


class Condition(StepKind):
    kind = "condition"
    label = "Condition"
    description = "Continues only for items where the expression is true."
    form_class = ConditionForm

    def default_config(self) -> dict[str, Any]:
        return {"expression": "true"}

    def summary(self, config: dict[str, Any]) -> str:
        return f"only if {config.get('expression') or '?'}"

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        expression = self.step_settings(ctx).expression
        passed = bool(evaluate(expression, {"item": item, "run": ctx.run_context}))
        return StepPreview(shows="condition", passed=passed)

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            expression = self.step_settings(ctx).expression
            passed = evaluate(expression, {"item": item, "run": ctx.run_context})
        except TemplateError as exc:
            raise Failure(f"Condition: {exc}", permanent=True) from exc
        return [item] if passed else []
