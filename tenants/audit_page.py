"""/settings/audit/: the tenant's audit log for admins and owners, newest first, filtered by action, in
keyset pages on the id (ids only grow, so "older than id N" is one index range scan at any depth)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.audit import ACTIONS
from tenants.models import AuditEvent
from tenants.permissions import admins_only

PAGE_SIZE = 50


@login_required
@admins_only("can read the audit log")
def audit_log(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.for_tenant(request.tenant)
    action = request.GET.get("action", "")
    if action in ACTIONS:
        events = events.filter(action=action)
    after = request.GET.get("after", "")
    cursor_error = ""
    if after:
        if after.isdigit() and len(after) < 19:
            events = events.filter(id__lt=int(after))
        else:
            cursor_error = f"“{after[:40]}” is not a page position; showing the newest events."
    rows = list(events.order_by("-id")[: PAGE_SIZE + 1])
    params = request.GET.copy()
    params.pop("after", None)
    first_query = params.urlencode()
    next_query = ""
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        params["after"] = str(rows[-1].pk)
        next_query = params.urlencode()
    for event in rows:
        event.description = ACTIONS.get(event.action, event.action)
    context = {
        "events": rows,
        "actions": ACTIONS,
        "action": action if action in ACTIONS else "",
        "first_query": first_query,
        "next_query": next_query,
        "cursor_error": cursor_error,
    }
    return render(request, "tenants/audit_log.html", context)
