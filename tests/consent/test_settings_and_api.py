"""Admins' side: the suppression list (add, remove, search, CSV import of 10,000 rows, bad rows by line,
export), topics and layouts through pages and the REST API, the audit log, and files naming them."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consent.models import EmailLayout, Suppression, Topic
from consent.suppression import import_csv
from tenants.models import AuditEvent
from tests.engine.conftest import build_workflow, email, webhook
from workflows.files import WorkflowFileError, export_workflow, import_workflow
from workflows.steps import ConfigError, get_kind

pytestmark = pytest.mark.django_db


def test_csv_import_of_10000_suppressions_in_bulk(tenant_a, django_assert_max_num_queries):
    rows = "address,reason,note\n" + "".join(
        f"user{i}@example.com,hard_bounce,from old ESP\n" for i in range(10_000)
    )
    with django_assert_max_num_queries(20):  # bulk inserts of 2,000, not a statement per row
        report = import_csv(tenant_a, rows)
    assert (report.added, report.already, report.errors) == (10_000, 0, [])
    assert (
        Suppression.objects.filter(tenant=tenant_a, reason="hard_bounce", source="import").count() == 10_000
    )
    again = import_csv(tenant_a, rows)
    assert (again.added, again.already) == (0, 10_000)


def test_csv_import_reports_bad_rows_by_line_and_keeps_the_good_ones(tenant_a):
    text = "\n".join(
        [
            "email,reason",
            "good@example.com",
            "not an address,manual",
            "Second@Example.com,complaint",
            "third@example.com,angry",
            "",
            "second@example.com,manual",
            "x" * 400 + "@example.com",
            "fourth@example.com,Spam complaint,note",
        ]
    )
    report = import_csv(tenant_a, text)
    assert report.added == 3 and report.already == 1
    assert [line for line, _ in report.errors] == [3, 5, 8]
    assert "not an email address" in report.errors[0][1] and "angry" in report.errors[1][1]
    assert set(Suppression.objects.values_list("address", "reason")) == {
        ("good@example.com", "manual"),
        ("second@example.com", "complaint"),
        ("fourth@example.com", "complaint"),
    }


def test_suppression_page_adds_searches_removes_imports_and_exports(owner_client, tenant_a):
    response = owner_client.post(
        "/settings/email/suppressions/",
        {
            "form": "add",
            "add-address": " Ada@Example.com ",
            "add-reason": "manual",
            "add-detail": "asked by phone",
        },
    )
    assert response.status_code == 302
    entry = Suppression.objects.get(tenant=tenant_a)
    assert entry.address == "ada@example.com" and entry.source == "admin"
    upload = SimpleUploadedFile("old.csv", b"bob@example.com,hard_bounce\nnope,manual\n", "text/csv")
    page = owner_client.post("/settings/email/suppressions/", {"form": "import", "import-file": upload})
    assert page.status_code == 200
    assert "1 added" in page.content.decode() and "Line 2" in page.content.decode()
    assert "bob@example.com" not in owner_client.get("/settings/email/suppressions/?q=ADA").content.decode()
    exported = b"".join(
        owner_client.get("/settings/email/suppressions/export.csv").streaming_content
    ).decode()
    assert [row[0] for row in csv.reader(io.StringIO(exported))] == [
        "address",
        "ada@example.com",
        "bob@example.com",
    ]
    owner_client.post(f"/settings/email/suppressions/{entry.pk}/delete/")
    assert not Suppression.objects.filter(pk=entry.pk).exists()
    actions = list(AuditEvent.objects.filter(tenant=tenant_a).order_by("id").values_list("action", flat=True))
    assert actions == ["suppression.added", "suppression.imported", "suppression.removed"]


def test_members_see_but_do_not_change_the_list(client, member, tenant_a):
    client.force_login(member)
    assert client.get("/settings/email/suppressions/").status_code == 200
    response = client.post(
        "/settings/email/suppressions/", {"form": "add", "add-address": "a@b.co", "add-reason": "manual"}
    )
    assert response.status_code == 403 and not Suppression.objects.exists()


def test_another_tenants_entry_is_a_404(owner_client, tenant_b):
    theirs = Suppression.objects.create(tenant=tenant_b, address="x@example.com")
    assert owner_client.post(f"/settings/email/suppressions/{theirs.pk}/delete/").status_code == 404
    assert Suppression.objects.filter(pk=theirs.pk).exists()


def test_a_bad_upload_is_a_form_error(owner_client):
    upload = SimpleUploadedFile("x.csv", b"\xff\xfe\x00bad", "text/csv")
    page = owner_client.post("/settings/email/suppressions/", {"form": "import", "import-file": upload})
    assert page.status_code == 400 and "not UTF-8" in page.content.decode()


def test_topics_and_layouts_pages(owner_client, tenant_a):
    owner_client.post("/settings/email/topics/", {"name": "Tips", "description": "How to"})
    assert (
        owner_client.post("/settings/email/topics/", {"name": "tips"}).status_code == 200
    )  # taken: form error
    assert Topic.objects.filter(tenant=tenant_a).count() == 1
    bad = owner_client.post("/settings/email/layouts/new/", {"name": "Plain", "html": "<p>no slot</p>"})
    assert "block content" in bad.content.decode() and not EmailLayout.objects.exists()
    owner_client.post(
        "/settings/email/layouts/new/",
        {"name": "A", "html": "{% block content %}{% endblock %}", "is_default": "on"},
    )
    owner_client.post(
        "/settings/email/layouts/new/",
        {"name": "B", "html": "{% block content %}{% endblock %}", "is_default": "on"},
    )
    assert list(EmailLayout.objects.filter(is_default=True).values_list("name", flat=True)) == ["B"]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert actions == {"topic.created", "layout.created"}


def test_unsubscribe_url_on_a_step_without_unsubscribe_is_a_save_time_error():
    kind = get_kind("send_email")
    config = {"to": "{{ item.email }}", "subject": "Hi", "html": '<a href="{{ unsubscribe_url }}">stop</a>'}
    with pytest.raises(ConfigError) as error:
        kind.validate(config)
    assert "Allow unsubscribe" in error.value.errors["html"]
    assert kind.validate({**config, "allow_unsubscribe": True})["allow_unsubscribe"] is True


def test_api_topics_layouts_suppressions(api, outsider_api, tenant_a):
    topic = api.post("/api/v1/topics/", {"name": "Tips"}, content_type="application/json")
    assert topic.status_code == 201, topic.content
    assert api.post("/api/v1/topics/", {"name": "TIPS"}, content_type="application/json").status_code == 409
    layout = api.post("/api/v1/layouts/", {"name": "L", "html": "<p>x</p>"}, content_type="application/json")
    assert layout.status_code == 409 and "block content" in layout.content.decode()
    extra = api.post("/api/v1/topics/", {"name": "X", "id": 5}, content_type="application/json")
    assert extra.status_code == 400 and "Only these fields" in extra.json()["detail"]
    entry = api.post(
        "/api/v1/suppressions/",
        {"address": "Ada@Example.com", "reason": "complaint"},
        content_type="application/json",
    )
    assert (
        entry.status_code == 201
        and entry.json()["address"] == "ada@example.com"
        and entry.json()["source"] == "api"
    )
    assert api.get("/api/v1/suppressions/", {"q": "ada"}).json()["count"] == 1
    assert outsider_api.get(f"/api/v1/suppressions/{entry.json()['id']}/").status_code == 404
    assert outsider_api.delete(f"/api/v1/topics/{topic.json()['id']}/").status_code == 404
    assert api.delete(f"/api/v1/suppressions/{entry.json()['id']}/").status_code == 204
    events = AuditEvent.objects.filter(tenant=tenant_a).values_list("action", "via")
    assert set(events) == {
        ("topic.created", "api"),
        ("suppression.added", "api"),
        ("suppression.removed", "api"),
    }


@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_change_without_a_body_is_refused_and_changes_nothing(api, method):
    topic = api.post("/api/v1/topics/", {"name": "Tips"}, content_type="application/json").json()

    response = getattr(api, method)(f"/api/v1/topics/{topic['id']}/")

    assert response.status_code == 400
    assert "Send a JSON object with the fields to change" in response.json()["detail"]
    assert api.get(f"/api/v1/topics/{topic['id']}/").json() == topic
    renamed = api.patch(f"/api/v1/topics/{topic['id']}/", {"name": "News"}, content_type="application/json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "News"


def test_suppressions_cannot_be_replaced_only_added_and_removed(api):
    entry = api.post("/api/v1/suppressions/", {"address": "a@example.com"}, content_type="application/json")

    for method in ("put", "patch"):
        response = getattr(api, method)(
            f"/api/v1/suppressions/{entry.json()['id']}/",
            {"address": "b@example.com"},
            content_type="application/json",
        )
        assert response.status_code == 405, response.content
    assert api.get(f"/api/v1/suppressions/{entry.json()['id']}/").json()["address"] == "a@example.com"


def test_files_name_topics_and_layouts(tenant_a, tenant_b):
    tips = Topic.objects.create(tenant=tenant_a, name="Tips")
    layout = EmailLayout.objects.create(
        tenant=tenant_a, name="Brand", html="{% block content %}{% endblock %}"
    )
    workflow = build_workflow(
        tenant_a, webhook([email(allow_unsubscribe=True, topic=tips.pk, layout=layout.pk)]), publish_it=False
    )
    data = export_workflow(workflow)
    config = data["trigger"]["children"][0]["config"]
    assert config["topic"] == {"name": "Tips"} and config["layout"] == {"name": "Brand"}
    with pytest.raises(WorkflowFileError) as error:
        import_workflow(data, tenant_b)
    assert "Tips" in str(error.value)
    Topic.objects.create(tenant=tenant_b, name="Tips")
    EmailLayout.objects.create(tenant=tenant_b, name="Brand", html="{% block content %}{% endblock %}")
    imported = import_workflow(data, tenant_b)
    step = imported.versions.get().steps.get(kind="send_email")
    assert Topic.objects.get(pk=step.config["topic"]).tenant == tenant_b
    assert EmailLayout.objects.get(pk=step.config["layout"]).tenant == tenant_b
    raw = {**data}
    raw["trigger"]["children"][0]["config"]["topic"] = tips.pk  # tenant A's id in a file for tenant B
    with pytest.raises(WorkflowFileError):
        import_workflow(raw, tenant_b)


def test_topics_page_and_api_set_transactional(owner_client, api, tenant_a):
    owner_client.post("/settings/email/topics/", {"name": "Receipts", "transactional": "on"})
    owner_client.post("/settings/email/topics/", {"name": "News"})
    assert dict(Topic.objects.values_list("name", "transactional")) == {"Receipts": True, "News": False}
    page = owner_client.get("/settings/email/topics/").content.decode()
    assert "exempt (transactional)" in page and "counted" in page
    made = api.post(
        "/api/v1/topics/", {"name": "Resets", "transactional": True}, content_type="application/json"
    )
    assert made.status_code == 201 and made.json()["transactional"] is True
