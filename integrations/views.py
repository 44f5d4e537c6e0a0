"""Data-source pages: list, add, test the connection, show the setup SQL, browse tables and columns."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.datasources import (
    DataSourceUnavailable,
    list_columns,
    list_tables,
    setup_sql,
    test_connection,
)
from integrations.models import DataSource
from tenants.scoping import get_for_tenant_or_404


class DataSourceForm(forms.ModelForm):
    connection_url = forms.CharField(
        label="Connection URL",
        help_text="postgresql://rowbell:password@db.example.com:5432/app — use the role the setup SQL creates.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    class Meta:
        model = DataSource
        fields = ["name", "connection_url", "notify_enabled"]

    def clean_connection_url(self) -> str:
        url = self.cleaned_data["connection_url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
            raise forms.ValidationError(
                "Enter a PostgreSQL URL with a database name, like postgresql://user:password@host:5432/dbname."
            )
        return url


def _admin_only(request: HttpRequest) -> HttpResponse | None:
    if request.membership is None or not request.membership.can_publish:
        return HttpResponseForbidden("Only admins and owners manage data sources.")
    return None


@login_required
def datasource_list(request: HttpRequest) -> HttpResponse:
    sources = DataSource.objects.for_tenant(request.tenant).order_by("name")
    return render(request, "integrations/datasource_list.html", {"sources": sources})


@login_required
def datasource_add(request: HttpRequest) -> HttpResponse:
    if (denied := _admin_only(request)) is not None:
        return denied
    form = DataSourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        source = form.save(commit=False)
        source.tenant = request.tenant
        source.save()
        check = test_connection(source)
        level = messages.SUCCESS if check.ok else messages.WARNING
        messages.add_message(request, level, f"Saved {source.name}. {check.message}")
        return redirect("integrations:datasource_detail", source.pk)
    return render(request, "integrations/datasource_form.html", {"form": form})


@login_required
def datasource_detail(request: HttpRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    database = urlsplit(source.connection_url).path.strip("/") or "your_database"
    context = {"source": source, "setup_sql": setup_sql(database=database)}
    return render(request, "integrations/datasource_detail.html", context)


@login_required
@require_POST
def datasource_test(request: HttpRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    if (denied := _admin_only(request)) is not None:
        return denied
    check = test_connection(source)
    return render(request, "integrations/_check.html", {"source": source, "check": check})


@login_required
def datasource_tables(request: HttpRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    try:
        tables, error = list_tables(source), ""
    except DataSourceUnavailable as exc:
        tables, error = [], str(exc)
    return render(request, "integrations/_tables.html", {"source": source, "tables": tables, "error": error})


@login_required
def datasource_columns(request: HttpRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    schema, table = request.GET.get("schema", "public"), request.GET.get("table", "")
    try:
        columns, error = list_columns(source, schema, table), ""
    except DataSourceUnavailable as exc:
        columns, error = [], str(exc)
    context = {"columns": columns, "error": error, "table": f"{schema}.{table}"}
    return render(request, "integrations/_columns.html", context)


@login_required
@require_POST
def datasource_delete(request: HttpRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    if (denied := _admin_only(request)) is not None:
        return denied
    source.delete()
    messages.success(request, f"Deleted {source.name}.")
    return redirect("integrations:datasource_list")
