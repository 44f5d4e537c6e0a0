"""REST API for bulk operations (`manage` scope to start one, `read` to follow it):

- `POST /api/v1/bulk-operations/` `{"action": "retry" | "cancel", "filter": {...}, "dry_run": true}`: the
  dry run's count, nothing started. Without `dry_run` (or false): starts the operation (201), or answers
  the one this `Idempotency-Key`, or this same unfinished action and filter, already started (200).
- `GET /api/v1/bulk-operations/` (newest first) and `GET /api/v1/bulk-operations/<id>/`: progress.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from common.api_schema_components import IDEMPOTENCY_KEY, TEXT
from integrations.api import RowsPagination
from integrations.inbound import (
    IDEMPOTENCY_HEADER,
    MAX_IDEMPOTENCY_KEY,
    InboundRejected,
    parse_object,
    read_body,
)
from runs.bulk.filters import FIELDS, STATES, BadFilter, UnknownObject, counts_in_words, dry_run, parse_filter
from runs.bulk.operations import KeyReused, start_operation
from runs.models import BulkOperation
from tenants.api import API_ERROR, MAX_WHOLE_NUMBER, TenantApiMixin


class BulkOperationSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True, help_text="processed / total, 0 to 100.")
    counted = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        read_only=True,
        help_text="The dry run when it was created: executions, runs, recipients, already_sent.",
    )
    filters = serializers.DictField(read_only=True, help_text="The filter as it was parsed.")

    class Meta:
        model = BulkOperation
        fields = [
            "id",
            "name",
            "action",
            "filters",
            "status",
            "counted",
            "total",
            "processed",
            "percent",
            "acted",
            "skipped_sent",
            "skipped_changed",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "acted": {"help_text": "Executions retried, or runs cancelled."},
            "skipped_sent": {"help_text": "Left alone: its message was sent (or may have been)."},
            "skipped_changed": {"help_text": "Left alone: no longer failed (or open) when its batch came."},
        }


def filter_schema(action: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "workflow": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_WHOLE_NUMBER},
            "step": {
                "type": ["string", "null"],
                "format": "uuid",
                "description": "The step's key (the same in every version).",
            },
            "error": {
                "type": ["string", "null"],
                "maxLength": 500,
                "pattern": TEXT,
                "description": "Text the error contains.",
            },
            "created_from": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "Runs started at or after.",
            },
            "created_to": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "Runs started before.",
            },
            "state": {
                "type": ["string", "null"],
                "enum": [*STATES[action], None],
                "description": f"Default {STATES[action][0]}.",
            },
        },
    }


def request_schema(action: str) -> dict:
    return {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": [action]},
            "filter": filter_schema(action),
            "dry_run": {"type": "boolean", "description": "true: only count what it would act on."},
        },
    }


START_BULK = {
    "oneOf": [request_schema(action) for action in STATES],
    "description": "A retry re-runs failed executions whose message was not sent; a cancel cancels the "
    "unfinished runs with a matching open execution.",
}
BULK_RESULT = {
    "type": "object",
    "required": ["dry_run", "counts", "summary", "operation", "created"],
    "properties": {
        "dry_run": {"type": "boolean"},
        "counts": {
            "type": "object",
            "description": "executions, runs; for a retry also recipients and already_sent (left alone).",
            "additionalProperties": {"type": ["integer", "null"]},
        },
        "summary": {"type": "string", "description": "e.g. 412 executions, 398 recipients, 0 already sent"},
        "operation": {
            "oneOf": [{"$ref": "#/components/schemas/BulkOperation"}, {"type": "null"}],
            "description": "Null for a dry run.",
        },
        "created": {"type": "boolean", "description": "False for a dry run or an operation already started."},
    },
}


@extend_schema_view(
    list=extend_schema(summary="List bulk operations, newest first"),
    retrieve=extend_schema(summary="One bulk operation and its progress"),
)
class BulkOperationViewSet(
    TenantApiMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """A bulk retry or cancel by filter: one named operation, worked through in batches."""

    serializer_class = BulkOperationSerializer
    pagination_class = RowsPagination

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(BulkOperation).order_by("-created_at", "-id")

    @extend_schema(
        summary="Count, or start, a bulk retry or cancel",
        request={"application/json": START_BULK},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                IDEMPOTENCY_KEY,
                OpenApiParameter.HEADER,
                description="The same key never starts two operations.",
            )
        ],
        responses={
            201: OpenApiResponse(BULK_RESULT, description="The operation was started"),
            200: OpenApiResponse(BULK_RESULT, description="A dry run, or the operation already started"),
            404: OpenApiResponse(
                API_ERROR, description="The filter names a workflow or step that is not yours"
            ),
            409: OpenApiResponse(API_ERROR, description="The Idempotency-Key started another operation"),
            413: OpenApiResponse(API_ERROR, description="The body is over WEBHOOK_MAX_BODY_BYTES"),
        },
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        try:
            body = parse_object(read_body(request))
            action, filter_data, dry = read_request(body)
            key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
            if len(key) > MAX_IDEMPOTENCY_KEY or "\x00" in key:
                raise InboundRejected(
                    400, f"The {IDEMPOTENCY_HEADER} must be at most {MAX_IDEMPOTENCY_KEY} characters, no NUL."
                )
            flt = parse_filter(request.tenant, action, filter_data)
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        except UnknownObject as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        except BadFilter as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if dry:
            counts = dry_run(request.tenant, flt)
            return Response(result(counts, action, None, created=False, dry=True))
        try:
            operation, created = start_operation(request.tenant, flt, actor=request.auth, idempotency_key=key)
        except KeyReused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        answer = result(operation.counted, action, operation, created=created, dry=False)
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def read_request(body: dict) -> tuple[str, dict, bool]:
    unknown = sorted(set(body) - {"action", "filter", "dry_run"})
    if unknown:
        raise InboundRejected(400, f"Unknown field(s): {', '.join(unknown)}; send action, filter, dry_run.")
    action = body.get("action")
    if not isinstance(action, str) or action not in STATES:
        raise InboundRejected(400, f"action must be one of {', '.join(STATES)}.")
    filter_data = body.get("filter", {})
    if not isinstance(filter_data, dict):
        raise InboundRejected(400, f"filter must be an object with any of {', '.join(FIELDS)}.")
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        raise InboundRejected(400, "dry_run must be true or false.")
    return action, filter_data, dry


def result(counts: dict, action: str, operation: BulkOperation | None, *, created: bool, dry: bool) -> dict:
    return {
        "dry_run": dry,
        "counts": counts,
        "summary": counts_in_words(action, counts),
        "operation": BulkOperationSerializer(operation).data if operation is not None else None,
        "created": created,
    }


router = SimpleRouter()
router.register("bulk-operations", BulkOperationViewSet, basename="api-bulk-operation")
urlpatterns = router.urls
