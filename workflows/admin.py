import json

from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from integrations.json_input import StorableJSONFormField
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps.webhook_trigger import webhook_path


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    fields = ["number", "state", "sandbox", "published_at", "published_by"]
    readonly_fields = fields
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
STORABLE_JSON = {models.JSONField: {"form_class": StorableJSONFormField}}


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
