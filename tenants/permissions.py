"""Role checks shared by the views of every app."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, cast

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden

from tenants.request import MemberRequest, TenantRequest

P = ParamSpec("P")
# A view that needs a member's request, and what a guard below turns it into: a view of any request.
MemberView = Callable[Concatenate[MemberRequest, P], HttpResponse]
GuardedView = Callable[Concatenate[HttpRequest, P], HttpResponse]


def admin_refusal(request: TenantRequest, what: str) -> HttpResponse | None:
    """None for an admin or owner; for anyone else a 403 saying who may `what` ("manage data sources").

    For a check that depends on the object (archiving only a published workflow is for admins); a whole
    view that is for admins says so with `admins_only`."""
    if request.membership is None or not request.membership.can_publish:
        return HttpResponseForbidden(f"Only admins and owners {what}.")
    return None


def member_request(request: HttpRequest) -> MemberRequest:
    """The request as a member's; a 404 for someone without a tenant (nothing behind the view is theirs).

    TenantMiddleware sets `tenant` and `membership` together, so a tenant means a membership."""
    tenant_request = cast(TenantRequest, request)
    if tenant_request.tenant is None or tenant_request.membership is None:
        raise Http404("Not found")
    return cast(MemberRequest, tenant_request)


def members_only(view: MemberView[P]) -> GuardedView[P]:
    """Refuse the view to someone without a tenant (404), so that it receives a MemberRequest.

    Stack it under `login_required`, so a signed-out visitor is sent to log in."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        return view(member_request(request), *args, **kwargs)

    return guarded


def admins_only(what: str, *, writes_only: bool = False) -> Callable[[MemberView[P]], GuardedView[P]]:
    """Refuse the view to anyone but an admin or owner of the current tenant (403 naming `what`).

    `writes_only`: only POSTs are refused, for pages every member may read but only admins change.
    Someone with no tenant gets a 404: nothing behind these views is theirs. Stack it under
    `login_required` and `require_POST`, so a signed-out visitor is sent to log in and a GET is a 405."""

    def decorate(view: MemberView[P]) -> GuardedView[P]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            member = member_request(request)
            checked = not writes_only or member.method == "POST"
            if checked and (refused := admin_refusal(member, what)) is not None:
                return refused
            return view(member, *args, **kwargs)

        return guarded

    return decorate
