"""Role checks shared by the views of every app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden


def admins_only(request: HttpRequest, what: str) -> HttpResponse | None:
    """None for an admin or owner; for anyone else a 403 saying who can `what` ("manage data sources")."""
    if request.membership is None or not request.membership.can_publish:
        return HttpResponseForbidden(f"Only admins and owners {what}.")
    return None
