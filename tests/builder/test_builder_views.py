"""The builder through Django's test client: adding, saving, errors under fields, stale tabs, deleting."""

from __future__ import annotations

import re

import pytest

from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(tenant_a, owner):
    return Workflow.objects.create(tenant=tenant_a, name="Onboarding", created_by=owner)


def add(client, workflow, kind, anchor=None, mode="child"):
    data = {"kind": kind, "mode": mode}
    if anchor is not None:
        data["anchor"] = anchor.pk
    response = client.post(f"/workflows/{workflow.pk}/steps/add/", data)
    assert response.status_code == 200, response.content
    return Step.objects.filter(version__workflow=workflow, kind=kind).order_by("-id").first()


def save(client, workflow, step, revision=None, **config):
    if revision is None:
        revision = WorkflowVersion.objects.get(pk=step.version_id).revision
    data = {"name": config.pop("name", step.name), "revision": revision, "changed": config.pop("changed", "")}
    data.update({f"config-{k}": v for k, v in config.items()})
    return client.post(f"/workflows/{workflow.pk}/steps/{step.pk}/save/", data)


def test_build_a_tree_with_a_branch_and_an_insert(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    wait = add(owner_client, workflow, "wait", email)
    first = add(owner_client, workflow, "data_query", wait)
    second = add(owner_client, workflow, "data_query", wait)  # "+ branch" on the wait: a parallel child
    inserted = add(owner_client, workflow, "condition", trigger, mode="insert")
    for step in (email, wait, first, second, inserted):
        step.refresh_from_db()
    assert inserted.parent_id == trigger.pk
    assert email.parent_id == inserted.pk
    assert first.parent_id == wait.pk and second.parent_id == wait.pk
    page = owner_client.get(f"/workflows/{workflow.pk}/")
    assert page.status_code == 200
    assert page.content.count(b'class="node-wrap"') == 6


def test_trigger_table_and_columns_come_from_introspection(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")  # the only data source: chosen already
    assert trigger.config["datasource"] == datasource.pk and trigger.config["schema"] == "public"
    response = owner_client.get(f"/workflows/{workflow.pk}/steps/{trigger.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="users">public.users</option>' in html
    assert '<option value="teams">public.teams</option>' in html
    response = save(
        owner_client,
        workflow,
        trigger,
        datasource=datasource.pk,
        schema="public",
        table="users",
        operations=["insert", "update"],
    )
    html = response.content.decode()
    assert 'value="email"' in html and "email (text)" in html
    trigger.refresh_from_db()
    assert trigger.config == {
        "datasource": datasource.pk,
        "schema": "public",
        "table": "users",
        "operations": ["insert", "update"],
        "watch_columns": [],
    }


def test_bad_template_shows_line_under_the_field_and_keeps_the_text(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    bad = "Hello\n{{ item.name "
    response = save(owner_client, workflow, email, to="{{ item.email }}", subject="Hi", text=bad)
    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(r'<div class="error" id="err-text" role="alert" hx-swap-oob="true">([^<]+)</div>', html)
    assert error and "line 2" in error.group(1).lower()
    email.refresh_from_db()
    assert email.config["text"] == bad  # nothing lost


def test_bad_sql_is_reported_by_postgres_under_the_field(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")
    query = add(owner_client, workflow, "data_query", trigger)
    response = save(
        owner_client, workflow, query, datasource=datasource.pk, sql="SELEC id FROM teams", mode="first"
    )
    html = response.content.decode()
    assert re.search(r'id="err-sql"[^>]*>[^<]*syntax error', html), html
    response = save(
        owner_client,
        workflow,
        query,
        datasource=datasource.pk,
        sql="SELECT id, name AS team FROM teams WHERE owner_id = {{ item.id }}",
        mode="first",
    )
    assert re.search(r'id="err-sql" role="alert" hx-swap-oob="true"></div>', response.content.decode())


def test_variable_picker_lists_trigger_and_query_columns(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")
    save(
        owner_client,
        workflow,
        trigger,
        datasource=datasource.pk,
        schema="public",
        table="users",
        operations=["insert"],
    )
    query = add(owner_client, workflow, "data_query", trigger)
    save(
        owner_client,
        workflow,
        query,
        datasource=datasource.pk,
        sql="SELECT name AS team_name FROM teams WHERE owner_id = {{ item.id }}",
        mode="first",
    )
    email = add(owner_client, workflow, "send_email", query)
    panel = owner_client.get(f"/workflows/{workflow.pk}/steps/{email.pk}/").content.decode()
    chips = re.findall(r'data-insert="([^"]+)"', panel)
    assert (
        "{{ item.email }}" in chips and "{{ item.team_name }}" in chips and "{{ item.created_at }}" in chips
    )


def test_email_preview_renders_against_a_sample_item(owner_client, workflow, datasource):
    trigger = add(owner_client, workflow, "database_trigger")
    save(
        owner_client,
        workflow,
        trigger,
        datasource=datasource.pk,
        schema="public",
        table="users",
        operations=["insert"],
    )
    email = add(owner_client, workflow, "send_email", trigger)
    response = save(
        owner_client,
        workflow,
        email,
        to="{{ item.email }}",
        subject="Welcome {{ item.email }}!",
        text="Plan: {{ item.plan }}",
    )
    html = response.content.decode()
    assert 'class="preview-subject">Welcome someone@example.com!</dd>' in html


def test_a_stale_tab_still_saves_and_is_told(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    form = {"to": "{{ item.email }}", "subject": "Hi", "text": "Hello"}
    save(owner_client, workflow, email, name="Say hi", **form)
    revision = WorkflowVersion.objects.get(pk=email.version_id).revision
    first = save(
        owner_client,
        workflow,
        email,
        revision=revision,
        name="Say hi",
        changed="config-subject",
        **{**form, "subject": "Tab one"},
    )
    assert "another tab" not in first.content.decode()
    # Tab two still holds the old revision and changed only the text.
    second = save(
        owner_client,
        workflow,
        email,
        revision=revision,
        name="Say hi",
        changed="config-text",
        **{**form, "text": "Tab two"},
    )
    html = second.content.decode()
    assert "another tab" in html and second["HX-Retarget"] == "#panel"
    email.refresh_from_db()
    assert (email.config["subject"], email.config["text"]) == ("Tab one", "Tab two")  # nothing lost
    assert (
        'value="Tab one"' not in html and "Tab one</textarea>" in html
    )  # tab two now sees tab one's subject
    # The same field edited in both: the later write wins.
    third = save(
        owner_client,
        workflow,
        email,
        revision=revision,
        name="Say hi",
        changed="config-subject",
        **{**form, "subject": "Later"},
    )
    assert "another tab" in third.content.decode()
    email.refresh_from_db()
    assert email.config["subject"] == "Later"
    new_revision = re.search(r'id="revision" name="revision" value="(\d+)"', third.content.decode()).group(1)
    fourth = save(
        owner_client,
        workflow,
        email,
        revision=new_revision,
        name="Renamed",
        changed="name",
        **{**form, "subject": "Later"},
    )
    assert "another tab" not in fourth.content.decode()


def test_delete_removes_the_subtree(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    wait = add(owner_client, workflow, "wait", trigger)
    add(owner_client, workflow, "send_email", wait)
    add(owner_client, workflow, "send_email", wait)
    panel = owner_client.get(f"/workflows/{workflow.pk}/steps/{wait.pk}/").content.decode()
    assert "and the 2 steps below it?" in panel  # asks first
    response = owner_client.post(f"/workflows/{workflow.pk}/steps/{wait.pk}/delete/")
    assert response.status_code == 200
    draft = get_or_create_draft(workflow)
    assert list(draft.steps.values_list("kind", flat=True)) == ["webhook_trigger"]


def test_delete_after_a_test_run_discards_that_test_run(owner_client, workflow):
    from runs.engine import start_run
    from runs.models import Run, StepExecution

    trigger = add(owner_client, workflow, "webhook_trigger")
    wait = add(owner_client, workflow, "wait", trigger)
    draft = get_or_create_draft(workflow)
    run = start_run(workflow, {"id": 1}, "test-1", version=draft, is_test=True)
    # The test run got as far as the wait step: its execution pins that step.
    StepExecution.objects.get_or_create(tenant_id=run.tenant_id, run=run, step=wait, item_key="0")
    response = owner_client.post(f"/workflows/{workflow.pk}/steps/{wait.pk}/delete/")
    assert response.status_code == 200
    assert list(draft.steps.values_list("kind", flat=True)) == ["webhook_trigger"]
    assert not Run.objects.filter(pk=run.pk).exists()


def test_only_one_trigger_and_it_comes_first(owner_client, workflow):
    add(owner_client, workflow, "webhook_trigger")
    second = owner_client.post(f"/workflows/{workflow.pk}/steps/add/", {"kind": "schedule_trigger"})
    assert second.status_code == 400
    root_email = owner_client.post(f"/workflows/{workflow.pk}/steps/add/", {"kind": "send_email"})
    assert root_email.status_code == 400


def test_a_new_step_points_at_blanks_only_when_asked(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    opened = owner_client.get(f"/workflows/{workflow.pk}/steps/{email.pk}/").content.decode()
    assert 'id="err-subject" role="alert"></div>' in opened
    assert "needs fixing" in opened  # the tree still marks the step
    checked = owner_client.get(f"/workflows/{workflow.pk}/?step={email.pk}&check=1").content.decode()
    assert 'id="err-subject" role="alert">This field is required.</div>' in checked


def test_builder_queries_do_not_grow_with_the_tree(owner_client, workflow):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    trigger = add(owner_client, workflow, "webhook_trigger")
    parent = add(owner_client, workflow, "wait", trigger)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(f"/workflows/{workflow.pk}/").status_code == 200
        return len(queries)

    small = count()
    draft = get_or_create_draft(workflow)
    for index in range(30):
        parent = Step.objects.create(
            tenant=workflow.tenant, version=draft, parent=parent, kind="wait", name=f"Wait {index}", config={}
        )
    assert count() == small


def test_a_long_chain_renders_in_the_builder_and_the_version_view(owner_client, workflow, owner):
    from workflows.publishing import publish

    draft = get_or_create_draft(workflow)
    parent = Step.objects.create(tenant=workflow.tenant, version=draft, kind="webhook_trigger", name="Hook")
    for index in range(150):
        parent = Step.objects.create(
            tenant=workflow.tenant,
            version=draft,
            parent=parent,
            kind="wait",
            name=f"Wait {index}",
            config={"mode": "duration", "amount": 1, "unit": "days"},
        )
    page = owner_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert page.count('class="node-wrap"') == 151 and "Wait 149" in page
    version = publish(workflow, user=owner)
    old = owner_client.get(f"/workflows/{workflow.pk}/versions/{version.pk}/").content.decode()
    assert old.count('class="node-wrap"') == 151
