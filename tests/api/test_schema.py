"""The OpenAPI schema at /api/schema/ lists the API and generates without a warning."""

from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_lists_every_endpoint(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    paths = schema["paths"]
    assert set(paths["/api/v1/workflows/"]) == {"get"}
    assert set(paths["/api/v1/workflows/{id}/"]) == {"get"}
    assert set(paths["/api/v1/workflows/{workflow_id}/runs/"]) == {"post"}
    assert set(paths["/api/v1/runs/"]) == {"get"}
    assert set(paths["/api/v1/runs/{id}/"]) == {"get"}
    assert set(paths["/api/v1/runs/{id}/cancel/"]) == {"post"}
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (rb_live_…): create one on the API keys page, /settings/api-keys/.",
    }
    assert paths["/api/v1/runs/"]["get"]["security"] == [{"apiKey": []}]
    start = paths["/api/v1/workflows/{workflow_id}/runs/"]["post"]
    assert set(start["responses"]) == {"200", "202", "400", "401", "403", "404", "413", "415", "429"}
    assert list(start["requestBody"]["content"]) == ["application/json"]
    assert start["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    new = {
        "/api/v1/workflows/{workflow_id}/publish/": {"post"},
        "/api/v1/workflows/{workflow_id}/previews/": {"post"},
        "/api/v1/workflows/{workflow_id}/release/": {"post"},
        "/api/v1/runs/{id}/retry/": {"post"},
        "/api/v1/runs/{id}/replay/": {"post"},
        "/api/v1/bulk-operations/": {"get", "post"},
        "/api/v1/bulk-operations/{id}/": {"get"},
        "/api/v1/messages/": {"get"},
        "/api/v1/messages/{id}/": {"get"},
        "/api/v1/messages/{id}/events/": {"get"},
        "/api/v1/senders/": {"get"},
        "/api/v1/senders/{id}/": {"get"},
        "/api/v1/providers/": {"get"},
        "/api/v1/providers/{id}/": {"get"},
    }
    assert {path: set(paths[path]) for path in new} == new


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any warning (an untyped parameter, an enum name clash) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
