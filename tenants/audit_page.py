"""/settings/audit/: the tenant's audit log for admins and owners, newest first, filtered by action, in
keyset pages on the id (ids only grow, so "older than id N" is one index range scan at any depth)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from tenants.audit import ACTIONS
from tenants.models import AuditEvent
from tenants.permissions import admins_only
from tenants.request import MemberRequest

PAGE_SIZE = 50
# Where each kind of object is seen (by URL name and id): the page links the object an event names.
OBJECT_PAGES = {
    "workflow": "workflows:builder",
    "run": "runs:run_detail",
    "delivery": "runs:message_detail",
    "datasource": "integrations:datasource_detail",
    "sender": "email:sender",
    "layout": "consent:edit_layout",
}
# Pages that list every object of a kind, for kinds without a page of their own.
LIST_PAGES = {
    "apikey": "tenants:api_keys",
    "user": "tenants:members",
    "membership": "tenants:members",
    "invitation": "tenants:members",
    "topic": "consent:topics",
    "suppression": "consent:suppressions",
}


def sentence(action: str, details: dict[str, Any]) -> str:
    """The event in words: "Published v3 (live)", "Changed a member's role from member to admin"."""
    if action == "workflow.published" and "version" in details:
        return f"Published v{details['version']} ({'sandbox' if details.get('sandbox') else 'live'})"
    if action == "member.role_changed" and details.get("old") and details.get("new"):
        return f"Changed a member's role from {details['old']} to {details['new']}"
    return ACTIONS.get(action, action)


def object_link(event: AuditEvent) -> str:
    """The page of the object an event names ("" when it was deleted or has no page)."""
    if event.action.endswith(".deleted") or event.action.endswith(".removed"):
        return ""
    details = event.details if isinstance(event.details, dict) else {}
    try:
        if event.object_type == "stepexecution" and str(details.get("run", "")).isdigit():
            return reverse("runs:run_detail", args=[int(details["run"])])  # a retried step: its run
        if event.object_type == "delivery" and not event.object_id.isdigit():
            return reverse("runs:message_list")  # many messages at once
        if event.object_type == "provider" and event.object_id.isdigit():  # a page per channel
            channel = str(details.get("channel", "email"))
            return reverse("providers:provider", args=[channel, int(event.object_id)])
        if event.object_type in OBJECT_PAGES and event.object_id.isdigit():
            return reverse(OBJECT_PAGES[event.object_type], args=[int(event.object_id)])
        if event.object_type in LIST_PAGES:
            return reverse(LIST_PAGES[event.object_type])
    except NoReverseMatch:
        return ""
    return ""


@login_required
@admins_only("can read the audit log")
def audit_log(request: MemberRequest) -> HttpResponse:
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
        details = event.details if isinstance(event.details, dict) else {}
        event.description = sentence(event.action, details)
        event.link = object_link(event)
    context = {
        "events": rows,
        "actions": ACTIONS,
        "action": action if action in ACTIONS else "",
        "first_query": first_query,
        "next_query": next_query,
        "cursor_error": cursor_error,
    }
    return render(request, "tenants/audit_log.html", context)
