"""GET /api/v1/workflows/ and /api/v1/workflows/<id>/: shapes, order, and the outsider's 404."""

from __future__ import annotations

import pytest

from workflows.models import Workflow
from workflows.publishing import get_or_create_draft

pytestmark = pytest.mark.django_db


def test_list_shows_each_workflows_state(api, welcome, draft, tenant_a):
    empty = Workflow.objects.create(tenant=tenant_a, name="Empty")
    get_or_create_draft(empty)

    body = api.get("/api/v1/workflows/").json()

    assert body["count"] == 3 and body["next"] is None
    by_name = {w["name"]: w for w in body["results"]}
    assert list(by_name) == ["Draft only", "Empty", "Welcome"]
    assert by_name["Welcome"] == {
        "id": welcome.pk,
        "name": "Welcome",
        "description": "",
        "status": "active",
        "published_version": 1,
        "trigger_kind": "webhook_trigger",
        "webhook_url": f"http://testserver/hooks/{welcome.pk}/",
        "created_at": welcome.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": by_name["Welcome"]["updated_at"],
    }
    assert by_name["Draft only"]["published_version"] is None
    assert by_name["Draft only"]["trigger_kind"] == "webhook_trigger"  # from the draft
    assert by_name["Empty"]["trigger_kind"] is None and by_name["Empty"]["webhook_url"] is None


def test_list_costs_the_same_queries_for_many_workflows(api, tenant_a, django_assert_num_queries):
    from tests.engine.conftest import build_workflow, webhook

    for n in range(12):
        build_workflow(tenant_a, webhook(), name=f"Hook {n}")
    api.get("/api/v1/workflows/")  # the key's first use is written down

    # The key, the count and the page (trigger kinds are subqueries of it).
    with django_assert_num_queries(3):
        assert len(api.get("/api/v1/workflows/").json()["results"]) == 12


def test_pages_are_capped(api, tenant_a):
    Workflow.objects.bulk_create([Workflow(tenant=tenant_a, name=f"W{n:03}") for n in range(205)])

    first = api.get("/api/v1/workflows/", {"page_size": 1000}).json()

    assert len(first["results"]) == 200
    assert first["count"] == 205
    assert api.get(first["next"]).json()["results"][0]["name"] == "W200"


def test_detail(api, welcome):
    response = api.get(f"/api/v1/workflows/{welcome.pk}/")

    assert response.status_code == 200
    assert response.json()["published_version"] == 1


def test_another_tenants_workflow_is_404_and_never_listed(outsider_api, welcome):
    assert outsider_api.get("/api/v1/workflows/").json()["results"] == []
    response = outsider_api.get(f"/api/v1/workflows/{welcome.pk}/")
    assert response.status_code == 404
    assert "Welcome" not in response.content.decode()


def test_missing_or_malformed_ids_are_404(api, welcome):
    assert api.get("/api/v1/workflows/999999/").status_code == 404
    assert api.get("/api/v1/workflows/abc/").status_code == 404


def test_the_api_is_read_only_for_workflows(api, welcome):
    assert api.delete(f"/api/v1/workflows/{welcome.pk}/").status_code == 405
    assert api.post("/api/v1/workflows/", {"name": "x"}, "application/json").status_code == 405
    assert Workflow.objects.filter(pk=welcome.pk).exists()
