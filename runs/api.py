"""REST API for runs, all through the API key's tenant (another tenant's id answers 404):

- `GET /api/v1/runs/`: newest first, keyset pages (`cursor`, `page_size` up to 200); filters `workflow`,
  `status`, and `is_test` (false by default: live runs, like the activity log).
- `GET /api/v1/runs/<id>/`: the run with its first executions and its messages counted by status.
- `POST /api/v1/runs/<id>/cancel/`: the activity log's cancel (runs.engine.cancel_run); 409 once finished.
- `POST /api/v1/runs/<id>/retry/`: its failed executions again, never one whose message was sent
  (runs/bulk/operations.py retry_unless_sent); `POST /api/v1/runs/<id>/replay/`: its event as a new run.
- `POST /api/v1/workflows/<id>/cancel/` `{"key": "order:42", "until": optional ISO time}`: cancel by key
  (runs/engine/cancel_keys.py): the answer counts the runs and executions it cancelled; the tombstone
  goes on cancelling that key's work when it is claimed, until `until` (default 7 days).
- `GET /api/v1/cancels/<id>/` and `POST /api/v1/cancels/<id>/undo/` (409 with the reason once
  something the cancel stopped was due).
- `POST /api/v1/workflows/<id>/runs/`: `{"payload": {...}}` starts a run of the published version,
  with the webhook trigger's rules (integrations/inbound.py): 413 over WEBHOOK_MAX_BODY_BYTES, 400 for a
  body that is not a JSON object, and an optional `Idempotency-Key` as the event key (`api:<key>`), so
  the same key twice starts one run.
- the publish preview and publishing with its token: runs/publish_api.py.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.urls import path
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from common.api_schema_components import IDEMPOTENCY_KEY, JSON_OBJECT
from integrations.inbound import (
    IDEMPOTENCY_HEADER,
    InboundRejected,
    event_key,
    json_type,
    parse_object,
    read_body,
)
from runs import publish_api
from runs.bulk import retry_unless_sent
from runs.engine import (
    BadCancelKey,
    CannotUndo,
    WorkflowNotPublished,
    cancel_by_key,
    cancel_run,
    replay_run,
    start_run,
    undo_cancel,
)
from runs.models import CancelTombstone, Delivery, Run, StepExecution
from runs.views.paging import CURSOR_REGEX, BadCursor, keyset_page
from tenants.api import API_ERROR, MAX_WHOLE_NUMBER, TenantApiMixin, query_whole_number
from tenants.audit import record_for
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow

# A run's detail lists this many executions (in the order they were created); a big fan-out has more.
EXECUTIONS_SHOWN = 200


class RunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    version = serializers.IntegerField(
        source="version.number", allow_null=True, read_only=True, help_text="Null for a test run of a draft."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "workflow",
            "workflow_name",
            "version",
            "event_key",
            "label",
            "cancel_key",
            "status",
            "is_test",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ExecutionSerializer(serializers.ModelSerializer):
    step_name = serializers.CharField(source="step.name", read_only=True)
    step_kind = serializers.CharField(source="step.kind", read_only=True)
    throttled = serializers.SerializerMethodField(
        help_text="Why a throttle dropped (status skipped) or deferred (status pending) this item; empty otherwise."
    )

    class Meta:
        model = StepExecution
        fields = [
            "id",
            "step",
            "step_name",
            "step_kind",
            "parent",
            "item_key",
            "status",
            "attempts",
            "next_attempt_at",
            "started_at",
            "finished_at",
            "error",
            "throttled",
        ]
        read_only_fields = fields

    def get_throttled(self, execution: StepExecution) -> str:
        output = execution.output
        return str(output.get("throttled", "")) if isinstance(output, dict) else ""


class RunDetailSerializer(RunSerializer):
    payload = serializers.JSONField(read_only=True, help_text="The trigger's item.")
    execution_count = serializers.IntegerField(read_only=True, help_text="All executions of the run.")
    executions = ExecutionSerializer(
        source="executions_shown",
        many=True,
        read_only=True,
        help_text=f"The first {EXECUTIONS_SHOWN} executions, oldest first.",
    )
    deliveries = serializers.DictField(
        source="delivery_counts",
        child=serializers.IntegerField(),
        read_only=True,
        help_text="The run's messages counted by status (every status, zeros included).",
    )

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "payload", "execution_count", "executions", "deliveries"]
        read_only_fields = fields


def with_summary(run: Run) -> Run:
    """The run with `executions`, `execution_count` and `deliveries` (counts by status) set, in 3 queries."""
    executions = run.executions.select_related("step").order_by("id")
    run.executions_shown = list(executions[:EXECUTIONS_SHOWN])
    run.execution_count = executions.count()
    counts = dict(run.deliveries.values_list("status").annotate(n=Count("id")).order_by())
    run.delivery_counts = {value: counts.get(value, 0) for value in Delivery.Status.values}
    return run


class RunFilterSerializer(serializers.Serializer):
    workflow = serializers.IntegerField(required=False, min_value=1, help_text="Only this workflow's runs.")
    status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
    is_test = serializers.BooleanField(
        default=False, help_text="false (default): live runs; true: test runs."
    )


class RunKeysetPagination(BasePagination):
    """The activity log's keyset pages (runs/views/paging.py): page 1,000 costs what page 1 costs."""

    page_size = 50
    max_page_size = 200
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet, request: Request, view=None) -> list:
        cursor = request.query_params.get(self.cursor_query_param)
        try:
            page = keyset_page(queryset, cursor, self.size(request))
        except BadCursor as exc:
            raise ParseError(str(exc)) from None
        url = request.build_absolute_uri()
        self.next_url = page.next_cursor and replace_query_param(
            url, self.cursor_query_param, page.next_cursor
        )
        return page.items

    def size(self, request: Request) -> int:
        return query_whole_number(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_paginated_response(self, data: list) -> Response:
        return Response({"next": self.next_url, "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {
                    "type": ["string", "null"],
                    "format": "uri",
                    "description": "Null on the last page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "The position to continue from: take it from the previous page's `next`.",
                "schema": {"type": "string", "pattern": CURSOR_REGEX},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Runs per page, {self.page_size} by default; more than {self.max_page_size} "
                f"counts as {self.max_page_size}.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE_NUMBER},
            },
        ]


RETRIED = inline_serializer(
    "RunRetried",
    {
        "run": RunSerializer(),
        "retried_executions": serializers.IntegerField(),
        "left_sent": serializers.IntegerField(
            help_text="Failed executions whose message was sent: not retried."
        ),
    },
)
CANCELLED = inline_serializer(
    "RunCancelled",
    {"run": RunSerializer(), "cancelled_executions": serializers.IntegerField()},
)


@extend_schema_view(
    list=extend_schema(summary="List runs, newest first", parameters=[RunFilterSerializer]),
    retrieve=extend_schema(
        summary="One run, with its executions and messages",
        responses={200: RunDetailSerializer, 404: OpenApiResponse(API_ERROR)},
    ),
)
class RunViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """A run: one event (`event_key`) through one published version of a workflow."""

    serializer_class = RunSerializer
    pagination_class = RunKeysetPagination
    filter_serializer = RunFilterSerializer

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(Run).select_related("workflow", "version")

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action != "list":
            return queryset
        filters = RunFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        queryset = queryset.filter(is_test=wanted["is_test"])
        if "workflow" in wanted:
            queryset = queryset.filter(workflow_id=wanted["workflow"])
        if "status" in wanted:
            queryset = queryset.filter(status=wanted["status"])
        return queryset

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response(RunDetailSerializer(with_summary(self.get_object())).data)

    @extend_schema(
        summary="Cancel a run",
        description="Stops its pending and running executions; a message being sent finishes.",
        request=None,
        responses={
            200: CANCELLED,
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(API_ERROR, description="The run has already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        if run.status in Run.FINISHED:
            detail = f"Run {run.pk} has already finished ({run.get_status_display().lower()})."
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        stopped = cancel_run(run)
        record_for(request, "run.cancelled", run, label=f"Run #{run.pk}", stopped=stopped)
        return Response({"run": RunSerializer(run).data, "cancelled_executions": stopped})

    @extend_schema(
        summary="Retry a run's failed executions",
        description="Each failed execution runs again, unless its message was sent (or may have been: "
        "sending, uncertain, held): that one is left alone, as a bulk retry leaves it.",
        request=None,
        responses={200: RETRIED, 404: OpenApiResponse(API_ERROR)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        failed = run.executions.filter(status=StepExecution.Status.FAILED).order_by("id")
        outcomes = [retry_unless_sent(execution_id) for execution_id in failed.values_list("id", flat=True)]
        retried = sum(1 for outcome in outcomes if outcome.value == "acted")
        sent = sum(1 for outcome in outcomes if outcome.value == "skipped_sent")
        if retried:
            record_for(request, "execution.retried", run, label=f"Run #{run.pk}", retried=retried)
        run.refresh_from_db()
        return Response({"run": RunSerializer(run).data, "retried_executions": retried, "left_sent": sent})

    @extend_schema(
        summary="Replay a run's event",
        description="A new run with the same payload: a live run on the workflow's published version, a "
        "test run on the version it tested.",
        request=None,
        responses={
            201: RunSerializer,
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(API_ERROR, description="The workflow is not published"),
        },
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        version = run.version if run.is_test else run.workflow.published_version
        if version is None:
            detail = f"“{run.workflow.name}” is not published: publish it, then replay the event."
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        again = replay_run(run, version=version)
        record_for(request, "run.replayed", run, label=f"Run #{run.pk}", new_run=again.pk)
        return Response(RunSerializer(again).data, status=status.HTTP_201_CREATED)


START_RUN = {
    "type": "object",
    "required": ["payload"],
    "additionalProperties": False,
    "properties": {
        "payload": {**JSON_OBJECT, "description": "The trigger's item: what the workflow's steps read."}
    },
}
RUN_STARTED = inline_serializer(
    "RunStarted",
    {
        "run_id": serializers.IntegerField(),
        "event_key": serializers.CharField(),
        "created": serializers.BooleanField(help_text="False when this Idempotency-Key already had a run."),
        "detail": serializers.CharField(),
    },
)


class StartRunView(TenantApiMixin, APIView):
    """The body's `payload` becomes the trigger's item, as a webhook's body or a database row would."""

    write_scope = "trigger"  # a key that may only start runs needs no `manage`

    @extend_schema(
        summary="Start a run of a published workflow",
        request={"application/json": START_RUN},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                IDEMPOTENCY_KEY,
                OpenApiParameter.HEADER,
                description="Your event id: the same key never starts two runs of a workflow.",
            )
        ],
        responses={
            202: OpenApiResponse(RUN_STARTED, description="The run was started"),
            200: OpenApiResponse(RUN_STARTED, description="This Idempotency-Key already started a run"),
            400: OpenApiResponse(API_ERROR, description='The body is not {"payload": {...}}'),
            404: OpenApiResponse(API_ERROR, description="No such workflow, or it is not published"),
            413: OpenApiResponse(API_ERROR, description="The body is over WEBHOOK_MAX_BODY_BYTES"),
        },
    )
    def post(self, request: Request, workflow_id: int) -> Response:
        workflow = get_for_tenant_or_404(
            Workflow.objects.select_related("published_version"), request.tenant, pk=workflow_id
        )
        try:
            payload = run_payload(parse_object(read_body(request)))
            key = event_key(request.headers, "api")
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        # A check before starting, for the answer only: two requests racing with one key still start
        # one run (UNIQUE(workflow, event_key)); both may then say they created it.
        existing = Run.objects.filter(workflow=workflow, event_key=key).first()
        if existing is not None:
            detail = (
                f"Run {existing.pk} already exists for this {IDEMPOTENCY_HEADER}; no new run was started."
            )
            return Response(started(existing, created=False, detail=detail), status=status.HTTP_200_OK)
        try:
            run = start_run(workflow, payload, key)
        except WorkflowNotPublished as exc:
            return Response(
                {"detail": f"{exc} Publish it, then start runs."}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(
            started(run, created=True, detail=f"Run {run.pk} started."), status=status.HTTP_202_ACCEPTED
        )


def run_payload(body: dict) -> dict:
    """The `payload` object of the request body, or 400 saying what to send."""
    unknown = sorted(set(body) - {"payload"})
    if unknown:
        names = ", ".join(f'"{name}"' for name in unknown)
        raise InboundRejected(400, f'Unknown field {names}: send {{"payload": {{...}}}} and nothing else.')
    if "payload" not in body:
        raise InboundRejected(400, 'Send the trigger\'s item as {"payload": {...}}.')
    if not isinstance(body["payload"], dict):
        raise InboundRejected(
            400, f'"payload" must be a JSON object ({{...}}), not {json_type(body["payload"])}.'
        )
    return body["payload"]


def started(run: Run, *, created: bool, detail: str) -> dict:
    return {"run_id": run.pk, "event_key": run.event_key, "created": created, "detail": detail}


class CancelByKeySerializer(serializers.Serializer):
    key = serializers.CharField(max_length=255, trim_whitespace=True, help_text="e.g. order:42")
    until = serializers.DateTimeField(
        required=False, help_text="Until when work for this key is cancelled when claimed (default: 7 days)."
    )


CANCEL_BY_KEY = {
    "type": "object",
    "required": ["key"],
    "additionalProperties": False,
    "properties": {
        "key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"\S",
            "description": "The run's cancel key, e.g. order:42 (what the trigger's cancel_key template gave).",
        },
        "until": {
            "type": "string",
            "format": "date-time",
            "description": "Until when work for this key is cancelled when claimed (default: 7 days from "
            "now). A time already past cancels what is pending now and nothing later.",
        },
    },
}


class TombstoneSerializer(serializers.ModelSerializer):
    class Meta:
        model = CancelTombstone
        fields = [
            "id",
            "workflow",
            "key",
            "until",
            "source",
            "created_at",
            "cancelled",
            "cancelled_when_due",
            "undone_at",
        ]
        read_only_fields = fields


KEY_CANCELLED = inline_serializer(
    "KeyCancelled",
    {
        "cancel": TombstoneSerializer(),
        "cancelled_runs": serializers.IntegerField(help_text="Runs this call ended `cancelled`."),
        "cancelled_executions": serializers.IntegerField(help_text="Executions this call cancelled."),
        "runs_found": serializers.IntegerField(
            help_text="Open runs with the key (some finish a running batch)."
        ),
        "detail": serializers.CharField(),
    },
)


class CancelByKeyView(TenantApiMixin, APIView):
    """Cancel a workflow's runs by the key its trigger's `cancel_key` template gave them."""

    @extend_schema(
        summary="Cancel a workflow's runs by key",
        request={"application/json": CANCEL_BY_KEY},
        responses={
            200: KEY_CANCELLED,
            400: OpenApiResponse(API_ERROR, description="No usable key or until"),
            404: OpenApiResponse(API_ERROR),
        },
    )
    def post(self, request: Request, workflow_id: int) -> Response:
        workflow = get_for_tenant_or_404(Workflow.objects.all(), request.tenant, pk=workflow_id)
        try:
            body = parse_object(read_body(request))
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        unknown = sorted(set(body) - {"key", "until"})
        if unknown:
            return Response({"detail": f"Unknown field(s): {', '.join(unknown)}."}, status=400)
        form = CancelByKeySerializer(data=body)
        form.is_valid(raise_exception=True)
        try:
            result = cancel_by_key(
                workflow,
                form.validated_data["key"],
                until=form.validated_data.get("until"),
                source=CancelTombstone.Source.API,
                by=f"api key {getattr(request.auth, 'pk', '')}".strip(),
            )
        except BadCancelKey as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        record_for(
            request,
            "runs.cancelled_by_key",
            workflow,
            label=result.tombstone.key,
            stopped=result.executions,
        )
        detail = (
            f"{result.runs} run(s) and {result.executions} execution(s) cancelled; work for "
            f"{result.tombstone.key!r} is cancelled when claimed until {result.tombstone.until.isoformat()}."
        )
        return Response(
            {
                "cancel": TombstoneSerializer(result.tombstone).data,
                "cancelled_runs": result.runs,
                "cancelled_executions": result.executions,
                "runs_found": result.runs_found,
                "detail": detail,
            }
        )


class TombstoneViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """A cancel by key: what it has cancelled so far (claims add to it), and its undo."""

    serializer_class = TombstoneSerializer

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(CancelTombstone).order_by("-id")

    @extend_schema(
        summary="Undo a cancel by key",
        request=None,
        responses={
            200: inline_serializer("CancelUndone", {"restored_executions": serializers.IntegerField()}),
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(API_ERROR, description="Something it stopped was due: it cannot be undone"),
        },
    )
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str) -> Response:
        tombstone = self.get_object()
        try:
            restored = undo_cancel(tombstone)
        except CannotUndo as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        record_for(request, "runs.cancel_undone", tombstone.workflow, label=tombstone.key, restored=restored)
        return Response({"restored_executions": restored})


router = SimpleRouter()
router.register("runs", RunViewSet, basename="api-run")
router.register("cancels", TombstoneViewSet, basename="api-cancel")
urlpatterns = [
    *publish_api.urlpatterns,
    path("workflows/<int:workflow_id>/cancel/", CancelByKeyView.as_view(), name="api-workflow-cancel-by-key"),
    path("workflows/<int:workflow_id>/runs/", StartRunView.as_view(), name="api-workflow-start-run"),
    *router.urls,
]
