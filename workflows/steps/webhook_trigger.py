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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms

from workflows.steps.base import StepKind
from workflows.steps.common import cancel_key_field, run_label_field
from workflows.steps.fields import JsonField
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.search_fields import SearchFieldsField

if TYPE_CHECKING:
    from workflows.models import Step


def webhook_path(workflow_id: int) -> str:
    """The path to POST to (prefix it with the site's origin)."""
    return f"/hooks/{int(workflow_id)}/"


@dataclass
class WebhookSettings(StepSettings):
    omitted_when_empty = ("run_label", "cancel_key", "search_fields")

    sample: dict[str, Any] = field(default_factory=dict)
    run_label: str = ""
    cancel_key: str = ""
    search_fields: list[dict[str, Any]] = field(default_factory=list)


class WebhookForm(StepForm):
    settings_class = WebhookSettings

    sample = JsonField(
        label="Sample body",
        required=False,
        help_text='An example of what you will POST, like {"email": "a@b.c"}; test runs and previews start from it.',
    )
    run_label = run_label_field()
    cancel_key = cancel_key_field()
    search_fields = SearchFieldsField()

    def clean_sample(self) -> dict[str, Any]:
        sample = self.cleaned_data["sample"]
        if sample is None:
            return {}
        if not isinstance(sample, dict):
            raise forms.ValidationError('The sample body must be a JSON object, like {"email": "a@b.c"}.')
        return sample


class WebhookTrigger(StepKind):
    kind = "webhook_trigger"
    label = "Webhook trigger"
    description = "Starts a run when a signed JSON body is POSTed to the workflow's webhook URL."
    is_trigger = True
    receives_webhooks = True
    form_class = WebhookForm

    def default_config(self) -> dict[str, Any]:
        return {"sample": {}}

    def summary(self, config: dict[str, Any]) -> str:
        return "when a signed JSON body is POSTed"

    def node_summary(self, step: Step) -> str:
        # Where to POST, at a glance; the full URL, secret and curl are in the panel.
        return f"POST {webhook_path(step.version.workflow_id)}"

    def sample_item(self, config: dict[str, Any]) -> dict[str, Any]:
        sample = config.get("sample")
        return dict(sample) if isinstance(sample, dict) else {}

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
        # A sample that does not validate is kept as typed (a string): it has no fields yet.
        return list(self.sample_item(step.config))
