"""A data source's capture: row triggers or logical decoding, the slot's health and its guard."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from integrations.datasources import DataSourceUnavailable, plan_from_url
from integrations.datasources.logical import publication_name
from integrations.models import DataSource
from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.database_triggers import switch_capture


class CaptureForm(forms.ModelForm):
    class Meta:
        model = DataSource
        fields = ["capture_mode", "slot_guard", "slot_max_retained_mb"]
        labels = {
            "capture_mode": "Capture changes with",
            "slot_guard": "When the slot holds too much WAL",
            "slot_max_retained_mb": "Slot limit (MB)",
        }
        widgets = {"capture_mode": forms.RadioSelect, "slot_guard": forms.RadioSelect}

    def clean_slot_max_retained_mb(self) -> int:
        value = self.cleaned_data["slot_max_retained_mb"]
        if value < 16:
            raise forms.ValidationError("At least 16 MB: a smaller limit would trip on ordinary bursts.")
        return value


@login_required
@require_http_methods(["GET", "POST"])
@admins_only("manage data sources", writes_only=True)
def datasource_capture(request: TenantRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    form, error, saved = CaptureForm(instance=source), "", False
    if request.method == "POST":
        form, error, saved = _save(request, source)
    role = plan_from_url(source.connection_url).role
    context = {
        "source": source,
        "form": form,
        "error": error,
        "saved": saved,
        "setup": _setup_sql(role, source),
    }
    return render(request, "integrations/_capture.html", context)


def _save(request: TenantRequest, source: DataSource) -> tuple[CaptureForm, str, bool]:
    mode_before = source.capture_mode
    form = CaptureForm(request.POST, instance=DataSource.objects.get(pk=source.pk))
    if not form.is_valid():
        return form, "", False
    guard = {name: form.cleaned_data[name] for name in ("slot_guard", "slot_max_retained_mb")}
    DataSource.objects.filter(pk=source.pk).update(**guard)
    for name, value in guard.items():
        setattr(source, name, value)
    mode = form.cleaned_data["capture_mode"]
    if mode != mode_before:
        try:
            switch_capture(source, mode)
        except DataSourceUnavailable as exc:
            return CaptureForm(instance=source), str(exc), False
        record_for(request, "datasource.capture_switched", source, mode=mode)
    return CaptureForm(instance=source), "", True


def _setup_sql(role: str, source: DataSource) -> str:
    """What a superuser runs once before logical decoding can be switched on."""
    quoted = '"' + role.replace('"', '""') + '"'
    return (
        "-- Run as a superuser. Logical decoding reads the write-ahead log through a replication slot.\n"
        f"ALTER ROLE {quoted} REPLICATION;\n"
        "ALTER SYSTEM SET wal_level = logical;            -- takes effect after a restart\n"
        "-- A slot that nobody reads keeps WAL: past this size PostgreSQL gives the slot up instead of\n"
        "-- filling the disk (Rowbell's own guard acts earlier, at the limit set below).\n"
        "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB';\n"
        "SELECT pg_reload_conf();\n"
        "-- Tables the role does not own: their owner adds them to Rowbell's publication, e.g.\n"
        f"-- ALTER PUBLICATION {publication_name(source.pk)} ADD TABLE public.orders;\n"
    )
