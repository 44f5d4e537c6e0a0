"""REST API access: `Authorization: Bearer <API key>` names the tenant every /api/v1/ request acts for.

`ApiKeyAuthentication` finds the key by its hash and sets `request.tenant` to the key's tenant (and
`request.membership` to None: a key is the tenant's, not a person's). `HasApiKey` refuses any request
without a valid key, including a signed-in browser's session: the API takes no cookies, so it needs no
CSRF token. `TenantApiMixin` puts both on a view, and answers errors as `{"detail": "..."}`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import exception_handler

from tenants.models import API_KEY_PREFIX, ApiKey, ApiScope, hash_api_key
from tenants.scoping import tenant_queryset
from tenants.throttling import ApiKeyRateThrottle

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

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
    """A valid key with the scope the request needs: `read` to read, and to change anything the view's
    `write_scope` (`manage` unless it says `trigger`, as starting a run does). 403 names the missing scope."""

    def has_permission(self, request: Request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            raise exceptions.NotAuthenticated(
                f"Missing API key: send `Authorization: {KEYWORD} <key>`; {where_to_create(request)}."
            )
        needed = required_scope(request, view)
        if needed not in request.auth.scopes:
            has = ", ".join(request.auth.scopes) or "none"
            raise exceptions.PermissionDenied(
                f"This API key ({request.auth.prefix}…, “{request.auth.name}”) lacks the “{needed}” scope, "
                f"which {request.method} {request.path} needs (its scopes: {has}); "
                f"{where_to_create(request, f'a key with the {needed} scope')}."
            )
        return True


def required_scope(request: Request, view) -> str:
    if request.method in SAFE_METHODS:
        return ApiScope.READ
    return getattr(view, "write_scope", ApiScope.MANAGE)


WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
# The largest whole number a query parameter takes (18 digits), as the schema states.
MAX_WHOLE_NUMBER = 10**18 - 1


def query_whole_number(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    """A query parameter that must be a whole number from 1 (ParseError, a 400, otherwise); values over
    `maximum` count as `maximum`. The schema states the same: integer, minimum 1."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not WHOLE_NUMBER.fullmatch(value) or int(value) < 1:
        raise exceptions.ParseError(
            f"{name} must be a whole number from 1 to {MAX_WHOLE_NUMBER}, not “{value[:50]}”."
        )
    return min(int(value), maximum) if maximum else int(value)


class NumberedPagination(PageNumberPagination):
    """Numbered pages; a `page` or `page_size` that is not a whole number from 1 is a 400 (DRF would
    quietly use the default), and a page past the last one is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        return query_whole_number(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_page_number(self, request: Request, paginator) -> int:
        return query_whole_number(request, self.page_query_param, 1)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "description": "Workflows on all pages."},
                "next": {**link, "description": "Null on the last page."},
                "previous": {**link, "description": "Null on the first page."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.page_query_param,
                "in": "query",
                "required": False,
                "description": "The page number, from 1; past the last page is a 404.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE_NUMBER},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Workflows per page, {self.page_size} by default; more than "
                f"{self.max_page_size} counts as {self.max_page_size}.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE_NUMBER},
            },
        ]


# The mixins below are typed as what they are mixed into (DRF's generic view), so that their calls to
# its methods are checked; at run time they are plain classes.
if TYPE_CHECKING:

    class _GenericView(GenericAPIView): ...
else:
    _GenericView = object


class TenantApiMixin(_GenericView):
    # For every /api/v1/ view (no docstring here: drf-spectacular would show it on every endpoint).
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]
    # JSON in and out: DRF's browsable pages and form posts need a session, which the API does not take.
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    # The serializer of a list's filters (query parameters), if it has any.
    filter_serializer: type[serializers.Serializer] | None = None

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # DRF answers 405 next: the method comes before its parameters
        # Only what the schema lists: a misspelt filter must not quietly return everything.
        allowed = self.query_parameters()
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
            names = ", ".join(f"“{name[:50]}”" for name in unknown[:5])
            raise exceptions.ParseError(f"Unknown query parameter {names}: this endpoint takes {takes}.")
        for name, values in request.query_params.lists():
            if "" in values:
                raise exceptions.ParseError(
                    f"The query parameter “{name}” is empty: give a value or leave it out."
                )
            if len(values) > 1:
                raise exceptions.ParseError(
                    f"The query parameter “{name}” is given {len(values)} times: give it once."
                )

    def query_parameters(self) -> set[str]:
        """The query parameters this request's endpoint documents: a list's filters and pages."""
        if getattr(self, "action", None) != "list":
            return set()
        names = set(self.filter_serializer().fields) if self.filter_serializer else set()
        if self.paginator is not None:
            names |= {parameter["name"] for parameter in self.paginator.get_schema_operation_parameters(self)}
        return names

    def tenant_rows(self, model_or_qs: type[models.Model] | QuerySet) -> QuerySet:
        """The key's tenant's rows (none while drf-spectacular builds the schema: it sends no key)."""
        return tenant_queryset(model_or_qs, getattr(self.request, "tenant", None))


def api_exception_handler(exc: Exception, context: dict):
    """DRF's answer to an exception, always as `{"detail": "..."}` (the schema's ApiError): a validation
    error's per-field lists become one sentence, "workflow: A valid integer is required."."""
    response = exception_handler(exc, context)
    if response is not None and not (isinstance(response.data, dict) and set(response.data) == {"detail"}):
        response.data = {"detail": flatten_errors(response.data)}
    return response


def flatten_errors(errors, prefix: str = "") -> str:
    if isinstance(errors, dict):
        return " ".join(flatten_errors(value, f"{prefix}{key}: ") for key, value in errors.items())
    if isinstance(errors, list):
        return " ".join(flatten_errors(value, prefix) for value in errors)
    return f"{prefix}{errors}"


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
