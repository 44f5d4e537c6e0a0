"""The one place the Content-Security-Policy is relaxed: django-rq's dashboard at /admin/rq/.

Rowbell's own pages and the Django admin pass the strict policy (no inline script or style). django-rq's
dashboard (staff only, an operator's tool) is built from inline `<script>` and `<style>` in twenty
templates of the package; rather than fork them, its pages alone may run inline script and style.
"""

from __future__ import annotations

from collections.abc import Callable

from csp.constants import UNSAFE_INLINE
from django.http import HttpRequest, HttpResponse

RELAXED_PREFIXES = ("/admin/rq/",)


class RelaxedPolicyForThirdPartyPages:
    """Listed after csp.middleware.CSPMiddleware, so that it marks the response before the policy is built."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(RELAXED_PREFIXES):
            # django-csp reads this attribute (its csp_update decorator sets it); the response type has no such field.
            response._csp_update = {"script-src": [UNSAFE_INLINE], "style-src": [UNSAFE_INLINE]}  # type: ignore[attr-defined]
        return response
