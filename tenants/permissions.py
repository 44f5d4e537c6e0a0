"""Role checks shared by the views of every app."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpResponse, HttpResponseForbidden

from tenants.request import TenantRequest

View = Callable[..., HttpResponse]


def admin_refusal(request: TenantRequest, what: str) -> HttpResponse | None:
    """None for an admin or owner; for anyone else a 403 saying who may `what` ("manage data sources").

    For a check that depends on the object (archiving only a published workflow is for admins); a whole
    view that is for admins says so with `admins_only`."""
    if request.membership is None or not request.membership.can_publish:
        return HttpResponseForbidden(f"Only admins and owners {what}.")
    return None


def admins_only(what: str, *, writes_only: bool = False) -> Callable[[View], View]:
    """Refuse the view to anyone but an admin or owner of the current tenant (403 naming `what`).

    `writes_only`: only POSTs are refused, for pages every member may read but only admins change.
    Someone with no tenant gets a 404: nothing behind these views is theirs. Stack it under
    `login_required` and `require_POST`, so a signed-out visitor is sent to log in and a GET is a 405."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: TenantRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.tenant is None:
                raise Http404("Not found")
            checked = not writes_only or request.method == "POST"
            if checked and (refused := admin_refusal(request, what)) is not None:
                return refused
            return view(request, *args, **kwargs)

        return guarded

    return decorate
