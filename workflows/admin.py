import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.urls import reverse
from django.utils.html import format_html

from integrations.json_input import StorableJSONFormField
from integrations.models import DataSource
from tenants.audit import record
from workflows.datasource_usage import delete_unless_used, published_workflows_using
from workflows.models import Schedule, Step, Workflow, WorkflowVersion
from workflows.steps.webhook_trigger import webhook_path


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    readonly_fields = ("number", "state", "sandbox", "published_at", "published_by")
    fields = readonly_fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "status", "published_version", "updated_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["name", "tenant__name"]
    readonly_fields = ["published_version", "webhook", "created_by", "created_at", "updated_at"]
    exclude = ["webhook_secret"]
    inlines = [VersionInline]

    @admin.display(description="Webhook")
    def webhook(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return format_html(
            "<code>POST {}</code> (for a webhook trigger). The signing secret is revealed, copied and rotated "
            "in the builder's trigger panel, by the tenant's admins and owners.",
            webhook_path(obj.pk),
        )


# A draft step's config is edited as JSON here: a NUL or deep nesting is a form error, not a 500.
STORABLE_JSON: dict[type[models.Field], dict[str, Any]] = {
    models.JSONField: {"form_class": StorableJSONFormField}
}


class StepInline(admin.TabularInline):
    model = Step
    formfield_overrides = STORABLE_JSON
    extra = 0
    fields = ["parent", "position", "kind", "name", "config"]
    fk_name = "version"

    def _editable(self, obj) -> bool:
        return obj is None or obj.is_draft

    def get_readonly_fields(self, request, obj=None):
        return [] if self._editable(obj) else self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "state", "number", "sandbox", "published_at"]
    list_filter = ["state", "sandbox", "tenant"]
    search_fields = ["workflow__name", "tenant__name"]
    readonly_fields = ["workflow", "number", "state", "based_on", "published_at", "published_by", "revision"]
    inlines = [StepInline]

    def has_change_permission(self, request, obj=None) -> bool:
        # A published version is history: operators read it, nobody edits it.
        if obj is not None and not obj.is_draft:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not obj.is_draft:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_JSON
    list_display = ["__str__", "kind", "version", "tenant", "position"]
    list_filter = ["kind", "version__state", "tenant"]
    search_fields = ["name", "kind", "version__workflow__name"]
    readonly_fields = ["key", "pretty_config"]
    list_select_related = ["version__workflow", "tenant"]

    @admin.display(description="Config")
    def pretty_config(self, obj: Step):
        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2))

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and not obj.version.is_draft:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not obj.version.is_draft:
            return False
        return super().has_delete_permission(request, obj)


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


# The data source admin lives here: deleting one asks which published workflows use it.
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
    # database, which the tenant's edit page does (workflows/views/datasources.py) and a plain admin save would not.
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
        # The capture mode installs or drops triggers and a slot in the customer's database: the tenant's
        # data source page switches it (workflows/views/capture.py); the rest is the listener's record.
        "capture_mode",
        "slot_guard",
        "slot_max_retained_mb",
        "slot_from_lsn",
        "slot_until_lsn",
        "slot_lag_bytes",
        "slot_retained_bytes",
        "slot_guard_note",
        "listener_owner",
        "listener_lease_until",
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
