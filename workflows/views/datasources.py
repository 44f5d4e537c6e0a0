"""Data-source pages: list, add, edit, test the connection, show the setup SQL, browse tables and columns."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from integrations.datasources import (
    ConnectionCheck,
    DataSourceUnavailable,
    list_columns,
    list_tables,
    plan_from_url,
    remove_triggers_from,
    same_database,
    test_connection,
)
from integrations.datasources.connection import check_role
from integrations.datasources.session import looks_pooled
from integrations.models import DataSource
from tenants.audit import record_for
from tenants.permissions import admins_only, members_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.database_triggers import (
    published_triggers,
    reinstall_triggers,
    triggers_up_to_date,
    watched_tables,
)
from workflows.datasource_usage import delete_unless_used, published_workflows_using
from workflows.steps.base import PublishError


class SchemaChoices(forms.Widget):
    """The schemas to watch: ticked boxes (name "schemas") plus a typed, comma-separated list
    ("schemas_typed", offered while Rowbell cannot list the server's schemas yet). Drawn by the setup
    panel (integrations/_schema_picker.html), not by the generic form fields."""

    def value_from_datadict(self, data, files, name):
        typed = [part for entry in data.getlist(f"{name}_typed") for part in entry.split(",")]
        chosen = [*data.getlist(name), *typed]
        # A post from a page (or program) without the picker keeps what the data source has.
        return chosen if chosen or f"{name}_shown" in data else None


class SchemaListField(forms.Field):
    widget = SchemaChoices

    def clean(self, value):
        if value is None:
            return None  # not on the form: DataSourceForm.clean_schemas keeps the current ones
        names: list[str] = []
        for name in value or []:
            name = name.strip()
            if name and name not in names:
                names.append(name)
        if not names:
            raise forms.ValidationError("Choose at least one schema whose tables Rowbell should watch.")
        for name in names:
            if len(name.encode()) > 63:
                raise forms.ValidationError(f"“{name[:70]}” is longer than PostgreSQL's 63-byte names.")
        return names


class DataSourceForm(forms.ModelForm):
    connection_url = forms.CharField(
        label="Connection URL",
        help_text=(
            "postgresql://rowbell_app:password@db.example.com:5432/shop — the role and password Rowbell will "
            "use. The setup SQL creates that role; leave out the user or password and Rowbell proposes them."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    schemas = SchemaListField(label="Schemas to watch", required=False)

    class Meta:
        model = DataSource
        fields = ["name", "connection_url", "schemas", "notify_enabled"]
        labels = {"notify_enabled": "Wake the listener with NOTIFY"}
        help_texts = {
            "notify_enabled": (
                "Off by default: polling alone notices a new row within a fraction of a second. NOTIFY "
                "wakes the listener at once, but PostgreSQL serialises the commits of every transaction that "
                "sends one, which slows the writes of a busy table."
            )
        }

    def clean_schemas(self) -> list[str]:
        return self.cleaned_data["schemas"] or list(self.instance.schemas)

    @property
    def main_fields(self) -> list:
        """Drawn by the generic field list; the schemas by the setup panel."""
        return [self[name] for name in ("name", "connection_url", "notify_enabled")]

    def clean_connection_url(self) -> str:
        url = self.cleaned_data["connection_url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
            raise forms.ValidationError(
                "Enter a PostgreSQL URL with a database name, like postgresql://user:password@host:5432/dbname."
            )
        return url


class SecretTextInput(forms.PasswordInput):
    """A visible text box that is never filled in from the server: what it holds is a secret."""

    input_type = "text"


class DataSourceEditForm(DataSourceForm):
    """Rename, rotate the connection URL (an empty field keeps the current one), switch NOTIFY."""

    connection_url = forms.CharField(
        label="Connection URL",
        required=False,
        widget=SecretTextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "Leave empty to keep the current URL",
            }
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection_url"].help_text = format_html(
            "Currently <code>{}</code>. To change the password or the host, enter the whole new URL.",
            self.instance.masked_url,
        )

    def clean_connection_url(self) -> str:
        if not self.cleaned_data["connection_url"].strip():
            return self.instance.connection_url
        return super().clean_connection_url()


@login_required
def datasource_list(request: TenantRequest) -> HttpResponse:
    sources = DataSource.objects.for_tenant(request.tenant).order_by("name")
    return render(request, "integrations/datasource_list.html", {"sources": sources})


@login_required
@admins_only("manage data sources")
def datasource_add(request: MemberRequest) -> HttpResponse:
    form = DataSourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        source = form.save(commit=False)
        source.tenant = request.tenant
        source.save()
        record_for(request, "datasource.created", source)
        check = test_connection(source)
        level = messages.SUCCESS if check.ok else messages.WARNING
        messages.add_message(request, level, f"Saved {source.name}. {check.message}")
        return redirect("integrations:datasource_detail", source.pk)
    return render(request, "integrations/datasource_form.html", {"form": form})


@login_required
@admins_only("manage data sources")
def datasource_edit(request: MemberRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    # Read before validation: a valid ModelForm has already copied the new values onto `source`.
    old_url, old_notify, old_status = source.connection_url, source.notify_enabled, source.status
    form = DataSourceEditForm(request.POST or None, instance=source)
    if request.method == "POST" and form.is_valid():
        url_changed = source.connection_url != old_url
        # Only the edited fields: a full save would write the listener's and the last check's fields, read
        # a moment ago, over what they recorded meanwhile. The URL only when it changed: every save
        # encrypts it anew.
        fields = ["name", "notify_enabled", "schemas", *(["connection_url"] if url_changed else [])]
        form.save(commit=False).save(update_fields=fields)
        record_for(
            request, "datasource.changed", source, url_changed=url_changed, notify=source.notify_enabled
        )
        check = test_connection(source, watched_tables(source))
        level = messages.SUCCESS if check.ok else messages.WARNING
        messages.add_message(request, level, f"Saved {source.name}. {check.message}")
        setting_changed = url_changed or source.notify_enabled != old_notify
        installed = _reinstall_after_edit(request, source, check, setting_changed)
        if url_changed:
            # A previous URL that never worked has no triggers to remove.
            worked = old_status != DataSource.Status.ERROR
            _set_stale_databases(source, [*source.stale_databases, *([old_url] if worked else [])])
        # Only once the triggers work here: a typo in the new host must not leave no database logging events.
        if installed and source.stale_databases:
            _remove_triggers_from_previous_databases(request, source)
        return redirect("integrations:datasource_detail", source.pk)
    return render(request, "integrations/datasource_form.html", {"form": form, "source": source})


def _set_stale_databases(source: DataSource, urls: list[str]) -> None:
    """Remember `urls` (one per database; not the current one, whose triggers are the live ones)."""
    kept: list[str] = []
    for url in urls:
        if not same_database(url, source.connection_url) and not any(same_database(url, k) for k in kept):
            kept.append(url)
    source.stale_trigger_urls = "\n".join(kept)
    source.save(update_fields=["stale_trigger_urls"])


def _remove_triggers_from_previous_databases(request: TenantRequest, source: DataSource) -> None:
    """The source points at another database now: its triggers must not go on logging rows in the old ones.
    A database that cannot be reached stays remembered, and the next save that gets here tries again."""
    workflow_ids = list(
        published_triggers(datasource_id=source.pk).values_list("version__workflow_id", flat=True)
    )
    unreachable = []
    for url in source.stale_databases:
        try:
            removed = remove_triggers_from(url, workflow_ids) if workflow_ids else 0
        except DataSourceUnavailable as exc:
            unreachable.append(url)
            messages.warning(
                request,
                f"Rowbell could not remove its triggers from the previous database, so they still log rows "
                f"there. {str(exc).rstrip('.')}. Rowbell tries again each time you save {source.name}; or drop "
                "the triggers named rowbell_wf_… on the watched tables there yourself.",
            )
            continue
        if removed:
            messages.info(
                request, f"Removed {removed} trigger{pluralize(removed)} from the previous database."
            )
    _set_stale_databases(source, unreachable)


def _reinstall_after_edit(
    request: TenantRequest, source: DataSource, check: ConnectionCheck, setting_changed: bool
) -> bool:
    """Make the installed triggers match a new URL or NOTIFY setting, and say how that went; True when
    they match (or there are none).

    The edit is saved whatever happens here. A reinstall that failed is retried by the next save that
    reaches the database, because the installed triggers are compared with the setting first.
    """
    if not published_triggers(datasource_id=source.pk).exists():
        return True
    if not check.server_version:
        # The check could not even connect: do not wait out one more timeout per published workflow.
        if setting_changed:
            _warn_triggers_not_reinstalled(request, check.message)
        return False
    try:
        # A rename alone leaves the customer's tables alone: reinstalling locks each watched table.
        if not setting_changed and triggers_up_to_date(source):
            return True
        count = reinstall_triggers(source)
    except PublishError as exc:
        reasons = [message for fields in exc.step_errors.values() for message in fields.values()]
        _warn_triggers_not_reinstalled(request, reasons[0] if reasons else str(exc))
        return False
    except DataSourceUnavailable as exc:
        _warn_triggers_not_reinstalled(request, str(exc))
        return False
    messages.success(request, f"Reinstalled the triggers of {count} published workflow{pluralize(count)}.")
    return True


def _warn_triggers_not_reinstalled(request: TenantRequest, reason: str) -> None:
    messages.warning(
        request,
        "The triggers in the database still use the old setting, because Rowbell could not reinstall them: "
        f"{reason} Save this page again once the database is reachable.",
    )


@login_required
@members_only
def datasource_detail(request: MemberRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    # The saved password is never shown: the script names it by a placeholder (the role exists by now).
    plan = plan_from_url(source.connection_url, source.schemas, tenant_slug=request.tenant.slug)
    context = {
        "source": source,
        "plan": plan,
        "setup_sql": plan.sql(show_password=False),
        "used_by": published_workflows_using(source),
        "pooled": looks_pooled(source.connection_url),
    }
    return render(request, "integrations/datasource_detail.html", context)


@login_required
@require_POST
@admins_only("manage data sources")
def datasource_test(request: MemberRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    check = test_connection(source, watched_tables(source))
    return render(request, "integrations/_check.html", {"source": source, "check": check})


@login_required
def datasource_tables(request: TenantRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    try:
        tables, error = list_tables(source), ""
    except DataSourceUnavailable as exc:
        tables, error = [], str(exc)
    watched = [t for t in tables if t.schema in source.schemas]
    context = {"source": source, "tables": watched, "others": len(tables) - len(watched), "error": error}
    return render(request, "integrations/_tables.html", context)


@login_required
def datasource_role(request: TenantRequest, datasource_id: int) -> HttpResponse:
    """The warning block when the role can do more than Rowbell needs (empty when it cannot, or when the
    database cannot be reached: the connection check says why)."""
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    risk = check_role(source)
    return render(
        request, "integrations/_role_warning.html", {"role_warnings": risk.warnings if risk else []}
    )


@login_required
def datasource_columns(request: TenantRequest, datasource_id: int) -> HttpResponse:
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
@admins_only("manage data sources")
def datasource_delete(request: MemberRequest, datasource_id: int) -> HttpResponse:
    source = get_for_tenant_or_404(DataSource, request.tenant, pk=datasource_id)
    # Deleting would leave Rowbell's triggers logging rows in the customer's database with nobody to
    # remove them, and the workflows failing on a missing data source.
    if used_by := delete_unless_used(source):
        names = ", ".join(workflow.name for workflow in used_by)
        messages.error(
            request,
            f"{source.name} is used by published workflows: {names}. "
            "Unpublish them or point their steps at another data source first.",
        )
        return redirect("integrations:datasource_detail", source.pk)
    record_for(request, "datasource.deleted", source, object_id=datasource_id)
    messages.success(request, f"Deleted {source.name}.")
    return redirect("integrations:datasource_list")
