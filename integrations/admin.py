from django.contrib import admin

from integrations.models import EventDelivery, EventEndpoint, Provider, Sender


@admin.register(EventEndpoint)
class EventEndpointAdmin(admin.ModelAdmin):
    """Operators see endpoints and can turn one off; tenants add and change them on their own page."""

    list_display = ["url", "tenant", "events", "active", "created_at"]
    list_filter = ["active", "tenant"]
    search_fields = ["url", "description", "tenant__name"]
    list_select_related = ["tenant"]
    # The signing secret is never shown in clear here, nor editable.
    fields = ["tenant", "url", "description", "events", "masked_secret", "active", "created_at"]
    readonly_fields = ["tenant", "url", "description", "events", "masked_secret", "created_at"]

    @admin.display(description="Signing secret")
    def masked_secret(self, obj: EventEndpoint) -> str:
        return obj.masked_secret

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EventDelivery)
class EventDeliveryAdmin(admin.ModelAdmin):
    """The outbound event log, read-only: the delivery job and its retries own these rows."""

    list_display = [
        "event_type",
        "endpoint",
        "tenant",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", "event_type", "tenant"]
    search_fields = ["event_id", "endpoint__url"]
    list_select_related = ["endpoint", "tenant"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class _ReadOnly(admin.ModelAdmin):
    """Operators look; tenants change these on their Email page, where addresses are checked and changes
    audited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Provider)
class ProviderAdmin(_ReadOnly):
    list_display = ["name", "kind", "tenant", "last_test_ok", "last_tested_at", "created_at"]
    list_filter = ["kind", "last_test_ok", "tenant"]
    search_fields = ["name", "tenant__name"]
    # Credentials are never shown here, not even masked.
    exclude = ["secrets", "webhook_credentials", "webhook_token"]


@admin.register(Sender)
class SenderAdmin(_ReadOnly):
    list_display = ["name", "from_address", "provider", "is_default", "tenant"]
    list_filter = ["is_default", "tenant"]
    search_fields = ["name", "from_address", "tenant__name"]
