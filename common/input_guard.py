"""Input no view can store: a NUL character (\\0) anywhere in a request's URL, query string or form.

PostgreSQL refuses NUL in text and JSONB, so a NUL that reaches a save is a 500 after work was done.
`RejectNulMiddleware` answers 400 before the view runs, naming the field (JSON `{"detail"}` under
/api/ and /hooks/, plain text elsewhere). Views that report it better themselves, as a form error next
to the field, say so with `@checks_nul_itself`; their query string and URL are still checked here.
DRF views parse their own bodies (JSON, checked by integrations/json_input.py), so their forms are left
alone here too: reading a form body here would consume the stream the view reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework.views import APIView

NUL = "\x00"
JSON_PREFIXES = ("/api/", "/hooks/")


def checks_nul_itself(view: Callable) -> Callable:
    """Mark a view whose form reports a NUL as a field error (the middleware leaves its POST alone)."""
    view.checks_nul_itself = True  # type: ignore[attr-defined]  # a function attribute the middleware reads
    return view


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def bad_request(request: HttpRequest, detail: str, status: int = 400) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": detail}, status=status)
    return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8", status=status)


def _first_nul(pairs: Iterable[tuple[str, list[str]]], where: str) -> str | None:
    for name, values in pairs:
        if NUL in name:
            return f"A {where} field name contains a NUL character (\\0), which cannot be stored: remove it."
        if any(NUL in value for value in values if isinstance(value, str)):
            shown = name if len(name) <= 60 else f"{name[:60]}…"
            return f"The {where} field “{shown}” contains a NUL character (\\0), which cannot be stored: remove it."
    return None


def _posts_its_own_body(view_func: Callable) -> bool:
    view_class = getattr(view_func, "cls", None)
    is_drf = isinstance(view_class, type) and issubclass(view_class, APIView)
    return is_drf or getattr(view_func, "checks_nul_itself", False)


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, args: tuple, kwargs: dict):
        if NUL in request.path or any(NUL in str(value) for value in [*args, *kwargs.values()]):
            return bad_request(request, "The address contains a NUL character (%00): remove it.")
        problem = _first_nul(request.GET.lists(), "query")
        if problem is None and request.method == "POST" and not _posts_its_own_body(view_func):
            problem = _first_nul(request.POST.lists(), "form")
        return bad_request(request, problem) if problem else None


class RejectLongHeadersMiddleware:
    """A request header longer than MAX_HEADER_BYTES is a 431 naming it, before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_HEADER_BYTES
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and len(value) > limit:
                name = key.removeprefix("HTTP_").replace("_", "-").title()
                detail = f"The request header {name} is {len(value):,} characters long; at most {limit:,} are accepted."
                return bad_request(request, detail, status=431)
        return self.get_response(request)
