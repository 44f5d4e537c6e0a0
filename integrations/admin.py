from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html

from integrations.models import DataSource, EmailProvider, EventDelivery, EventEndpoint, Schedule, Sender
from tenants.audit import record
from workflows.datasource_usage import delete_unless_used, published_workflows_using


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "tenant",
        "masked_url",
        "status",
        "listener_status",
        "listener_seen_at",
        "notify_enabled",
    ]
    list_filter = ["status", "listener_status", "notify_enabled", "tenant"]
    search_fields = ["name", "tenant__name"]
    # Connection URLs hold passwords: operators see them masked and never edit them here.
    exclude = ["connection_url", "stale_trigger_urls"]
    # notify_enabled is read-only here: changing it must reinstall the trigger functions in the customer's
    # database, which the tenant's edit page does (integrations/views.py) and a plain admin save would not.
    # schemas too: the tenant's edit page shows the setup SQL the change needs.
    readonly_fields = [
        "masked_url",
        "masked_stale_databases",
        "schemas",
        "notify_enabled",
        "status",
        "last_error",
        "checked_at",
        "listener_status",
        "listener_error",
        "listener_seen_at",
        "created_at",
    ]

    @admin.display(description="Connection")
    def masked_url(self, obj: DataSource) -> str:
        return obj.masked_url

    @admin.display(description="Previous databases with Rowbell's triggers")
    def masked_stale_databases(self, obj: DataSource) -> str:
        return ", ".join(obj.masked_stale_databases) or "-"

    def get_deleted_objects(self, objs, request):
        """Protect data sources that published workflows use, in the delete page and the bulk action.

        Deleting one would leave Rowbell's triggers in the customer's database and the workflows failing;
        listing the workflows as protected makes the admin refuse with its standard page.
        """
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for source in objs:
            protected.extend(
                _workflow_link(workflow, source) for workflow in published_workflows_using(source)
            )
        return deleted, model_count, perms_needed, protected

    def save_model(self, request, obj: DataSource, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            record(obj.tenant, request.user, "datasource.changed", obj, via="admin", fields=form.changed_data)

    def delete_model(self, request, obj: DataSource) -> None:
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        # The confirmation page checked usage; a workflow published since then must still stop the delete.
        refused = []
        for source in queryset:
            pk = source.pk
            if delete_unless_used(source):
                refused.append(str(source))
            else:
                record(source.tenant, request.user, "datasource.deleted", source, object_id=pk, via="admin")
        if refused:
            raise PermissionDenied(
                f"Not deleted: {', '.join(refused)}. A workflow using it was published while you confirmed."
            )


def _workflow_link(workflow, source: DataSource) -> str:
    url = reverse("admin:workflows_workflow_change", args=[workflow.pk])
    return format_html('Published workflow: <a href="{}">{}</a> (uses {})', url, workflow, source)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules follow publishing; operators read them here and change them by republishing."""

    list_display = ["workflow", "tenant", "next_fire_at", "last_fired_at", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["workflow__name", "tenant__name"]
    list_select_related = ["workflow", "tenant"]
    readonly_fields = ["workflow", "step", "rule", "next_fire_at", "last_fired_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False


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


@admin.register(EmailProvider)
class EmailProviderAdmin(_ReadOnly):
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
