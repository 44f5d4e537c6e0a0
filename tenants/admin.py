from django.contrib import admin, messages

from tenants import limits
from tenants.audit import record
from tenants.invitations import revoke_links_of
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Tenant, TenantLimits


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class TenantLimitsInline(admin.StackedInline):
    """Operators' limits for this tenant; a blank field uses the setting named in its help text."""

    model = TenantLimits
    can_delete = False
    extra = 1
    max_num = 1
    verbose_name = verbose_name_plural = "Limits (blank: the installation's default)"


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TenantLimitsInline, MembershipInline]

    def get_deleted_objects(self, objs, request):
        """A tenant's audit events go with it (nobody deletes them one by one, so nobody has that
        permission, which would otherwise make the admin refuse to delete any tenant that has events)."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(str(AuditEvent._meta.verbose_name))
        return deleted, model_count, perms_needed, protected

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is Membership:
            # Before saving: the deleted rows are gone after.
            for member_form in formset.initial_forms:
                if member_form in formset.deleted_forms:
                    membership_removed(request, member_form.instance)
                elif "role" in member_form.changed_data:
                    role_changed(request, member_form.instance, member_form.initial.get("role"))
        super().save_formset(request, form, formset, change)
        if formset.model is TenantLimits:
            limits.forget()  # this process at once; the others within LIMITS_CACHE_SECONDS


def role_changed(request, membership: Membership, old: str | None) -> None:
    via, new = AuditEvent.Via.ADMIN, membership.role
    record(membership.tenant, request.user, "member.role_changed", membership.user, via=via, old=old, new=new)


def membership_removed(request, membership: Membership) -> None:
    """An operator removes a member: like on the Members page, the links they held or sent stop working."""
    revoked = revoke_links_of(membership.tenant, membership.user)
    via = AuditEvent.Via.ADMIN
    record(
        membership.tenant,
        request.user,
        "member.removed",
        membership.user,
        via=via,
        revoked_invitations=revoked,
    )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]

    def save_model(self, request, obj: Membership, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "role" in form.changed_data:
            role_changed(request, obj, form.initial.get("role"))

    def delete_model(self, request, obj: Membership) -> None:
        membership_removed(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset.select_related("tenant", "user"):
            self.delete_model(request, membership)


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
    fields = API_KEY_FIELDS = (
        "tenant",
        "name",
        "prefix",
        "secret_hash",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = tuple(f for f in API_KEY_FIELDS if f != "name")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for api_key in queryset.select_related("tenant"):
            if api_key.revoke():
                revoked += 1
                record(api_key.tenant, request.user, "api_key.revoked", api_key, via=AuditEvent.Via.ADMIN)
        self.message_user(
            request, f"Revoked {revoked} API key{'s' if revoked != 1 else ''}.", messages.SUCCESS
        )


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Operators see invitations and revoke them; they are made on the tenant's Members page, which
    emails the link (only its hash exists here)."""

    list_display = [
        "email",
        "tenant",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["role", "tenant"]
    search_fields = ["email", "tenant__name"]
    list_select_related = ["tenant", "invited_by"]
    readonly_fields = [
        "tenant",
        "email",
        "role",
        "token_hash",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected invitations")
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for invitation in queryset.select_related("tenant"):
            if invitation.revoke():
                revoked += 1
                record(
                    invitation.tenant,
                    request.user,
                    "invitation.revoked",
                    invitation,
                    via=AuditEvent.Via.ADMIN,
                )
        self.message_user(
            request, f"Revoked {revoked} invitation{'s' if revoked != 1 else ''}.", messages.SUCCESS
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only: nobody adds, changes or deletes an event here (nor anywhere else)."""

    list_display = ["created_at", "tenant", "actor_label", "via", "action", "object_type", "object_label"]
    list_filter = ["action", "via", "tenant"]
    search_fields = ["actor_label", "object_label", "=object_id", "tenant__name"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (
        "created_at",
        "tenant",
        "actor",
        "actor_label",
        "via",
        "action",
        "object_type",
        "object_id",
        "object_label",
        "details",
    )
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
