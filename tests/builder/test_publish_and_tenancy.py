"""Publishing from the builder (roles, refusal naming steps, diff), versions, and the outsider's 404s."""

from __future__ import annotations

import pytest

from tests.support import finished_preview_token, signed_in
from workflows.diff import diff_versions
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish

pytestmark = pytest.mark.django_db


def webhook_workflow(tenant, name="Hooked") -> Workflow:
    workflow = Workflow.objects.create(tenant=tenant, name=name)
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", name="Hook", config={})
    Step.objects.create(
        tenant=tenant,
        version=draft,
        parent=root,
        kind="send_email",
        name="Tell them",
        config={"to": "{{ item.email }}", "subject": "Hi", "text": "Hello"},
    )
    return workflow


def test_member_cannot_publish_and_admin_can(client, member, admin, tenant_a):
    workflow = webhook_workflow(tenant_a)
    signed_in(client, member)
    assert client.get(f"/workflows/{workflow.pk}/publish/").status_code == 403
    assert client.post(f"/workflows/{workflow.pk}/publish/confirm/").status_code == 403
    workflow.refresh_from_db()
    assert workflow.published_version is None
    # ...but members edit drafts.
    step = Step.objects.get(version__workflow=workflow, kind="send_email")
    saved = client.post(
        f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
        {
            "name": "Edited by max",
            "revision": step.version.revision,
            "config-to": "{{ item.email }}",
            "config-subject": "Hi",
            "config-text": "Hello",
        },
    )
    assert saved.status_code == 200
    client.logout()
    signed_in(client, admin)
    dialog = client.get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "the first version: everything below goes live" in dialog and "Edited by max" in dialog
    token = finished_preview_token(workflow)
    response = client.post(f"/workflows/{workflow.pk}/publish/confirm/", {"sandbox": "on", "token": token})
    assert response.status_code == 204 and response["HX-Redirect"].endswith(f"/workflows/{workflow.pk}/")
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1 and workflow.published_version.sandbox


def test_publish_is_refused_naming_the_steps_to_fix(client, owner, tenant_a):
    workflow = webhook_workflow(tenant_a)
    step = Step.objects.get(version__workflow=workflow, kind="send_email")
    Step.objects.filter(pk=step.pk).update(
        config={"to": "{{ item.email }}", "subject": "Hi {% if %}", "text": "x"}
    )
    signed_in(client, owner)
    dialog = client.get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "cannot be published yet" in dialog and "<strong>Tell them</strong>" in dialog
    assert 'id="confirm-publish"' not in dialog
    refused = client.post(f"/workflows/{workflow.pk}/publish/confirm/").content.decode()
    assert "<strong>Tell them</strong>" in refused and "Template error" in refused
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_diff_names_added_removed_and_changed_steps(tenant_a, owner):
    workflow = webhook_workflow(tenant_a)
    v1 = publish(workflow, user=owner)
    draft = get_or_create_draft(workflow)
    email = draft.steps.get(kind="send_email")
    email.config = {**email.config, "subject": "Hello again"}
    email.save()
    Step.objects.create(tenant=tenant_a, version=draft, parent=email, kind="wait", name="Pause", config={})
    diff = diff_versions(v1, draft)
    assert [s.name for s in diff.added] == ["Pause"]
    assert [(c.step.name, c.what) for c in diff.changed] == [("Tell them", ["settings: subject"])]
    assert diff.removed == [] and diff.install == ""
    draft.steps.filter(kind="wait").delete()
    email.delete()
    diff = diff_versions(v1, draft)
    assert [s.name for s in diff.removed] == ["Tell them"]


def test_versions_read_only_and_restore_as_draft(client, owner, tenant_a):
    workflow = webhook_workflow(tenant_a)
    v1 = publish(workflow, user=owner)
    draft = get_or_create_draft(workflow)
    draft.steps.filter(kind="send_email").delete()
    signed_in(client, owner)
    listing = client.get(f"/workflows/{workflow.pk}/versions/").content.decode()
    assert "Version 1" in listing
    page = client.get(f"/workflows/{workflow.pk}/versions/{v1.pk}/").content.decode()
    assert "read-only" in page and "Tell them" in page and "hx-post" not in page
    client.post(f"/workflows/{workflow.pk}/versions/{v1.pk}/restore/")
    draft = WorkflowVersion.objects.get(workflow=workflow, state="draft")
    assert sorted(draft.steps.values_list("name", flat=True)) == ["Hook", "Tell them"]


def test_workflow_list_create_rename_duplicate_archive(client, owner, tenant_a):
    signed_in(client, owner)
    response = client.post("/workflows/new/", {"name": "Welcome"})
    workflow = Workflow.objects.get(tenant=tenant_a, name="Welcome")
    assert response["Location"] == f"/workflows/{workflow.pk}/"
    client.post("/workflows/new/", {"name": "  "})
    assert Workflow.objects.filter(tenant=tenant_a).count() == 1
    client.post(f"/workflows/{workflow.pk}/rename/", {"name": "Welcome users"})
    workflow.refresh_from_db()
    assert workflow.name == "Welcome users"
    client.post(f"/workflows/{workflow.pk}/steps/add/", {"kind": "webhook_trigger"})
    client.post(f"/workflows/{workflow.pk}/duplicate/")
    copy = Workflow.objects.get(tenant=tenant_a, name="Copy of Welcome users")
    assert list(copy.versions.get().steps.values_list("kind", flat=True)) == ["webhook_trigger"]
    client.post(f"/workflows/{copy.pk}/archive/")
    assert not Workflow.objects.filter(pk=copy.pk).exists()  # never ran: deleted
    assert "Welcome users" in client.get("/workflows/").content.decode()
    dashboard = client.get("/").content.decode()
    assert "Welcome users" in dashboard and "never" in dashboard


def builder_urls(workflow: Workflow) -> list[tuple[str, str]]:
    draft = get_or_create_draft(workflow)
    step = draft.steps.get(kind="send_email")
    version = publish(workflow)
    get_or_create_draft(workflow)
    step = Step.objects.get(version__workflow=workflow, version__state="draft", key=step.key)
    base = f"/workflows/{workflow.pk}"
    return [
        ("get", f"{base}/"),
        ("post", f"{base}/rename/"),
        ("post", f"{base}/duplicate/"),
        ("post", f"{base}/archive/"),
        ("post", f"{base}/steps/add/"),
        ("get", f"{base}/steps/{step.pk}/"),
        ("post", f"{base}/steps/{step.pk}/save/"),
        ("post", f"{base}/steps/{step.pk}/delete/"),
        ("get", f"{base}/publish/"),
        ("post", f"{base}/publish/confirm/"),
        ("post", f"{base}/unpublish/"),
        ("get", f"{base}/versions/"),
        ("get", f"{base}/versions/{version.pk}/"),
        ("post", f"{base}/versions/{version.pk}/restore/"),
    ]


def test_outsider_gets_404_on_every_builder_url(client, outsider, tenant_a):
    workflow = webhook_workflow(tenant_a)
    urls = builder_urls(workflow)
    before = (Step.objects.count(), WorkflowVersion.objects.count(), Workflow.objects.count())
    signed_in(client, outsider)
    for method, url in urls:
        response = getattr(client, method)(url, {"name": "x", "kind": "wait", "revision": "0"})
        assert response.status_code == 404, (method, url, response.status_code)
    assert (Step.objects.count(), WorkflowVersion.objects.count(), Workflow.objects.count()) == before
    workflow.refresh_from_db()
    assert workflow.name == "Hooked" and workflow.published_version is not None


def test_step_of_another_workflow_is_404_even_in_the_same_tenant(client, owner, tenant_a):
    first, second = webhook_workflow(tenant_a, "One"), webhook_workflow(tenant_a, "Two")
    step = Step.objects.get(version__workflow=second, kind="send_email")
    signed_in(client, owner)
    assert client.get(f"/workflows/{first.pk}/steps/{step.pk}/").status_code == 404
    assert client.post(f"/workflows/{first.pk}/steps/{step.pk}/delete/").status_code == 404
    assert Step.objects.filter(pk=step.pk).exists()


def test_anonymous_is_sent_to_sign_in(client, tenant_a):
    workflow = webhook_workflow(tenant_a)
    response = client.get(f"/workflows/{workflow.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
