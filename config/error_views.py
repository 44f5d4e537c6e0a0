"""Error pages: programs calling /api/ and /hooks/ get `{"detail": ...}` JSON, people get short pages.

A server error gets an error id, logged with its traceback, so that what a person reads ("error id
3f9c0a1b") finds the log line. An htmx request gets a fragment and the id in the `X-Error-Id` header:
static/js/rowbell.js shows "Could not load … (error id …)" in place instead of swapping a page in.
"""

from __future__ import annotations

import logging
import secrets

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.html import format_html
from django.views import defaults

from common.input_guard import wants_json

log = logging.getLogger("rowbell.errors")
ERROR_ID_HEADER = "X-Error-Id"


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": f"Nothing is at {request.path}: check the address."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Called by Django inside the `except` that caught the view's exception: exc_info is the cause."""
    error_id = secrets.token_hex(4)
    log.error("Server error, error id %s: %s %s", error_id, request.method, request.path, exc_info=True)
    if wants_json(request):
        detail = f"Rowbell failed to answer; the error has been logged (error id {error_id})."
        response: HttpResponse = JsonResponse({"detail": detail, "error_id": error_id}, status=500)
    elif request.headers.get("HX-Request") == "true":
        fragment = format_html('<p class="load-error" role="alert">Server error (error id {}).</p>', error_id)
        response = HttpResponse(fragment, status=500)
    else:
        page = loader.get_template("500.html").render({"error_id": error_id})
        response = HttpResponse(page, status=500)
    response[ERROR_ID_HEADER] = error_id
    return response
