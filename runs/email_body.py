"""Email HTML shown in an iframe from its own URL, under a policy of its own.

Pages forbid inline style (CONTENT_SECURITY_POLICY), and an `<iframe srcdoc>` inherits its page's policy,
so an email's `style="..."` attributes (most emails have them) would be dropped from every preview. So
the page stores the HTML in the cache under a key derived from the tenant and the HTML, and the iframe
loads `/email-body/<key>/`, which answers it with:

- `sandbox` (no script, no forms, an opaque origin, even when the URL is opened on its own), no script
  source at all, inline style allowed, images from https: and data:;
- only to a signed-in member of the same tenant, for EMAIL_BODY_TTL seconds.

The key is a SHA-256 of the tenant and the HTML: the same message shown again (the run page polls every
2 s) reuses its entry instead of adding one.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin

from tenants.request import TenantRequest

EMAIL_BODY_TTL = 3600
POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "frame-ancestors 'self'"
)


def _cache_key(key: str) -> str:
    return f"email-body:{key}"


def email_body_url(tenant_id: int, html: str) -> str:
    """Store `html` for `tenant_id`'s members and return the URL an iframe shows it from."""
    key = hashlib.sha256(f"{tenant_id}\n{html}".encode()).hexdigest()
    cache.set(_cache_key(key), (tenant_id, html), EMAIL_BODY_TTL)
    return reverse("runs:email_body", args=[key])


@login_required
@xframe_options_sameorigin
def email_body(request: TenantRequest, key: str) -> HttpResponse:
    stored = cache.get(_cache_key(key))
    if stored is None or request.tenant is None or stored[0] != request.tenant.pk:
        raise Http404("This preview has expired; reload the page.")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    response = HttpResponse(stored[1], content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = POLICY  # django-csp leaves a policy that is already set
    response["Cache-Control"] = "private, no-store"
    return response
