"""Sets request.tenant and request.membership from the signed-in user's current membership, and
request.memberships to all of theirs (the base template's tenant switcher reads them, querying nothing)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.models import Membership
from tenants.request import TenantRequest

SESSION_KEY = "tenant_id"


def user_memberships(request: TenantRequest) -> list[Membership]:
    """The signed-in user's memberships with their tenants, oldest first, in one query ([] when signed out)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user).select_related("tenant").order_by("created_at", "id"))


def current_membership(request: TenantRequest, memberships: list[Membership]) -> Membership | None:
    """The membership of the tenant chosen in this session, else the oldest (None without any)."""
    wanted = request.session.get(SESSION_KEY)
    chosen = next((m for m in memberships if m.tenant_id == wanted), None) if wanted is not None else None
    return chosen or (memberships[0] if memberships else None)


def switch_tenant(request: TenantRequest, membership: Membership) -> None:
    request.session[SESSION_KEY] = membership.tenant_id
    request.membership = membership
    request.tenant = membership.tenant
    if all(m.pk != membership.pk for m in request.memberships):  # joined during this request
        request.memberships = [*request.memberships, membership]


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: TenantRequest) -> HttpResponse:
        request.memberships = user_memberships(request)
        membership = current_membership(request, request.memberships)
        request.membership = membership
        request.tenant = membership.tenant if membership else None
        return self.get_response(request)
