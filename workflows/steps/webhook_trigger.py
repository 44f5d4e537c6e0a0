"""Webhook trigger: a signed POST to /hooks/<workflow id>/ starts a run with the JSON body as the item."""

from __future__ import annotations

from typing import Any

from workflows.steps import register
from workflows.steps.base import ConfigError, StepKind


@register
class WebhookTrigger(StepKind):
    kind = "webhook_trigger"
    label = "Webhook trigger"
    description = "Starts a run when a signed JSON body is POSTed to the workflow's webhook URL."
    is_trigger = True

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        sample = config.get("sample", {})
        if not isinstance(sample, dict):
            raise ConfigError({"sample": 'The sample body must be a JSON object, like {"email": "a@b.c"}.'})
        return {"sample": sample}
