"""The request type of every signed-in page: what TenantMiddleware (and django-htmx) set on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails

    from tenants.models import Membership, Tenant


class TenantRequest(HttpRequest):
    """An HttpRequest after TenantMiddleware: for type checking only, no request is ever built as one.

    `tenant` and `membership` are None for a signed-out visitor or a user without a tenant; views behind
    `admins_only` or `get_for_tenant_or_404` may rely on them, the others check."""

    tenant: Tenant | None
    membership: Membership | None
    memberships: list[Membership]  # all of the user's, oldest first (the tenant switcher reads them)
    htmx: HtmxDetails


class MemberRequest(TenantRequest):
    """A TenantRequest of a member of the current tenant: what a view behind `members_only` or
    `admins_only` receives (both 404 a request without a tenant, so `tenant` and `membership` are set,
    and the user is signed in: a membership is a signed-in user's)."""

    user: User
    tenant: Tenant
    membership: Membership
