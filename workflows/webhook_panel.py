"""What the builder shows for a webhook trigger: the URL to POST to, the signing secret (revealed, copied and
rotated by admins) and a curl example that signs its body. The test event goes through the real endpoint
(runs/webhooks.py `send_test_event`)."""

from __future__ import annotations

import json
import shlex

from django.http import HttpRequest

from integrations.inbound import IDEMPOTENCY_HEADER
from integrations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from workflows.steps.webhook_trigger import webhook_path

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
