"""REST API for email consent, through the API key's tenant (another tenant's id answers 404):

- `/api/v1/topics/`: list, create, read, rename, delete topics.
- `/api/v1/layouts/`: list, create, read, change, delete email layouts (checked like the page does).
- `/api/v1/suppressions/`: list (newest first; `q` searches addresses), add, read, remove.
Every change is recorded in the audit log, as the API key.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.routers import SimpleRouter

from consent import service
from consent.forms import clean_address, layout_problem
from consent.models import ADDRESS_MAX, EmailLayout, Suppression, Topic, normalize_address
from tenants.api import API_ERROR, TenantApiMixin


class ConsentPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class _UniqueName:
    """A name unique (case-insensitively) among the tenant's rows of `Meta.model`."""

    def validate_name(self, value: str) -> str:
        name = value.strip()
        if not name:
            raise serializers.ValidationError("A name is required.")
        rows = self.Meta.model.objects.filter(tenant=self.context["request"].tenant, name__iexact=name)
        if self.instance is not None:
            rows = rows.exclude(pk=self.instance.pk)
        if rows.exists():
            raise serializers.ValidationError("This name is taken in this workspace.")
        return name


class TopicSerializer(_UniqueName, serializers.ModelSerializer):
    class Meta:
        model = Topic
        fields = ["id", "name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class LayoutSerializer(_UniqueName, serializers.ModelSerializer):
    class Meta:
        model = EmailLayout
        fields = ["id", "name", "html", "is_default", "updated_at"]
        read_only_fields = ["id", "updated_at"]
        extra_kwargs = {
            "html": {"help_text": "HTML with {% block content %}{% endblock %} where a message goes."}
        }

    def validate_html(self, value: str) -> str:
        problem = layout_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class SuppressionSerializer(serializers.ModelSerializer):
    address = serializers.CharField(max_length=ADDRESS_MAX)

    class Meta:
        model = Suppression
        fields = ["id", "address", "reason", "source", "detail", "delivery", "created_at"]
        read_only_fields = ["id", "source", "delivery", "created_at"]

    def validate_address(self, value: str) -> str:
        try:
            return clean_address(value)
        except Exception as exc:  # django.forms ValidationError
            raise serializers.ValidationError("Enter a valid email address.") from exc


class _TenantCrud(TenantApiMixin):
    pagination_class = ConsentPagination
    model = None
    noun = ""

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(self.model).order_by(*self.ordering)


NOT_FOUND = {404: OpenApiResponse(API_ERROR)}


def _crud_schema(noun: str, plural: str, serializer):
    bad = {400: OpenApiResponse(API_ERROR)}
    return extend_schema_view(
        list=extend_schema(summary=f"List the {plural}"),
        create=extend_schema(summary=f"Add a {noun}", responses={201: serializer, **bad}),
        retrieve=extend_schema(summary=f"One {noun}", responses={200: serializer, **NOT_FOUND}),
        update=extend_schema(summary=f"Replace a {noun}", responses={200: serializer, **bad, **NOT_FOUND}),
        partial_update=extend_schema(
            summary=f"Change a {noun}", responses={200: serializer, **bad, **NOT_FOUND}
        ),
        destroy=extend_schema(summary=f"Delete a {noun}", responses={204: None, **NOT_FOUND}),
    )


@_crud_schema("topic", "email topics", TopicSerializer)
class TopicViewSet(_TenantCrud, viewsets.ModelViewSet):
    """An email topic: what recipients unsubscribe from."""

    serializer_class = TopicSerializer
    model = Topic
    ordering = ("name", "id")

    def perform_create(self, serializer) -> None:
        serializer.instance = service.save_topic(
            self.request.tenant, self.request.auth, Topic(**serializer.validated_data), created=True
        )

    def perform_update(self, serializer) -> None:
        topic = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(topic, field, value)
        service.save_topic(self.request.tenant, self.request.auth, topic, created=False)

    def perform_destroy(self, instance: Topic) -> None:
        service.delete_topic(self.request.tenant, self.request.auth, instance)


@_crud_schema("layout", "email layouts", LayoutSerializer)
class LayoutViewSet(_TenantCrud, viewsets.ModelViewSet):
    """An email layout: the HTML around a step's message (footer, unsubscribe link, postal address)."""

    serializer_class = LayoutSerializer
    model = EmailLayout
    ordering = ("-is_default", "name", "id")

    def perform_create(self, serializer) -> None:
        layout = EmailLayout(**serializer.validated_data)
        serializer.instance = service.save_layout(
            self.request.tenant, self.request.auth, layout, created=True
        )

    def perform_update(self, serializer) -> None:
        layout = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(layout, field, value)
        service.save_layout(self.request.tenant, self.request.auth, layout, created=False)

    def perform_destroy(self, instance: EmailLayout) -> None:
        service.delete_layout(self.request.tenant, self.request.auth, instance)


@extend_schema_view(
    list=extend_schema(
        summary="List suppressed addresses, newest first",
        parameters=[OpenApiParameter("q", str, description="Part of an address to search for.")],
    ),
    create=extend_schema(
        summary="Suppress an address", responses={201: SuppressionSerializer, 400: OpenApiResponse(API_ERROR)}
    ),
    retrieve=extend_schema(
        summary="One suppressed address", responses={200: SuppressionSerializer, **NOT_FOUND}
    ),
    destroy=extend_schema(summary="Remove an address from the list", responses={204: None, **NOT_FOUND}),
)
class SuppressionViewSet(
    _TenantCrud,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """An address the tenant never sends to (hard bounce, complaint, refused by the server, or added)."""

    serializer_class = SuppressionSerializer
    model = Suppression
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet:
        rows = super().get_queryset()
        search = self.request.query_params.get("q", "").replace("\x00", "").strip()[:ADDRESS_MAX]
        return rows.filter(address__contains=normalize_address(search)) if search else rows

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        serializer.instance = service.add_suppression(
            self.request.tenant,
            self.request.auth,
            data["address"],
            data.get("reason", Suppression.Reason.MANUAL),
            data.get("detail", ""),
            source=Suppression.Source.API,
        )

    def perform_destroy(self, instance: Suppression) -> None:
        service.remove_suppression(self.request.tenant, self.request.auth, instance)


router = SimpleRouter()
router.register("topics", TopicViewSet, basename="api-topic")
router.register("layouts", LayoutViewSet, basename="api-layout")
router.register("suppressions", SuppressionViewSet, basename="api-suppression")
urlpatterns = router.urls
