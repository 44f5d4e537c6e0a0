"""The event webhooks page, /settings/event-webhooks/: every member reads it; admins and owners add, edit
and delete endpoints, rotate their signing secrets and send test events.

A signing secret is shown once: adding an endpoint or rotating its secret puts the endpoint's id (never the
secret) in the session, and the next view of the list takes it out and shows that secret.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from integrations.events import EVENT_TYPES
from integrations.events.forms import EventEndpointForm
from integrations.models import EventDelivery, EventEndpoint
from runs.events.emit import send_test_event
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404

REVEAL_SESSION_KEY = "event_endpoint_reveal"
RECENT_DELIVERIES = 5

# Each endpoint's last deliveries in one statement: an index scan of a few rows per endpoint, however long
# their history (a window function over all their deliveries would read every one).
RECENT_SQL = """
SELECT d.* FROM integrations_eventendpoint e
CROSS JOIN LATERAL (
    SELECT * FROM integrations_eventdelivery
    WHERE endpoint_id = e.id ORDER BY created_at DESC, id DESC LIMIT %(per_endpoint)s
) d
WHERE e.id = ANY(%(ids)s)
ORDER BY d.created_at DESC, d.id DESC
"""


def attach_recent_deliveries(endpoints: list[EventEndpoint]) -> None:
    """Set `recent_deliveries` on each endpoint: its last few deliveries, newest first."""
    if not endpoints:
        return
    by_endpoint: dict[int, list[EventDelivery]] = {endpoint.pk: [] for endpoint in endpoints}
    params = {"ids": list(by_endpoint), "per_endpoint": RECENT_DELIVERIES}
    for delivery in EventDelivery.objects.raw(RECENT_SQL, params):
        by_endpoint[delivery.endpoint_id].append(delivery)
    for endpoint in endpoints:
        endpoint.recent_deliveries = by_endpoint[endpoint.pk]


@login_required
def endpoint_list(request: TenantRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    endpoints = list(EventEndpoint.objects.for_tenant(request.tenant).order_by("created_at", "id"))
    attach_recent_deliveries(endpoints)
    revealed_id = request.session.pop(REVEAL_SESSION_KEY, None)
    revealed = next((endpoint for endpoint in endpoints if endpoint.pk == revealed_id), None)
    context = {"endpoints": endpoints, "revealed": revealed, "event_types": EVENT_TYPES}
    response = render(request, "integrations/events/endpoint_list.html", context)
    if revealed is not None:
        add_never_cache_headers(response)  # the page holding the secret must not be kept anywhere
    return response


@login_required
@admins_only("manage event webhooks")
def endpoint_add(request: MemberRequest) -> HttpResponse:
    form = EventEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = form.save(commit=False)
        endpoint.tenant = request.tenant
        endpoint.save()
        request.session[REVEAL_SESSION_KEY] = endpoint.pk
        messages.success(request, f"Added {endpoint.url}.")
        return redirect("events:endpoint_list")
    return render(request, "integrations/events/endpoint_form.html", {"form": form})


@login_required
@admins_only("manage event webhooks")
def endpoint_edit(request: MemberRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_for_tenant_or_404(EventEndpoint, request.tenant, pk=endpoint_id)
    form = EventEndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {endpoint.url}.")
        return redirect("events:endpoint_list")
    return render(request, "integrations/events/endpoint_form.html", {"form": form, "endpoint": endpoint})


@login_required
@require_POST
@admins_only("manage event webhooks")
def endpoint_delete(request: MemberRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_for_tenant_or_404(EventEndpoint, request.tenant, pk=endpoint_id)
    endpoint.delete()
    messages.success(request, f"Deleted {endpoint.url}: it receives no more events.")
    return redirect("events:endpoint_list")


@login_required
@require_POST
@admins_only("manage event webhooks")
def endpoint_rotate(request: MemberRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_for_tenant_or_404(EventEndpoint, request.tenant, pk=endpoint_id)
    endpoint.rotate_secret()
    request.session[REVEAL_SESSION_KEY] = endpoint.pk
    messages.success(
        request, f"New signing secret for {endpoint.url}: events are signed with it from now on."
    )
    return redirect("events:endpoint_list")


@login_required
@require_POST
@admins_only("manage event webhooks")
def endpoint_test(request: MemberRequest, endpoint_id: int) -> HttpResponse:
    """Send a `ping` now and show what the endpoint answered: in its card (htmx), or as a message."""
    endpoint = get_for_tenant_or_404(EventEndpoint, request.tenant, pk=endpoint_id)
    test = send_test_event(endpoint)
    if not request.htmx:
        level = messages.SUCCESS if test.status == EventDelivery.Status.SUCCEEDED else messages.ERROR
        messages.add_message(request, level, f"Test event to {endpoint.url}: {test_outcome(test)}")
        return redirect("events:endpoint_list")
    endpoint.refresh_from_db()  # a 410 has just disabled it
    attach_recent_deliveries([endpoint])
    context = {"endpoint": endpoint, "test": test, "test_outcome": test_outcome(test)}
    return render(request, "integrations/events/_endpoint.html", context)


def test_outcome(delivery: EventDelivery) -> str:
    if delivery.status == EventDelivery.Status.SUCCEEDED:
        return f"delivered, the endpoint answered HTTP {delivery.last_status_code}."
    return f"not delivered. {delivery.last_error}"
