"""Operators' view of email consent: read-only lists (tenants change these on their own pages and API,
where every change is audited)."""

from django.contrib import admin

from consent.models import EmailLayout, Suppression, Topic, Unsubscribe


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Topic)
class TopicAdmin(ReadOnly):
    list_display = ("name", "tenant", "transactional", "created_at")
    search_fields = ("name",)
    list_select_related = ("tenant",)


@admin.register(EmailLayout)
class EmailLayoutAdmin(ReadOnly):
    list_display = ("name", "tenant", "is_default", "updated_at")
    search_fields = ("name",)
    list_select_related = ("tenant",)


@admin.register(Suppression)
class SuppressionAdmin(ReadOnly):
    list_display = ("address", "tenant", "reason", "source", "created_at")
    list_filter = ("reason", "source")
    search_fields = ("address",)
    list_select_related = ("tenant",)


@admin.register(Unsubscribe)
class UnsubscribeAdmin(ReadOnly):
    list_display = ("address", "tenant", "topic", "source", "created_at")
    list_filter = ("source",)
    search_fields = ("address",)
    list_select_related = ("tenant", "topic")
