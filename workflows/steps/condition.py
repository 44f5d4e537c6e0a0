"""Condition: a sandboxed Jinja2 expression over the item; true passes the item on, false ends the path."""

from __future__ import annotations

from typing import Any

from integrations.failures import Failure
from integrations.templating import TemplateError, evaluate
from workflows.steps.base import ConfigError, Field, StepKind, StepPreview
from workflows.steps.common import clean_expression
from workflows.steps.context import StepContext


class Condition(StepKind):
    kind = "condition"
    label = "Condition"
    description = "Continues only for items where the expression is true."
    fields = (
        Field(
            "expression",
            "Expression",
            widget="expression",
            required=True,
            help="Jinja2 expression over `item`, e.g. item.onboarded_at is none or item.plan == 'pro'.",
        ),
    )

    def default_config(self) -> dict[str, Any]:
        return {"expression": "true"}

    def summary(self, config: dict[str, Any]) -> str:
        return f"only if {config.get('expression') or '?'}"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        clean_expression(config, "expression", errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        passed = bool(evaluate(ctx.step.config["expression"], {"item": item, "run": ctx.run_context}))
        return StepPreview(shows="condition", passed=passed)

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            passed = evaluate(ctx.step.config["expression"], {"item": item, "run": ctx.run_context})
        except TemplateError as exc:
            raise Failure(f"Condition: {exc}", permanent=True) from exc
        return [item] if passed else []
