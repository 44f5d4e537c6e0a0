"""What the builder shows for a webhook trigger: the URL to POST to, the signing secret (revealed, copied and
rotated by admins), a curl example that signs its body, and a test event sent through the real endpoint."""

from __future__ import annotations

import json
import shlex
import uuid
from dataclasses import dataclass

from django.http import HttpRequest

from workflows.models import Workflow
from workflows.steps.webhook_trigger import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_headers,
    webhook_path,
)

SECRET_VARIABLE = "ROWBELL_WEBHOOK_SECRET"
EXAMPLE_BODY = {"email": "ada@example.com", "name": "Ada"}


def webhook_url(request: HttpRequest, workflow_id: int) -> str:
    return request.build_absolute_uri(webhook_path(workflow_id))


def example_body(sample: dict | None) -> str:
    return json.dumps(sample or EXAMPLE_BODY, separators=(",", ":"), ensure_ascii=False)


def curl_example(url: str, body: str) -> str:
    """A shell script that signs `body` with the secret in $ROWBELL_WEBHOOK_SECRET and POSTs it: the same
    HMAC-SHA256 of "<timestamp>.<body>" the endpoint checks (workflows/steps/webhook_trigger.py)."""
    return "\n".join(
        [
            f"# Set {SECRET_VARIABLE} to the workflow's signing secret first.",
            f"BODY={shlex.quote(body)}",
            "TS=$(date +%s)",
            f'SIG=$(printf \'%s.%s\' "$TS" "$BODY" | openssl dgst -sha256 -hmac "${SECRET_VARIABLE}" -r | cut -d" " -f1)',
            f"curl -sS -X POST {shlex.quote(url)} \\",
            "  -H 'Content-Type: application/json' \\",
            f'  -H "{TIMESTAMP_HEADER}: $TS" \\',
            f'  -H "{SIGNATURE_HEADER}: sha256=$SIG" \\',
            f"  -H '{IDEMPOTENCY_HEADER}: your-event-id-1' \\",
            '  --data-binary "$BODY"',
        ]
    )


@dataclass
class TestEventResult:
    status: int
    detail: str
    run_id: int | None = None


def send_test_event(workflow: Workflow, body: str) -> TestEventResult:
    """POST `body`, signed with the workflow's secret, through the webhook endpoint's own code (in this
    process: an HTTP request to ourselves could wait for the very worker that is serving this one)."""
    from django.test import RequestFactory

    from integrations.webhooks import WebhookView

    raw = body.encode()
    headers = {**signature_headers(workflow.webhook_secret, raw), IDEMPOTENCY_HEADER: f"test-{uuid.uuid4()}"}
    request = RequestFactory().post(
        webhook_path(workflow.pk), data=raw, content_type="application/json", headers=headers
    )
    response = WebhookView.as_view()(request, workflow_id=workflow.pk)
    data = getattr(response, "data", {}) or {}
    return TestEventResult(response.status_code, str(data.get("detail", "")), data.get("run_id"))
