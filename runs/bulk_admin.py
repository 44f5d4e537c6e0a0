"""Operators' bulk retry and cancel (Django admin): the operations of every tenant, read only, and a page
that counts, then starts, one for a tenant's filter (runs/bulk/). The page's token is the idempotency key,
so a double submit starts one operation; the audit event lands in the tenant's log, via "admin"."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from runs.bulk import BadFilter, KeyReused, counts_in_words, dry_run, parse_filter, start_operation
from runs.bulk.filters import FIELDS
from runs.models import BulkOperation
from tenants.models import AuditEvent, Tenant


class AdminBulkForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.order_by("name"))
    action = forms.ChoiceField(choices=BulkOperation.Action.choices, widget=forms.RadioSelect)
    workflow = forms.CharField(required=False, help_text="A workflow id of that tenant.")
    step = forms.CharField(required=False, help_text="A step key (UUID).")
    error = forms.CharField(required=False, max_length=500, label="Error contains")
    created_from = forms.CharField(
        required=False, help_text="Runs started at or after, e.g. 2026-03-02T09:00:00Z"
    )
    created_to = forms.CharField(required=False, help_text="Runs started before (RFC 3339).")
    state = forms.CharField(required=False, help_text="retry: failed; cancel: open, retrying or waiting.")
    token = forms.CharField(widget=forms.HiddenInput)


@admin.register(BulkOperation)
class BulkOperationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "tenant",
        "status",
        "processed",
        "total",
        "acted",
        "skipped_sent",
        "created_at",
    ]
    list_filter = ["status", "action", "tenant"]
    search_fields = ["=id", "name"]
    list_select_related = ["tenant"]
    readonly_fields = [field.name for field in BulkOperation._meta.fields]
    change_list_template = "runs/admin/bulk_change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the count-then-start page below, not a raw row

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        new = path("new/", self.admin_site.admin_view(self.new_operation), name="runs_bulkoperation_new")
        return [new, *super().get_urls()]

    def new_operation(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("runs.view_bulkoperation"):
            return HttpResponse(status=403)
        form = AdminBulkForm(request.POST or None, initial={"token": uuid.uuid4().hex, "action": "retry"})
        context = {**self.admin_site.each_context(request), "form": form, "title": "Retry or cancel in bulk"}
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tenant = data["tenant"]
            try:
                flt = parse_filter(
                    tenant, data["action"], {name: data[name] for name in FIELDS}, from_form=True
                )
            except BadFilter as exc:
                context["problem"] = str(exc)
                return TemplateResponse(request, "runs/admin/bulk_new.html", context)
            if "_start" not in request.POST:
                context["summary"] = f"{tenant.name}: {counts_in_words(flt.action, dry_run(tenant, flt))}"
                return TemplateResponse(request, "runs/admin/bulk_new.html", context)
            try:
                operation, created = start_operation(
                    tenant,
                    flt,
                    actor=request.user,
                    idempotency_key=f"admin:{data['token']}",
                    via=AuditEvent.Via.ADMIN,
                )
            except KeyReused:
                context["problem"] = "This page already started an operation: open it again for another one."
                return TemplateResponse(request, "runs/admin/bulk_new.html", context)
            note = "Started" if created else "Already started"
            self.message_user(request, f"{note}: {operation.name}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:runs_bulkoperation_change", args=[operation.pk]))
        return TemplateResponse(request, "runs/admin/bulk_new.html", context)
