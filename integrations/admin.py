from django.contrib import admin

from integrations.models import DataSource


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "masked_url", "status", "checked_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["name", "tenant__name"]
    # The connection URL holds a password: operators see it masked and never edit it here.
    exclude = ["connection_url"]
    readonly_fields = ["masked_url", "status", "last_error", "checked_at", "created_at"]

    @admin.display(description="Connection")
    def masked_url(self, obj: DataSource) -> str:
        return obj.masked_url
