"""REST API for messages (Delivery rows) and their provider events, through the API key's tenant:

- `GET /api/v1/messages/`: newest first, keyset pages; filters `workflow`, `run`, `status`, `channel`,
  `recipient` (exact). Test runs' captured messages are included: the run says whether it is a test.
- `GET /api/v1/messages/<id>/` and `GET /api/v1/messages/<id>/events/` (what the provider reported).
- `POST /api/v1/workflows/<id>/release/`: release a sandbox's held messages (the page's "Release all
  held"): each is sent once, at most RELEASE_LIMIT per call; the answer says how many are still held.
The message's content is not listed: the run page shows it to people.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from runs.api import RunKeysetPagination
from runs.engine import release_delivery
from runs.models import Delivery, DeliveryEvent
from runs.views.actions import RELEASE_LIMIT
from runs.views.forms import channel_choices
from tenants.api import API_ERROR, TenantApiMixin
from tenants.audit import record_bulk
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow

# A message's events, oldest first (a provider reports a handful: delivered, opened, clicked...).
EVENTS_SHOWN = 500


class MessageSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="run.workflow_id", read_only=True)
    step = serializers.IntegerField(source="step_execution.step_id", read_only=True)
    execution = serializers.IntegerField(source="step_execution_id", read_only=True)
    provider = serializers.IntegerField(
        source="sent_via_id", allow_null=True, read_only=True, help_text="The provider it went through."
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "run",
            "workflow",
            "step",
            "execution",
            "channel",
            "recipient",
            "status",
            "error",
            "provider_id",
            "provider",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class MessageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryEvent
        fields = [
            "id",
            "kind",
            "bounce",
            "occurred_at",
            "recipient",
            "description",
            "mta_response",
            "click_url",
            "provider",
            "created_at",
        ]
        read_only_fields = fields


class MessageFilterSerializer(serializers.Serializer):
    workflow = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    run = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False)
    channel = serializers.ChoiceField(choices=channel_choices(), required=False)
    recipient = serializers.CharField(
        required=False, max_length=500, help_text="The exact recipient.", trim_whitespace=False
    )


class MessagePagination(RunKeysetPagination):
    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["description"] = parameter["description"].replace("Runs per page", "Messages per page")
        return parameters


@extend_schema_view(
    list=extend_schema(summary="List messages, newest first", parameters=[MessageFilterSerializer]),
    retrieve=extend_schema(
        summary="One message", responses={200: MessageSerializer, 404: OpenApiResponse(API_ERROR)}
    ),
)
class MessageViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """A message a send step handed (or holds, or captured) for one item: its recipient and status."""

    serializer_class = MessageSerializer
    pagination_class = MessagePagination
    filter_serializer = MessageFilterSerializer

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(Delivery).select_related("run", "step_execution")

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action != "list":
            return queryset
        filters = MessageFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        lookups = {"workflow": "run__workflow_id", "run": "run_id", "status": "status", "channel": "channel"}
        for name, lookup in lookups.items():
            if name in wanted:
                queryset = queryset.filter(**{lookup: wanted[name]})
        if "recipient" in wanted:
            queryset = queryset.filter(recipient=wanted["recipient"])
        return queryset

    @extend_schema(
        summary="What the provider reported about a message",
        responses={200: MessageEventSerializer(many=True), 404: OpenApiResponse(API_ERROR)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request: Request, pk: str) -> Response:
        message = self.get_object()
        events = DeliveryEvent.objects.filter(delivery=message, tenant=request.tenant).order_by(
            "occurred_at", "id"
        )
        return Response(MessageEventSerializer(events[:EVENTS_SHOWN], many=True).data)


RELEASED = inline_serializer(
    "HeldReleased",
    {
        "released": serializers.IntegerField(help_text="Sent by this call."),
        "not_sent": serializers.IntegerField(help_text="Taken but not sent: see each message's error."),
        "still_held": serializers.IntegerField(
            help_text="Held messages left: call again for the next slice."
        ),
        "detail": serializers.CharField(),
    },
)


class ReleaseHeldView(TenantApiMixin, APIView):
    """Release a sandbox's held messages: each is sent exactly once (release_delivery)."""

    @extend_schema(
        summary="Release a workflow's held (sandbox) messages",
        request=None,
        responses={200: RELEASED, 404: OpenApiResponse(API_ERROR)},
    )
    def post(self, request: Request, workflow_id: int) -> Response:
        workflow = get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id)
        held = Delivery.objects.filter(
            tenant=request.tenant, run__workflow=workflow, status=Delivery.Status.HELD
        )
        ids = list(held.order_by("created_at", "id").values_list("pk", flat=True)[:RELEASE_LIMIT])
        sent = [pk for pk in ids if release_delivery(pk, tenant=request.tenant)]
        record_bulk(request.tenant, request.auth, "messages.released", ids, sent=sent)
        left = held.count()
        detail = f"Released and sent {len(sent)} of {len(ids)} held message(s); {left} still held."
        return Response(
            {"released": len(sent), "not_sent": len(ids) - len(sent), "still_held": left, "detail": detail}
        )


router = SimpleRouter()
router.register("messages", MessageViewSet, basename="api-message")
urlpatterns = [
    path("workflows/<int:workflow_id>/release/", ReleaseHeldView.as_view(), name="api-workflow-release"),
    *router.urls,
]
