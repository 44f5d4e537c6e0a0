"""Sets request.tenant and request.membership from the signed-in user's current membership."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.models import Membership

SESSION_KEY = "tenant_id"


def current_membership(request: HttpRequest) -> Membership | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=user).select_related("tenant").order_by("created_at", "id")
    wanted = request.session.get(SESSION_KEY)
    if wanted is not None:
        chosen = memberships.filter(tenant_id=wanted).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def switch_tenant(request: HttpRequest, membership: Membership) -> None:
    request.session[SESSION_KEY] = membership.tenant_id
    request.membership = membership
    request.tenant = membership.tenant


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = current_membership(request)
        request.membership = membership
        request.tenant = membership.tenant if membership else None
        return self.get_response(request)
