"""A signed JSON body starts a run of a published webhook workflow: `receive_webhook`, which the endpoint
`POST /hooks/<workflow id>/` (runs/views/webhook.py) and the builder's "send a test event" both call.

Refusals are `InboundRejected(status, detail)`: 400 when the body is not a JSON object (or the
idempotency key is too long, or has a NUL character, or nests too deep); 401 for a missing, bad or stale
signature (integrations/signing.py); 404 for an unknown workflow, one that is not published, or one whose
trigger is not a webhook; 409 for a signature already accepted (a replay: integrations/webhook_replay.py);
413 when the body exceeds WEBHOOK_MAX_BODY_BYTES (the view reads it).
The signature is checked before the body is parsed, and nothing is written unless every check passes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from integrations.inbound import IDEMPOTENCY_HEADER, InboundRejected, event_key, parse_object
from integrations.signing import BadSignature, signature_headers, verify_signature
from integrations.webhook_replay import remember_signature
from runs.engine import start_run
from workflows.models import Workflow


@dataclass
class WebhookAccepted:
    run_id: int
    event_key: str


def receive_webhook(workflow_id: int, body: bytes, headers: Mapping[str, str]) -> WebhookAccepted:
    """Start the run a signed `body` asks for; InboundRejected says why not."""
    workflow = _published_webhook_workflow(workflow_id)
    try:
        signature, timestamp = verify_signature(headers, workflow.webhook_secret, body)
    except BadSignature as exc:
        raise InboundRejected(401, str(exc)) from None
    payload = parse_object(body)
    key = event_key(headers, "webhook")
    keyed = bool(headers.get(IDEMPOTENCY_HEADER, "").strip())
    remember_signature(workflow.pk, signature, timestamp, key, keyed)
    run = start_run(workflow, payload, key)
    return WebhookAccepted(run.pk, key)


def _published_webhook_workflow(workflow_id: int) -> Workflow:
    workflow = (
        Workflow.objects.filter(
            pk=workflow_id, status=Workflow.Status.ACTIVE, published_version__isnull=False
        )
        .select_related("published_version")
        .first()
    )
    root = workflow.published_version.root_step() if workflow else None
    if workflow is None or root is None or not root.step_kind.receives_webhooks:
        raise InboundRejected(404, "No published workflow with a webhook trigger has this id.")
    return workflow


@dataclass
class TestEventResult:
    status: int
    detail: str
    run_id: int | None = None


def send_test_event(workflow: Workflow, body: str) -> TestEventResult:
    """`body`, signed with the workflow's secret, through what the webhook endpoint does (in this process:
    an HTTP request to ourselves could wait for the very worker that is serving this one)."""
    raw = body.encode()
    headers = {**signature_headers(workflow.webhook_secret, raw), IDEMPOTENCY_HEADER: f"test-{uuid.uuid4()}"}
    try:
        accepted = receive_webhook(workflow.pk, raw, headers)
    except InboundRejected as rejected:
        return TestEventResult(rejected.status_code, rejected.detail)
    return TestEventResult(202, "", accepted.run_id)
