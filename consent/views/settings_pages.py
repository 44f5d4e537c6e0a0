"""Settings pages for a tenant's email: topics, layouts, and the suppression list (search, add, remove,
import and export CSV). Everyone signed in sees them; admins and owners change them."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from consent import service
from consent.forms import ImportForm, LayoutForm, SuppressionForm, TopicForm
from consent.layouts import STARTER_LAYOUT
from consent.models import EmailLayout, Suppression, Topic, normalize_address
from consent.suppression import export_rows
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404

PAGE_SIZE = 50


def _tenant(request: TenantRequest):
    if request.tenant is None:
        raise Http404("Not found")
    return request.tenant


@login_required
@admins_only("manage email topics", writes_only=True)
def topics(request: MemberRequest) -> HttpResponse:
    tenant = _tenant(request)
    form = TopicForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        topic = service.save_topic(tenant, request.user, form.save(commit=False), created=True)
        messages.success(request, f"Added the topic “{topic.name}”.")
        return redirect("consent:topics")
    rows = Topic.objects.for_tenant(tenant).order_by("name")
    return render(request, "consent/topics.html", {"form": form, "topics": rows, "tab": "topics"})


@login_required
@require_POST
@admins_only("manage email topics")
def delete_topic(request: MemberRequest, topic_id: int) -> HttpResponse:
    tenant = _tenant(request)
    topic = get_for_tenant_or_404(Topic, tenant, pk=topic_id)
    service.delete_topic(tenant, request.user, topic)
    messages.success(request, f"Deleted the topic “{topic.name}”.")
    return redirect("consent:topics")


@login_required
def layouts(request: TenantRequest) -> HttpResponse:
    tenant = _tenant(request)
    rows = EmailLayout.objects.for_tenant(tenant).order_by("-is_default", "name")
    context = {"layouts": rows, "tab": "layouts", "starter": STARTER_LAYOUT}
    return render(request, "consent/layouts.html", context)


@login_required
@admins_only("manage email layouts", writes_only=True)
def edit_layout(request: MemberRequest, layout_id: int | None = None) -> HttpResponse:
    tenant = _tenant(request)
    layout = (
        get_for_tenant_or_404(EmailLayout, tenant, pk=layout_id) if layout_id else EmailLayout(tenant=tenant)
    )
    initial = (
        {}
        if layout_id
        else {"html": STARTER_LAYOUT, "is_default": not EmailLayout.objects.for_tenant(tenant).exists()}
    )
    form = LayoutForm(request.POST or None, instance=layout, tenant=tenant, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = service.save_layout(tenant, request.user, form.save(commit=False), created=layout_id is None)
        messages.success(request, f"Saved the layout “{saved.name}”.")
        return redirect("consent:layouts")
    return render(request, "consent/layout_form.html", {"form": form, "layout": layout, "tab": "layouts"})


@login_required
@require_POST
@admins_only("manage email layouts")
def delete_layout(request: MemberRequest, layout_id: int) -> HttpResponse:
    tenant = _tenant(request)
    layout = get_for_tenant_or_404(EmailLayout, tenant, pk=layout_id)
    service.delete_layout(tenant, request.user, layout)
    messages.success(request, f"Deleted the layout “{layout.name}”.")
    return redirect("consent:layouts")


@login_required
@admins_only("manage the suppression list", writes_only=True)
def suppressions(request: MemberRequest) -> HttpResponse:
    tenant = _tenant(request)
    form = SuppressionForm(prefix="add")
    import_form = ImportForm(prefix="import")
    report = None
    if request.method == "POST":
        if "import-file" in request.FILES or request.POST.get("form") == "import":
            import_form = ImportForm(request.POST, request.FILES, prefix="import")
            if import_form.is_valid():
                upload = request.FILES.get("import-file")
                report = service.import_suppressions(
                    tenant, request.user, import_form.cleaned_data["file"], (upload and upload.name) or ""
                )
        else:
            form = SuppressionForm(request.POST, prefix="add")
            if form.is_valid():
                data = form.cleaned_data
                entry = service.add_suppression(
                    tenant, request.user, data["address"], data["reason"], data["detail"]
                )
                messages.success(request, f"{entry.address} is suppressed: nothing is sent to it any more.")
                return redirect("consent:suppressions")
    search = request.GET.get("q", "").strip()[:ADDRESS_SEARCH_MAX]
    rows = Suppression.objects.for_tenant(tenant).filter(channel="email").order_by("-created_at", "-id")
    if search:
        rows = rows.filter(address__contains=normalize_address(search))
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "import_form": import_form,
        "report": report,
        "page": page,
        "search": search,
        "tab": "suppressions",
    }
    return render(
        request,
        "consent/suppressions.html",
        context,
        status=400 if report is None and request.method == "POST" else 200,
    )


ADDRESS_SEARCH_MAX = 320


@login_required
@require_POST
@admins_only("manage the suppression list")
def delete_suppression(request: MemberRequest, suppression_id: int) -> HttpResponse:
    tenant = _tenant(request)
    entry = get_for_tenant_or_404(Suppression, tenant, pk=suppression_id)
    service.remove_suppression(tenant, request.user, entry)
    messages.success(request, f"{entry.address} can receive email again.")
    return redirect("consent:suppressions")


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def export_suppressions(request: TenantRequest) -> StreamingHttpResponse:
    tenant = _tenant(request)
    rows = (
        Suppression.objects.for_tenant(tenant)
        .filter(channel="email")
        .order_by("address")
        .iterator(chunk_size=2000)
    )
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in export_rows(rows)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="suppressions-{tenant.slug}.csv"'
    return response
