"""REST API of the publish preview, through the API key's tenant (another tenant's id answers 404):

- `POST /api/v1/workflows/<id>/previews/` `{"events": 200}` (optional, 1–1000): preview the draft on the
  last N real events, in the background; 202 with the preview (poll it).
- `GET /api/v1/workflows/<id>/previews/<preview_id>/`: its status, progress (`done` of `total`), result,
  and, once done, its `token`; `stale` when the draft has changed since.
- `POST /api/v1/workflows/<id>/publish/` `{"token": "...", "sandbox": false, "in_flight": {"<step key>":
  "keep" | "move" | "cancel"}}`: publish the draft the preview saw; 409 when the token is stale or names
  no finished preview (preview again). The runs in flight are handled as the dialog does, and the
  publish is in the audit log with them.
Workflow files (import, export) are unaffected: they publish without a preview, as before.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.inbound import InboundRejected, json_type, parse_object, read_body
from runs.publish_preview.events import DEFAULT_EVENTS, MAX_EVENTS
from runs.publish_preview.inflight import CHOICES, KEEP, publish_previewed, waiting_runs
from runs.publish_preview.job import start_preview
from tenants.api import API_ERROR, TenantApiMixin
from tenants.scoping import get_for_tenant_or_404
from workflows.models import PublishPreview, Workflow
from workflows.preview_token import StalePreview, draft_token
from workflows.publishing import get_draft, validate_version
from workflows.steps.base import PublishError


class PublishPreviewSerializer(serializers.ModelSerializer):
    token = serializers.SerializerMethodField(
        help_text="Publish with this once `status` is done; null before (and for a failed preview)."
    )
    stale = serializers.SerializerMethodField(help_text="True when the draft changed after this preview.")
    result = serializers.JSONField(help_text="The diff per send step, the blast radius, the paths changed.")

    class Meta:
        model = PublishPreview
        fields = [
            "id",
            "status",
            "events",
            "done",
            "total",
            "token",
            "stale",
            "error",
            "result",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_token(self, preview: PublishPreview) -> str | None:
        return preview.token if preview.status == PublishPreview.Status.DONE else None

    def get_stale(self, preview: PublishPreview) -> bool:
        draft = get_draft(preview.workflow)
        return draft is None or draft.pk != preview.draft_id or draft_token(draft) != preview.token


PREVIEW_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "events": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_EVENTS,
            "description": f"How many recent real events to replay (default {DEFAULT_EVENTS}).",
        }
    },
}

PUBLISH_REQUEST = {
    "type": "object",
    "required": ["token"],
    "additionalProperties": False,
    "properties": {
        "token": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "A finished preview's token.",
        },
        "sandbox": {"type": "boolean", "description": "Hold every message until someone releases it."},
        "in_flight": {
            "type": "object",
            "description": "Per live step key, what to do with the runs waiting there (default keep).",
            "additionalProperties": {"type": "string", "enum": list(CHOICES)},
        },
    },
}

PUBLISHED = inline_serializer(
    "Published",
    {
        "version": serializers.IntegerField(),
        "sandbox": serializers.BooleanField(),
        "in_flight": serializers.ListField(
            child=serializers.DictField(), help_text="What was done per step."
        ),
        "detail": serializers.CharField(),
    },
)


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = parse_object(read_body(request))
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InboundRejected(400, f"Unknown field(s): {', '.join(unknown)}.")
    return body


class PreviewStartView(TenantApiMixin, APIView):
    """Preview what publishing the draft would do, on the workflow's own recent events."""

    @extend_schema(
        summary="Preview publishing the draft",
        request={"application/json": PREVIEW_REQUEST},
        responses={
            202: PublishPreviewSerializer,
            400: OpenApiResponse(API_ERROR, description="A bad number of events"),
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(API_ERROR, description="There is no draft to preview"),
            413: OpenApiResponse(API_ERROR),
        },
    )
    def post(self, request: Request, workflow_id: int) -> Response:
        workflow: Workflow = get_for_tenant_or_404(Workflow.objects.all(), request.tenant, pk=workflow_id)
        try:
            body = _body(request, {"events"})
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        events = body.get("events", DEFAULT_EVENTS)
        if isinstance(events, float) and events.is_integer():
            events = int(events)  # JSON Schema's integer: 343.0 is one
        if not isinstance(events, int) or isinstance(events, bool) or not 1 <= events <= MAX_EVENTS:
            shown = json_type(events) if not isinstance(events, int) or isinstance(events, bool) else events
            return Response(
                {"detail": f'"events" must be a whole number from 1 to {MAX_EVENTS}, not {shown}.'},
                status=400,
            )
        draft = get_draft(workflow)
        if draft is None:
            return Response(
                {"detail": "There is no draft to preview: change the workflow first."}, status=409
            )
        preview = start_preview(workflow, draft, events, by=f"api key {getattr(request.auth, 'pk', '')}")
        return Response(PublishPreviewSerializer(preview).data, status=status.HTTP_202_ACCEPTED)


class PreviewDetailView(TenantApiMixin, APIView):
    @extend_schema(
        summary="A publish preview: progress, result, token",
        responses={200: PublishPreviewSerializer, 404: OpenApiResponse(API_ERROR)},
    )
    def get(self, request: Request, workflow_id: int, preview_id: int) -> Response:
        workflow: Workflow = get_for_tenant_or_404(Workflow.objects.all(), request.tenant, pk=workflow_id)
        preview: PublishPreview = get_for_tenant_or_404(
            PublishPreview.objects.all(), request.tenant, pk=preview_id, workflow=workflow
        )
        return Response(PublishPreviewSerializer(preview).data)


class PublishView(TenantApiMixin, APIView):
    """Publish the draft a finished preview saw (its token)."""

    @extend_schema(
        summary="Publish the draft with a preview's token",
        request={"application/json": PUBLISH_REQUEST},
        responses={
            200: PUBLISHED,
            400: OpenApiResponse(API_ERROR, description="A bad body, or steps to fix"),
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(API_ERROR, description="No draft, or the token is stale: preview again"),
            413: OpenApiResponse(API_ERROR),
        },
    )
    def post(self, request: Request, workflow_id: int) -> Response:
        workflow: Workflow = get_for_tenant_or_404(Workflow.objects.all(), request.tenant, pk=workflow_id)
        try:
            body = _body(request, {"token", "sandbox", "in_flight"})
            token, sandbox, wanted = _publish_fields(body)
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        draft = get_draft(workflow)
        if draft is None:
            return Response(
                {"detail": "There is no draft to publish: change the workflow first."}, status=409
            )
        if problems := validate_version(draft):
            words = "; ".join(m for fields in problems.values() for m in fields.values())
            return Response({"detail": f"The draft cannot be published yet: {words}"}, status=400)
        previous = workflow.published_version
        waiting = {w.key: w for w in waiting_runs(previous, draft)}
        choices = {
            key: choice
            for key, choice in wanted.items()
            if key in waiting and (choice != "move" or waiting[key].target is not None)
        }
        try:
            version, in_flight = publish_previewed(
                request, workflow, token=token, sandbox=sandbox, choices=choices
            )
        except StalePreview as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        except PublishError as exc:
            words = "; ".join(m for fields in exc.step_errors.values() for m in fields.values())
            return Response({"detail": f"The draft cannot be published: {words}"}, status=400)
        return Response(
            {
                "version": version.number,
                "sandbox": version.sandbox,
                "in_flight": in_flight,
                "detail": f"Published version {version.number}.",
            }
        )


def _publish_fields(body: dict[str, Any]) -> tuple[str, bool, dict[str, str]]:
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise InboundRejected(400, 'Send the token of a finished preview as {"token": "..."}.')
    sandbox = body.get("sandbox", False)
    if not isinstance(sandbox, bool):
        raise InboundRejected(400, f'"sandbox" must be true or false, not {json_type(sandbox)}.')
    in_flight = body.get("in_flight", {})
    if not isinstance(in_flight, dict) or any(c not in CHOICES for c in in_flight.values()):
        raise InboundRejected(400, f'"in_flight" maps step keys to one of: {", ".join(CHOICES)}.')
    return token.strip(), sandbox, {str(k): v for k, v in in_flight.items() if v != KEEP}


urlpatterns = [
    path("workflows/<int:workflow_id>/previews/", PreviewStartView.as_view(), name="api-workflow-preview"),
    path(
        "workflows/<int:workflow_id>/previews/<int:preview_id>/",
        PreviewDetailView.as_view(),
        name="api-workflow-preview-detail",
    ),
    path("workflows/<int:workflow_id>/publish/", PublishView.as_view(), name="api-workflow-publish"),
]
