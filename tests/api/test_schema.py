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
    assert set(start["responses"]) == {"200", "202", "400", "401", "404", "413", "415"}
    assert list(start["requestBody"]["content"]) == ["application/json"]


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any warning (an untyped parameter, an enum name clash) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
