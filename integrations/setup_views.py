"""The guided part of connecting a database, drawn into the add and edit pages by htmx before anything is
saved: the setup SQL for exactly the URL and schemas on the form, the server's schemas to pick from, and a
connection check of what the form holds that lists each missing grant with the statement that fixes it.

Each view reads the form as posted (an empty URL on the edit page means the saved one) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from integrations.datasources import (
    DataSourceUnavailable,
    SetupPlan,
    plan_from_url,
    server_schemas,
    test_connection,
    url_with,
)
from integrations.datasources.setup import PASSWORD_PLACEHOLDER
from integrations.models import DataSource
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404

# Shown on the connect page: where the customer's tables are, in one line any database user can run.
SCHEMAS_QUERY = (
    "SELECT table_schema, count(*) AS tables FROM information_schema.tables "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY 1 ORDER BY 2 DESC;"
)

CHECK_TIMEOUT_SECONDS = 2  # the picker probes while the person types: an unreachable host answers fast


@dataclass
class SetupForm:
    """What the add or edit form holds right now."""

    url: str
    typed_url: bool  # False on the edit page with the URL box left empty: the saved URL, password unknown
    schemas: list[str]
    password: str  # a proposed password, posted back so that it stays the same while the person edits
    source: DataSource | None

    @property
    def usable_url(self) -> bool:
        parts = urlsplit(self.url)
        return parts.scheme in ("postgres", "postgresql") and bool(parts.path.strip("/"))

    def plan(self, tenant_slug: str) -> SetupPlan:
        if not self.typed_url:  # the saved URL: nothing to propose, its password is never shown
            plan = plan_from_url(
                self.url, self.schemas, tenant_slug=tenant_slug, password=PASSWORD_PLACEHOLDER
            )
            return replace(plan, proposed=())
        return plan_from_url(self.url, self.schemas, tenant_slug=tenant_slug, password=self.password)

    def datasource(self, plan: SetupPlan | None = None) -> DataSource:
        """An unsaved data source to check: the form's URL (with what was proposed) and schemas."""
        url = url_with(plan, self.url) if plan is not None and plan.proposed else self.url
        return DataSource(name="check", connection_url=url, schemas=self.schemas or ["public"])


def read_form(request: TenantRequest) -> SetupForm:
    source = None
    if request.GET.get("source"):
        source = get_for_tenant_or_404(DataSource, request.tenant, pk=request.GET["source"])
    typed = request.POST.get("connection_url", "").strip()
    schemas = [*request.POST.getlist("schemas")]
    schemas += [part for entry in request.POST.getlist("schemas_typed") for part in entry.split(",")]
    schemas = list(dict.fromkeys(name.strip() for name in schemas if name.strip()))
    if not schemas and source is not None and "schemas_shown" not in request.POST:
        schemas = list(source.schemas)
    url = typed or (source.connection_url if source else "")
    password = request.POST.get("proposed_password", "")[:200]
    return SetupForm(url=url, typed_url=bool(typed), schemas=schemas, password=password, source=source)


@login_required
@require_POST
@admins_only("manage data sources")
def setup_sql_panel(request: MemberRequest) -> HttpResponse:
    """The setup SQL for the form's URL and schemas, with what Rowbell proposes when the URL lacks it."""
    form = read_form(request)
    context: dict = {"form_state": form}
    if form.usable_url:
        context["schemas_missing"] = not form.schemas
        plan = form.plan(request.tenant.slug)
        context.update(
            plan=plan,
            sql=plan.sql(show_password=form.typed_url or "password" in plan.proposed),
            proposed_url=url_with(plan, form.url) if plan.proposed else "",
        )
    return render(request, "integrations/_setup_sql.html", context)


@login_required
@require_POST
@admins_only("manage data sources")
def setup_schemas(request: MemberRequest) -> HttpResponse:
    """The server's schemas as boxes to tick, or a box to type them in while Rowbell cannot connect yet."""
    form = read_form(request)
    schemas, error = [], ""
    if form.usable_url:
        plan = form.plan(request.tenant.slug)
        try:
            schemas = server_schemas(form.datasource(plan), connect_timeout=CHECK_TIMEOUT_SECONDS)
        except DataSourceUnavailable as exc:
            error = str(exc)
    chosen = form.schemas or _default_choice(schemas)
    context = {
        "schemas": schemas,
        "chosen": chosen,
        "typed": ", ".join(name for name in chosen if name not in {s.name for s in schemas}),
        "error": error,
        "usable_url": form.usable_url,
        "SCHEMAS_QUERY": SCHEMAS_QUERY,
    }
    response = render(request, "integrations/_schema_picker.html", context)
    # The ticked schemas may have changed (a first listing ticks those with tables): redraw the SQL.
    response["HX-Trigger-After-Settle"] = "schemas-listed"
    return response


def _default_choice(schemas) -> list[str]:
    """Nothing chosen yet: the schemas that hold tables. None (or a server Rowbell cannot list yet): the
    page asks where the tables are rather than guessing `public`."""
    return [schema.name for schema in schemas if schema.tables]


@login_required
@require_POST
@admins_only("manage data sources")
def setup_check(request: MemberRequest) -> HttpResponse:
    """Test the connection the form describes, before saving: what works, and what is still missing."""
    form = read_form(request)
    if not form.usable_url:
        return render(request, "integrations/_check.html", {"url_missing": True})
    if not form.schemas:
        return render(request, "integrations/_check.html", {"schemas_missing": True})
    plan = form.plan(request.tenant.slug)
    check = test_connection(form.datasource(plan), save=False)
    response = render(request, "integrations/_check.html", {"check": check})
    # The schema picker lists the server's schemas again: after running the SQL it can read them.
    response["HX-Trigger"] = "datasource-checked"
    return response
