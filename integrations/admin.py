from django.contrib import admin

from integrations.models import DataSource, Schedule


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
    # The connection URL holds a password: operators see it masked and never edit it here.
    exclude = ["connection_url"]
    readonly_fields = [
        "masked_url",
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
