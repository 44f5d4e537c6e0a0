"""REST API: `GET /api/v1/workflows/` and `/api/v1/workflows/<id>/`, the key's tenant's workflows, and
`POST /api/v1/workflows/<id>/publish/` (`manage` scope): the draft goes live, with the builder's checks.

Starting a run of one (`POST /api/v1/workflows/<id>/runs/`) lives with the runs, in runs/api.py.
"""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from integrations.inbound import InboundRejected, parse_object, read_body
from tenants.api import API_ERROR, NumberedPagination, TenantApiMixin, flatten_errors
from tenants.audit import record_for
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_draft, publish
from workflows.steps import STEP_KINDS
from workflows.steps.base import PublishError
from workflows.steps.webhook_trigger import webhook_path
from workflows.views.publishing import publish_problems


class WorkflowSerializer(serializers.ModelSerializer):
    published_version = serializers.IntegerField(
        source="published_version.number",
        allow_null=True,
        read_only=True,
        help_text="The live version's number; null while the workflow is not published.",
    )
    trigger_kind = serializers.CharField(
        allow_null=True,
        read_only=True,
        help_text="The root step's kind (database_trigger, webhook_trigger, schedule_trigger) in the "
        "published version, else in the draft; null when there is no trigger yet.",
    )

    webhook_url = serializers.SerializerMethodField(
        help_text="For a webhook trigger, the URL to POST signed events to (the secret is in the builder, "
        "for admins); null for other triggers."
    )

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "status",
            "published_version",
            "trigger_kind",
            "webhook_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_webhook_url(self, workflow: Workflow) -> str | None:
        kind = STEP_KINDS.get(getattr(workflow, "trigger_kind", None) or "")
        if kind is None or not kind.receives_webhooks:
            return None
        return self.context["request"].build_absolute_uri(webhook_path(workflow.pk))


def root_kind(version_filter: dict) -> Subquery:
    roots = Step.objects.filter(parent__isnull=True, **version_filter).order_by("position", "id")
    return Subquery(roots.values("kind")[:1])


def workflows_with_trigger_kind(qs: QuerySet) -> QuerySet:
    """Workflows annotated with `trigger_kind`, in one query whatever their number."""
    draft = {"version__workflow": OuterRef("pk"), "version__state": WorkflowVersion.State.DRAFT}
    # The webhook secret is never shown here: do not decrypt it for every row.
    return (
        qs.select_related("published_version")
        .defer("webhook_secret")
        .annotate(
            trigger_kind=Coalesce(root_kind({"version": OuterRef("published_version")}), root_kind(draft))
        )
    )


PUBLISH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sandbox": {"type": "boolean", "description": "Hold every message until it is released."},
    },
}
PUBLISHED = inline_serializer(
    "WorkflowPublished",
    {
        "workflow": WorkflowSerializer(),
        "version": serializers.IntegerField(),
        "sandbox": serializers.BooleanField(),
    },
)


@extend_schema_view(
    list=extend_schema(summary="List the workflows", description="Ordered by name; archived ones too."),
    retrieve=extend_schema(
        summary="One workflow", responses={200: WorkflowSerializer, 404: OpenApiResponse(API_ERROR)}
    ),
)
class WorkflowViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """A workflow: its name, whether it is live (`published_version`) and what starts it (`trigger_kind`)."""

    serializer_class = WorkflowSerializer
    pagination_class = NumberedPagination

    def get_queryset(self) -> QuerySet:
        workflows = self.tenant_rows(Workflow).order_by("name", "id")
        return workflows_with_trigger_kind(workflows)

    @extend_schema(
        summary="Publish the workflow's draft",
        description="The draft becomes the live version, as the builder's Publish does (the same checks). "
        "`sandbox: true` holds every message until it is released.",
        request={"application/json": PUBLISH},
        responses={
            200: PUBLISHED,
            404: OpenApiResponse(API_ERROR),
            409: OpenApiResponse(
                API_ERROR, description="No draft, or the draft has problems (the detail lists them)"
            ),
            413: OpenApiResponse(API_ERROR, description="The body is over WEBHOOK_MAX_BODY_BYTES"),
        },
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str) -> Response:
        workflow = self.get_object()
        try:
            body = parse_object(read_body(request))
        except InboundRejected as rejected:
            return Response({"detail": rejected.detail}, status=rejected.status_code)
        unknown = sorted(set(body) - {"sandbox"})
        if unknown:
            return Response({"detail": f"Unknown field(s): {', '.join(unknown)}; send sandbox."}, status=400)
        sandbox = body.get("sandbox", False)
        if not isinstance(sandbox, bool):
            return Response({"detail": "sandbox must be true or false."}, status=400)
        draft = get_draft(workflow)
        problem: str | None
        if draft is None:
            problem = "There is no draft to publish: edit the workflow first."
        else:
            problem = publish_preview_problem(request, workflow, draft) or draft_problems(draft)
        if problem:
            return Response({"detail": problem}, status=status.HTTP_409_CONFLICT)
        try:
            version = publish(workflow, sandbox=sandbox)
        except PublishError as exc:
            return Response({"detail": f"Not published: {flatten_errors(exc.step_errors)}"}, status=409)
        record_for(request, "workflow.published", workflow, version=version.number, sandbox=version.sandbox)
        fresh = workflows_with_trigger_kind(self.get_queryset().filter(pk=workflow.pk)).get()
        data = WorkflowSerializer(fresh, context=self.get_serializer_context()).data
        return Response({"workflow": data, "version": version.number, "sandbox": version.sandbox})


def publish_preview_problem(request: Request, workflow: Workflow, draft: WorkflowVersion) -> str | None:
    """The hook for publish previews (#29, built in parallel): once they exist, a publish names the preview
    it was shown (a `preview_token` in the body, added to PUBLISH) and this says why one is refused (none,
    expired, or the draft changed since). Until then every publish passes."""
    return None


def draft_problems(draft: WorkflowVersion) -> str | None:
    """The builder's publish checks, in one sentence: step name, then its problems."""
    problems = publish_problems(draft)
    if not problems:
        return None
    parts = [f"{item['step'] or 'the workflow'}: {flatten_errors(item['errors'])}" for item in problems]
    return "The draft cannot be published: " + "; ".join(parts)


router = SimpleRouter()
router.register("workflows", WorkflowViewSet, basename="api-workflow")
urlpatterns = router.urls
