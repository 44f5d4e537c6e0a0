"""REST API: `GET /api/v1/workflows/` and `/api/v1/workflows/<id>/`, the key's tenant's workflows, and
`POST /api/v1/workflows/<id>/publish/` (`manage` scope): the draft goes live, with the builder's checks.

Starting a run of one (`POST /api/v1/workflows/<id>/runs/`) lives with the runs, in runs/api.py.
"""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from tenants.api import API_ERROR, NumberedPagination, TenantApiMixin
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import STEP_KINDS
from workflows.steps.webhook_trigger import webhook_path


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


router = SimpleRouter()
router.register("workflows", WorkflowViewSet, basename="api-workflow")
urlpatterns = router.urls
