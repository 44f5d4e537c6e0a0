"""`POST /hooks/<workflow id>/`: a signed JSON body starts a run of a published webhook workflow.

Answers: 202 `{"run_id", "event_key"}`; 400 when the body is not a JSON object (or the idempotency key
is too long, or has a NUL character, or nests too deep); 401 for a missing, bad or stale signature; 404
for an unknown workflow, one that is not published, or one whose trigger is not a webhook; 409 for a
signature already accepted (a replay: integrations/webhook_replay.py); 413 when the body exceeds
WEBHOOK_MAX_BODY_BYTES.
The signature is checked before the body is parsed, and nothing is written unless every check passes.
How to sign: workflows/steps/webhook_trigger.py. `send_test_event` is the builder's "send a test event".
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.test import RequestFactory
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_schema_components import IDEMPOTENCY_KEY, JSON_OBJECT
from integrations.inbound import IDEMPOTENCY_HEADER, InboundRejected, event_key, parse_object, read_body
from integrations.webhook_replay import remember_signature
from runs.engine import start_run
from workflows.models import Workflow
from workflows.steps.webhook_trigger import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
    webhook_path,
)

DETAIL = inline_serializer("WebhookError", {"detail": serializers.CharField()})
HEADER = OpenApiParameter.HEADER


class WebhookView(APIView):
    authentication_classes = []  # the HMAC signature is the authentication
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Start a run of a webhook-triggered workflow",
        request={"application/json": JSON_OBJECT},
        parameters=[
            OpenApiParameter(TIMESTAMP_HEADER, str, HEADER, required=True, description="Unix time, seconds"),
            OpenApiParameter(
                SIGNATURE_HEADER, str, HEADER, required=True, description='sha256=HMAC(secret, "<ts>.<body>")'
            ),
            OpenApiParameter(
                IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY, HEADER, description="Your event id: one run per key"
            ),
        ],
        responses={
            202: inline_serializer(
                "WebhookAccepted",
                {"run_id": serializers.IntegerField(), "event_key": serializers.CharField()},
            ),
            400: OpenApiResponse(DETAIL, description="The body is not a JSON object Rowbell can store"),
            401: OpenApiResponse(DETAIL, description="Missing, bad or stale signature"),
            404: OpenApiResponse(DETAIL, description="No published webhook workflow with this id"),
            409: OpenApiResponse(DETAIL, description="This signature was already accepted (a replay)"),
            413: OpenApiResponse(DETAIL, description="Body over WEBHOOK_MAX_BODY_BYTES"),
            503: OpenApiResponse(DETAIL, description="Replays cannot be checked now (Redis): retry"),
        },
    )
    def post(self, request, workflow_id: int) -> Response:
        try:
            workflow = _published_webhook_workflow(workflow_id)
            body = read_body(request)
            signature, timestamp = _verify_signature(request, workflow.webhook_secret, body)
            payload = parse_object(body)
            key = event_key(request, "webhook")
            keyed = bool(request.headers.get(IDEMPOTENCY_HEADER, "").strip())
            remember_signature(workflow.pk, signature, timestamp, key, keyed)
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        run = start_run(workflow, payload, key)
        return Response({"run_id": run.pk, "event_key": key}, status=status.HTTP_202_ACCEPTED)


def _published_webhook_workflow(workflow_id: int) -> Workflow:
    workflow = (
        Workflow.objects.filter(
            pk=workflow_id, status=Workflow.Status.ACTIVE, published_version__isnull=False
        )
        .select_related("published_version")
        .first()
    )
    root = workflow.published_version.root_step() if workflow else None
    if root is None or not root.step_kind.receives_webhooks:
        raise InboundRejected(404, "No published workflow with a webhook trigger has this id.")
    return workflow


def _verify_signature(request, secret: str, body: bytes) -> tuple[str, int]:
    """(signature, timestamp) when the request is signed with the secret, recently; else 401."""
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise InboundRejected(
            401, f"Missing signature: send the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers."
        )
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise InboundRejected(401, f"{TIMESTAMP_HEADER} must be a Unix time in seconds.") from None
    tolerance = getattr(settings, "WEBHOOK_TIMESTAMP_TOLERANCE", 300)
    if age > tolerance:
        raise InboundRejected(
            401,
            f"The timestamp is {int(age)} s away from now (more than {tolerance} s): sign the request again.",
        )
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise InboundRejected(
            401,
            "Bad signature: HMAC-SHA256 the text '<timestamp>.<body>' with the workflow's webhook secret.",
        )
    return expected, int(timestamp)


@dataclass
class TestEventResult:
    status: int
    detail: str
    run_id: int | None = None


def send_test_event(workflow: Workflow, body: str) -> TestEventResult:
    """POST `body`, signed with the workflow's secret, through the webhook endpoint's own code (in this
    process: an HTTP request to ourselves could wait for the very worker that is serving this one)."""
    raw = body.encode()
    headers = {**signature_headers(workflow.webhook_secret, raw), IDEMPOTENCY_HEADER: f"test-{uuid.uuid4()}"}
    request = RequestFactory().post(
        webhook_path(workflow.pk), data=raw, content_type="application/json", headers=headers
    )
    response = WebhookView.as_view()(request, workflow_id=workflow.pk)
    data = getattr(response, "data", {}) or {}
    return TestEventResult(response.status_code, str(data.get("detail", "")), data.get("run_id"))
