"""REST API, read only (`read` scope): the tenant's senders and providers.

`GET /api/v1/senders/` (`/<id>/`) and `GET /api/v1/providers/` (`/<id>/`). A provider's secrets (its
password or API key), its webhook token and credentials, and its settings are never answered: settings
hold hosts and user names, which are not secrets but not a program's business either. The pages edit them.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from integrations.models import Provider, Sender
from tenants.api import API_ERROR, NumberedPagination, TenantApiMixin


class ProviderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Provider
        # An allow-list: a field added to the model later is not answered until it is added here.
        fields = [
            "id",
            "channel",
            "name",
            "kind",
            "rate_per_second",
            "rate_burst",
            "last_test_ok",
            "last_tested_at",
            "created_at",
        ]
        read_only_fields = fields


class SenderSerializer(serializers.ModelSerializer):
    reply_to = serializers.CharField(read_only=True, help_text="Empty: replies go to the From address.")

    class Meta:
        model = Sender
        fields = [
            "id",
            "name",
            "from_name",
            "from_address",
            "reply_to",
            "provider",
            "is_default",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"provider": {"help_text": "Null: Rowbell's own mail server."}}


class RowsPagination(NumberedPagination):
    def get_paginated_response_schema(self, schema: dict) -> dict:
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"]["description"] = "Rows on all pages."
        return answer

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["description"] = parameter["description"].replace("Workflows", "Rows")
        return parameters


ONE = {404: OpenApiResponse(API_ERROR)}


@extend_schema_view(
    list=extend_schema(summary="List the providers"),
    retrieve=extend_schema(summary="One provider", responses={200: ProviderSerializer, **ONE}),
)
class ProviderViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """How messages of one channel leave: an SMTP server or an ESP (never its secrets)."""

    serializer_class = ProviderSerializer
    pagination_class = RowsPagination

    def get_queryset(self) -> QuerySet:
        # The encrypted columns are not even read.
        return (
            self.tenant_rows(Provider)
            .defer("secrets", "webhook_credentials", "settings")
            .order_by("name", "id")
        )


@extend_schema_view(
    list=extend_schema(summary="List the email senders"),
    retrieve=extend_schema(summary="One email sender", responses={200: SenderSerializer, **ONE}),
)
class SenderViewSet(TenantApiMixin, viewsets.ReadOnlyModelViewSet):
    """An identity email is sent from, and the provider that carries it."""

    serializer_class = SenderSerializer
    pagination_class = RowsPagination

    def get_queryset(self) -> QuerySet:
        return self.tenant_rows(Sender).order_by("name", "id")


router = SimpleRouter()
router.register("senders", SenderViewSet, basename="api-sender")
router.register("providers", ProviderViewSet, basename="api-provider")
urlpatterns = router.urls
