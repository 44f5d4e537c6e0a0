from django.contrib import admin, messages

from tenants.models import ApiKey, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("yes", "Revoked"), ("no", "Active")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Operators see and revoke keys; keys are created on the tenant's API keys page, which shows the key
    once (the admin could not: only its hash exists)."""

    list_display = ["name", "tenant", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant", RevokedFilter]
    search_fields = ["name", "prefix", "tenant__name"]
    list_select_related = ["tenant", "created_by"]
    fields = [
        "tenant",
        "name",
        "prefix",
        "secret_hash",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = [f for f in fields if f != "name"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset) -> None:
        revoked = sum(api_key.revoke() for api_key in queryset)
        self.message_user(
            request, f"Revoked {revoked} API key{'s' if revoked != 1 else ''}.", messages.SUCCESS
        )
