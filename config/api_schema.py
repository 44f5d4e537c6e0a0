"""The OpenAPI schema's error answers, stated once for every operation instead of on each view.

Every error is `{"detail": "..."}` (tenants.api.API_ERROR). This adds to each operation the errors it
can answer with, unless the view documents them itself:
- 401 where an API key is required (a missing, unknown or revoked key),
- 404 where the path has an id (another tenant's or a missing one), or a numbered page can be past the end,
- 400 where the operation reads query parameters, headers or a body,
- 415 where it reads a body through DRF's JSON parser only.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework.parsers import JSONParser

from tenants.api import API_ERROR, HasApiKey

ERRORS = {
    "400": "The request is malformed: the detail says which part",
    "401": "Missing, unknown or revoked API key",
    "403": "The API key lacks the scope this operation needs (read, trigger or manage): the detail names it",
    "404": "No such object for this API key's tenant (or no such page)",
    "415": "The body is not JSON (send Content-Type: application/json)",
    "429": "Too many requests with this API key: wait the seconds `Retry-After` says",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before the next request.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


class RowbellAutoSchema(AutoSchema):
    def _get_request_body(self, direction="request") -> dict | None:
        body = super()._get_request_body(direction)
        if body is not None:
            body["required"] = True  # every body Rowbell reads is required: none is optional
        return body

    def _get_response_bodies(self, direction="response") -> dict:
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                answer = OpenApiResponse(API_ERROR, description=ERRORS[code])
                responses[code] = self._get_response_for_code(answer, code, direction=direction)
        if "429" in responses:
            responses["429"]["headers"] = RETRY_AFTER
        return responses

    def _error_codes(self) -> list[str]:
        codes = []
        if any(permission is HasApiKey for permission in getattr(self.view, "permission_classes", [])):
            codes += ["401", "403", "429"]
        numbered_pages = self._is_list_view() and hasattr(self._get_paginator(), "page_query_param")
        if "{" in self.path or numbered_pages:
            codes.append("404")
        reads_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        if reads_body or any(parameter["in"] != "path" for parameter in self._get_parameters()):
            codes.append("400")
        if reads_body and list(getattr(self.view, "parser_classes", [])) == [JSONParser]:
            codes.append("415")  # DRF refuses other content types (the webhook reads any body itself)
        return codes
