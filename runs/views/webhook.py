"""`POST /hooks/<workflow id>/`: a signed JSON body starts a run of a published webhook workflow
(runs/webhooks.py `receive_webhook` says what is accepted and why not). Answers 202 `{"run_id",
"event_key"}`, or `{"detail": ...}` with the refusal's status. How to sign: integrations/signing.py.
"""

from __future__ import annotations

from typing import Literal

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api_schema_components import IDEMPOTENCY_KEY, JSON_OBJECT
from integrations.inbound import IDEMPOTENCY_HEADER, InboundRejected, read_body
from integrations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from runs.webhooks import receive_webhook

DETAIL = inline_serializer("WebhookError", {"detail": serializers.CharField()})
HEADER: Literal["header"] = "header"  # OpenApiParameter.HEADER, as the literal its signature asks for


class WebhookView(APIView):
    authentication_classes: list[type[BaseAuthentication]] = []  # the HMAC signature is the authentication
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
            accepted = receive_webhook(workflow_id, read_body(request), request.headers)
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        return Response(
            {"run_id": accepted.run_id, "event_key": accepted.event_key}, status=status.HTTP_202_ACCEPTED
        )
