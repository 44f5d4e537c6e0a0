"""Webhook trigger: a signed POST to /hooks/<workflow id>/ starts a run with the JSON body as the item.

Signing (runs/webhooks.py checks it): send the headers

    X-Rowbell-Timestamp: <unix time in seconds>
    X-Rowbell-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed by the workflow's secret>

and optionally `Idempotency-Key: <your event id>` (the run's event key becomes `webhook:<key>`, so the
same key twice starts one run). `integrations.signing.signature_headers(secret, body)` builds the headers
(integrations/signing.py, shared with the events Rowbell sends); the secret is `Workflow.webhook_secret`.
Config: `sample`, an example body: the builder's variable picker and curl example, "Send test event", and the first item of the test page and of step previews (`sample_item`).
"""

from __future__ import annotations

from typing import Any

from workflows.steps.base import ConfigError, Field, StepKind
from workflows.steps.common import RUN_LABEL_FIELD, clean_run_label


def webhook_path(workflow_id: int) -> str:
    """The path to POST to (prefix it with the site's origin)."""
    return f"/hooks/{int(workflow_id)}/"


class WebhookTrigger(StepKind):
    kind = "webhook_trigger"
    label = "Webhook trigger"
    description = "Starts a run when a signed JSON body is POSTed to the workflow's webhook URL."
    is_trigger = True
    receives_webhooks = True
    fields = (
        Field(
            "sample",
            "Sample body",
            widget="json",
            default={},
            help='An example of what you will POST, like {"email": "a@b.c"}; test runs and previews start from it.',
        ),
        RUN_LABEL_FIELD,
    )

    def default_config(self) -> dict[str, Any]:
        return {"sample": {}}

    def summary(self, config: dict[str, Any]) -> str:
        return "when a signed JSON body is POSTed"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        sample = config.get("sample", {})
        if not isinstance(sample, dict):
            errors["sample"] = 'The sample body must be a JSON object, like {"email": "a@b.c"}.'
        cleaned: dict[str, Any] = {"sample": sample}
        clean_run_label(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def sample_item(self, config: dict[str, Any]) -> dict[str, Any]:
        sample = config.get("sample")
        return dict(sample) if isinstance(sample, dict) else {}

    def output_fields(self, step, input_fields: list[str]) -> list[str]:
        # A sample that does not validate is kept as typed (a string): it has no fields yet.
        return list(self.sample_item(step.config))
