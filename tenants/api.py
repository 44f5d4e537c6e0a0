"""REST API access: `Authorization: Bearer <API key>` names the tenant every /api/v1/ request acts for.

`ApiKeyAuthentication` finds the key by its hash and sets `request.tenant` to the key's tenant (and
`request.membership` to None: a key is the tenant's, not a person's). `HasApiKey` refuses any request
without a valid key, including a signed-in browser's session: the API takes no cookies, so it needs no
CSRF token. `TenantApiMixin` puts both on a view, and answers errors as `{"detail": "..."}`.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from tenants.models import API_KEY_PREFIX, ApiKey, hash_api_key
from tenants.scoping import tenant_queryset

KEYWORD = "Bearer"

# The body of every error answer, for the schema.
API_ERROR = inline_serializer("ApiError", {"detail": serializers.CharField()})


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        header = get_authorization_header(request).decode("latin-1").split()
        if not header:
            return None  # HasApiKey says what to send
        if header[0].lower() != KEYWORD.lower() or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"Send the API key as `Authorization: {KEYWORD} {API_KEY_PREFIX}…` (one space, no quotes)."
            )
        api_key = find_api_key(request, header[1])
        api_key.mark_used()
        # The view reads request.tenant like every other view; the session's tenant must not leak in.
        request._request.tenant = api_key.tenant
        request._request.membership = None
        # No person is signed in: the key acts for its tenant, whoever created it.
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


def where_to_create(request: Request, what: str = "one") -> str:
    return f"create {what} on the API keys page, {request.build_absolute_uri(reverse('tenants:api_keys'))}"


def find_api_key(request: Request, key: str) -> ApiKey:
    """The active key, or AuthenticationFailed saying what to fix."""
    api_key = ApiKey.objects.filter(secret_hash=hash_api_key(key)).select_related("tenant").first()
    if api_key is None:
        raise exceptions.AuthenticationFailed(
            f"Unknown API key: check that you copied all of it (it starts with {API_KEY_PREFIX}), "
            f"or {where_to_create(request)}."
        )
    if api_key.is_revoked:
        revoked = timezone.localtime(api_key.revoked_at).strftime("%Y-%m-%d %H:%M %Z")
        raise exceptions.AuthenticationFailed(
            f"This API key ({api_key.prefix}…, “{api_key.name}”) was revoked on {revoked}; "
            f"{where_to_create(request, 'a new one')}."
        )
    return api_key


class HasApiKey(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            return True
        raise exceptions.NotAuthenticated(
            f"Missing API key: send `Authorization: {KEYWORD} <key>`; {where_to_create(request)}."
        )


class TenantApiMixin:
    # For every /api/v1/ view (no docstring here: drf-spectacular would show it on every endpoint).
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    # JSON in and out: DRF's browsable pages and form posts need a session, which the API does not take.
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def tenant_rows(self, model_or_qs: type[models.Model] | QuerySet) -> QuerySet:
        """The key's tenant's rows (none while drf-spectacular builds the schema: it sends no key)."""
        return tenant_queryset(model_or_qs, getattr(self.request, "tenant", None))


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how ApiKeyAuthentication authenticates (a bearer token)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": f"An API key ({API_KEY_PREFIX}…): create one on the API keys page, /settings/api-keys/.",
        }
