"""Error pages: programs calling /api/ and /hooks/ get `{"detail": ...}` JSON, people get Django's pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from common.input_guard import wants_json


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": f"Nothing is at {request.path}: check the address."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": "Rowbell failed to answer; the error has been logged."}, status=500)
    return defaults.server_error(request)
