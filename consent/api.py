"""REST API for email consent, through the API key's tenant (another tenant's id answers 404):

- `/api/v1/topics/`: list, create, read, rename, delete topics.
- `/api/v1/layouts/`: list, create, read, change, delete email layouts (checked like the page does).
- `/api/v1/suppressions/`: list (newest first; `q` searches addresses), add, read, remove.
Every change is recorded in the audit log, as the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from consent import service
from consent.forms import clean_address, layout_problem
from consent.models import ADDRESS_MAX, EmailLayout, Suppression, Topic, normalize_address
from tenants.api import API_ERROR, NumberedPagination, TenantApiMixin

# Schema patterns that state what the serializers accept, so that a request valid by the schema is not
# refused: no NUL character anywhere, and a name with something besides spaces.
TEXT = "^[^\\u0000]*$"
NAME = "^[^\\u0000]*[^\\u0000\\t\\n\\r ][^\\u0000]*$"
LAYOUT_MAX = 100_000
EMAIL = "email"


class ConsentPagination(NumberedPagination):
    """The workflows' numbered pages (a bad `page` or `page_size` is a 400), described for any rows."""

    def get_paginated_response_schema(self, schema: dict) -> dict:
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"]["description"] = "Rows on all pages."
        return answer

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["description"] = parameter["description"].replace("Workflows", "Rows")
        return parameters


class SuppressionFilterSerializer(serializers.Serializer):
    q = serializers.CharField(
        required=False,
        max_length=ADDRESS_MAX,
        validators=[RegexValidator(TEXT, "No NUL characters.")],
        help_text="Part of an address to search for (case-insensitive).",
    )


class StrictCharField(serializers.CharField):
    """A string and nothing else: DRF's CharField would turn 0 or true into "0" or "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(StrictCharField, serializers.EmailField):
    pass


class TextField(StrictCharField):
    """Any text without NUL, empty included. DRF's allow_blank is left off on purpose: drf-spectacular
    describes a blank-allowed field with a pattern as `oneOf` [pattern, empty], which "" matches twice
    (the pattern already allows it); the empty string is accepted here instead."""

    def run_validation(self, data=serializers.empty):
        if data == "":
            return ""
        return super().run_validation(data)


def text_field(max_length: int, **kwargs) -> serializers.CharField:
    return TextField(
        max_length=max_length,
        trim_whitespace=False,
        validators=[RegexValidator(TEXT, "No NUL characters.")],
        **kwargs,
    )


def name_field(max_length: int) -> serializers.CharField:
    return StrictCharField(
        max_length=max_length,
        trim_whitespace=False,
        validators=[RegexValidator(NAME, "Give a name (not only spaces), without NUL characters.")],
    )


class Conflict(exceptions.APIException):
    """The request is well-formed but clashes with what the tenant has: a name taken, or a layout that
    cannot be used (its template does not compile, or has no content block)."""

    status_code = 409
    default_detail = "This conflicts with the workspace's data."


# Typed as what they are mixed into (DRF's serializer), so that their calls to it are checked.
if TYPE_CHECKING:

    class _Serializer(serializers.ModelSerializer): ...

    class _UpdatingViewSet(viewsets.ModelViewSet): ...
else:
    _Serializer = _UpdatingViewSet = object


class _OnlyWritableFields(_Serializer):
    """A body with a key this endpoint does not take (a read-only `id`, a misspelt name) is a 400: the
    request schema says `additionalProperties: false`, so it must not be quietly ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = sorted(name for name, field in self.fields.items() if not field.read_only)
            if set(data) - set(writable):
                raise serializers.ValidationError(
                    {"body": f"Only these fields can be written here: {', '.join(writable)}."}
                )
        return super().to_internal_value(data)


def request_body(properties: dict, required: list[str]) -> dict:
    """The request schema of a create (`required` given) or a partial update (nothing required)."""
    body = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        body["required"] = required
    return {"application/json": body}


def _string(pattern: str, max_length: int, **extra) -> dict:
    return {"type": "string", "pattern": pattern, "maxLength": max_length, **extra}


TOPIC_FIELDS = {
    "name": _string(NAME, 100),
    "description": _string(TEXT, 300),
    "transactional": {"type": "boolean"},
}
LAYOUT_FIELDS = {
    "name": _string(NAME, 100),
    "html": _string(TEXT, LAYOUT_MAX, description="HTML with {% block content %}{% endblock %}."),
    "is_default": {"type": "boolean"},
}
SUPPRESSION_FIELDS = {
    "address": {"type": "string", "format": "email", "maxLength": 254},
    "reason": {"type": "string", "enum": [value for value, _ in Suppression.Reason.choices]},
    "note": _string(TEXT, 2000),
}


class _UniqueName(_Serializer):
    """A name unique (case-insensitively) among the tenant's rows of `Meta.model` (a 409 otherwise)."""

    def validate_name(self, value: str) -> str:
        name = value.strip(" \t\n\r")
        rows = self.Meta.model.objects.filter(tenant=self.context["request"].tenant, name__iexact=name)
        if self.instance is not None:
            rows = rows.exclude(pk=self.instance.pk)
        if rows.exists():
            raise Conflict(f"name: “{name}” is taken in this workspace: choose another name.")
        return name


class TopicSerializer(_OnlyWritableFields, _UniqueName, serializers.ModelSerializer):
    name = name_field(100)
    description = text_field(300, required=False)

    class Meta:
        model = Topic
        fields = ["id", "name", "description", "transactional", "created_at"]
        read_only_fields = ["id", "created_at"]


class LayoutSerializer(_OnlyWritableFields, _UniqueName, serializers.ModelSerializer):
    name = name_field(100)
    html = text_field(
        LAYOUT_MAX,
        help_text="HTML with {% block content %}{% endblock %} where a message goes, rendered in the same "
        "sandbox as step templates. A template error or a missing block is a 409 that says where.",
    )

    class Meta:
        model = EmailLayout
        fields = ["id", "name", "html", "is_default", "updated_at"]
        read_only_fields = ["id", "updated_at"]

    def validate_html(self, value: str) -> str:
        problem = layout_problem(value)
        if problem:
            raise Conflict(f"html: {problem}")
        return value


class SuppressionSerializer(_OnlyWritableFields, serializers.ModelSerializer):
    address = StrictEmailField(max_length=254, help_text="Kept lower-cased.")
    # Not "detail": every error answer is {"detail": ...}, and a field of that name would look like one.
    note = text_field(
        2000,
        source="detail",
        required=False,
        help_text="The provider's or server's words for an automatic entry, or a person's note.",
    )
    delivery = serializers.IntegerField(
        source="delivery_id", read_only=True, allow_null=True, help_text="The message that caused it."
    )

    class Meta:
        model = Suppression
        fields = ["id", "address", "reason", "source", "note", "delivery", "created_at"]
        read_only_fields = ["id", "source", "delivery", "created_at"]

    def validate_address(self, value: str) -> str:
        try:
            return clean_address(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError("Enter a valid email address.") from exc


class _TenantCrud(TenantApiMixin):
    pagination_class = ConsentPagination
    model: type = Topic  # each viewset names its own model and ordering
    ordering: tuple[str, ...] = ("id",)

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(self.model).order_by(*self.ordering)


class _ChangesNeedABody(_UpdatingViewSet):
    """PUT and PATCH without a body are a 400: the schema requires one ("change nothing" is a mistake).
    A mixin of the viewsets that update, so the others get no PUT route from the router."""

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not request.body:
            writable = sorted(
                name for name, field in self.get_serializer().fields.items() if not field.read_only
            )
            raise serializers.ValidationError(
                {"body": f"Send a JSON object with the fields to change: {', '.join(writable)}."}
            )
        return super().update(request, *args, **kwargs)


NOT_FOUND = {404: OpenApiResponse(API_ERROR, description="No such object for this API key's tenant")}
CONFLICTS = {"layout": ", or the HTML is not a usable layout (the detail says why)"}


def _crud_schema(noun: str, plural: str, serializer, fields: dict, required: list[str]):
    bad = {
        400: OpenApiResponse(API_ERROR, description="The request is malformed: the detail says which part"),
        409: OpenApiResponse(API_ERROR, description=f"The name is taken{CONFLICTS.get(noun, '')}"),
    }
    return extend_schema_view(
        list=extend_schema(summary=f"List the {plural}"),
        create=extend_schema(
            summary=f"Add a {noun}",
            request=request_body(fields, required),
            responses={201: serializer, **bad},
        ),
        retrieve=extend_schema(summary=f"One {noun}", responses={200: serializer, **NOT_FOUND}),
        update=extend_schema(
            summary=f"Replace a {noun}",
            request=request_body(fields, required),
            responses={200: serializer, **bad, **NOT_FOUND},
        ),
        partial_update=extend_schema(
            summary=f"Change a {noun}",
            request=request_body(fields, []),
            responses={200: serializer, **bad, **NOT_FOUND},
        ),
        destroy=extend_schema(summary=f"Delete a {noun}", responses={204: None, **NOT_FOUND}),
    )


@_crud_schema("topic", "email topics", TopicSerializer, TOPIC_FIELDS, ["name"])
class TopicViewSet(_ChangesNeedABody, _TenantCrud, viewsets.ModelViewSet):
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


@_crud_schema("layout", "email layouts", LayoutSerializer, LAYOUT_FIELDS, ["name", "html"])
class LayoutViewSet(_ChangesNeedABody, _TenantCrud, viewsets.ModelViewSet):
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
        parameters=[SuppressionFilterSerializer],
    ),
    create=extend_schema(
        summary="Suppress an address",
        request=request_body(SUPPRESSION_FIELDS, ["address"]),
        responses={201: SuppressionSerializer, 400: OpenApiResponse(API_ERROR)},
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
    filter_serializer = SuppressionFilterSerializer
    model = Suppression
    ordering = ("-created_at", "-id")

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = queryset.filter(channel=EMAIL)  # these are email addresses (each channel has its list)
        if self.action != "list":
            return queryset
        filters = SuppressionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        search = normalize_address(filters.validated_data.get("q", ""))
        return queryset.filter(address__contains=search) if search else queryset

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
