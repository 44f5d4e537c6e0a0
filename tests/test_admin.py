"""Operators: the demo user signs in to the admin; every model's pages load; published versions are read-only."""

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse

from integrations.models import DataSource
from tests.support import publish_query_workflow
from workflows.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERNAME
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft, publish, unpublish


@pytest.fixture
def operator_client(client, db):
    call_command("seed_demo")
    response = client.post(
        reverse("admin:login"),
        {"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    return client


def test_seed_demo_is_repeatable_and_prints_the_credentials(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert DEMO_USERNAME in out and DEMO_PASSWORD in out
    # One published demo workflow, not one per call.
    workflow = Workflow.objects.get(tenant__slug="demo")
    assert workflow.is_published
    assert [s.kind for s in workflow.published_version.steps.order_by("id")] == [
        "webhook_trigger",
        "condition",
        "send_email",
    ]
    assert f"trigger_workflow {workflow.pk}" in out


def test_every_admin_changelist_loads_and_searches(operator_client, tenant_a, owner):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Onboarding")
    Step.objects.create(tenant=tenant_a, version=get_or_create_draft(workflow), kind="webhook_trigger")
    DataSource.objects.create(tenant=tenant_a, name="app", connection_url="postgresql://u:pw@h/db")
    for model in admin.site._registry:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = operator_client.get(url)
        assert response.status_code == 200, url
        response = operator_client.get(url, {"q": "x"})
        assert response.status_code == 200, url


def test_published_version_is_read_only_in_the_admin(operator_client, tenant_a, owner):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Onboarding")
    Step.objects.create(
        tenant=tenant_a, version=get_or_create_draft(workflow), kind="webhook_trigger", name="t"
    )
    version = publish(workflow, owner)
    url = reverse("admin:workflows_workflowversion_change", args=[version.pk])
    page = operator_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # view-only: no save button
    response = operator_client.post(url, {"sandbox": "on"})
    assert response.status_code == 403
    step = version.steps.get()
    response = operator_client.post(
        reverse("admin:workflows_step_change", args=[step.pk]), {"name": "hacked"}
    )
    assert response.status_code == 403
    step.refresh_from_db()
    assert step.name == "t"


def test_datasource_admin_never_shows_the_password(operator_client, tenant_a):
    source = DataSource.objects.create(
        tenant=tenant_a,
        name="app",
        connection_url="postgresql://u:hunter2@h/db",
        stale_trigger_urls="postgresql://u:old-pw@old-host/db",
    )
    page = operator_client.get(reverse("admin:integrations_datasource_change", args=[source.pk]))
    assert page.status_code == 200
    assert b"hunter2" not in page.content and "postgresql://u:••••••••@h/db".encode() in page.content
    assert b"old-pw" not in page.content and "postgresql://u:••••••••@old-host/db".encode() in page.content


def test_datasource_admin_refuses_to_delete_a_source_published_workflows_use(operator_client, tenant_a):
    source = DataSource.objects.create(tenant=tenant_a, name="app", connection_url="postgresql://u:pw@h/db")
    workflow = publish_query_workflow(source, "Digest")
    delete_url = reverse("admin:integrations_datasource_delete", args=[source.pk])
    workflow_url = reverse("admin:workflows_workflow_change", args=[workflow.pk])
    protected = f'Published workflow: <a href="{workflow_url}">Digest</a> (uses app)'

    page = operator_client.get(delete_url).content.decode()
    assert "would require deleting the following protected related objects" in page and protected in page
    operator_client.post(delete_url, {"post": "yes"})
    bulk = {"action": "delete_selected", "_selected_action": [source.pk]}
    changelist = reverse("admin:integrations_datasource_changelist")
    page = operator_client.post(changelist, bulk).content.decode()
    assert "would require deleting the following protected related objects" in page and protected in page
    operator_client.post(changelist, {**bulk, "post": "yes"})
    assert DataSource.objects.filter(pk=source.pk).exists()

    unpublish(workflow)
    assert operator_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not DataSource.objects.filter(pk=source.pk).exists()


def test_datasource_admin_checks_usage_again_when_it_deletes(tenant_a, rf):
    """The confirmation page's check runs before the delete; a publish in between must still stop it."""
    source = DataSource.objects.create(tenant=tenant_a, name="app", connection_url="postgresql://u:pw@h/db")
    publish_query_workflow(source, "Digest")
    model_admin = admin.site._registry[DataSource]
    with pytest.raises(PermissionDenied, match=r"Not deleted: app\. A workflow using it was published"):
        model_admin.delete_queryset(rf.post("/"), DataSource.objects.filter(pk=source.pk))
    with pytest.raises(PermissionDenied):
        model_admin.delete_model(rf.post("/"), source)
    assert DataSource.objects.filter(pk=source.pk).exists()


def test_datasource_admin_shows_notify_read_only(operator_client, tenant_a):
    source = DataSource.objects.create(tenant=tenant_a, name="app", connection_url="postgresql://u:pw@h/db")
    url = reverse("admin:integrations_datasource_change", args=[source.pk])
    page = operator_client.get(url).content.decode()
    assert 'name="name"' in page and 'name="notify_enabled"' not in page
    response = operator_client.post(url, {"name": "renamed", "tenant": tenant_a.pk, "notify_enabled": "on"})
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.name == "renamed" and not source.notify_enabled


def test_the_workflow_admin_shows_the_webhook_path_never_the_secret(operator_client, tenant_a):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Onboarding")

    page = operator_client.get(
        reverse("admin:workflows_workflow_change", args=[workflow.pk])
    ).content.decode()

    assert f"POST /hooks/{workflow.pk}/" in page and "trigger panel" in page
    assert workflow.webhook_secret not in page
