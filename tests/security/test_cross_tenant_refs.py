"""A step may only name its own workspace's data sources: refused on builder save, import and publish.

Another workspace's id gets the same answer as an id that does not exist, so nothing about the other
workspace is revealed.
"""

from __future__ import annotations

import html

import pytest
from django.core.management import CommandError, call_command

from integrations.models import DataSource
from workflows.files import WorkflowFileError, import_workflow
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish
from workflows.steps.base import PublishError

pytestmark = pytest.mark.django_db

URL = "postgresql://postgres@127.0.0.1:5432/nowhere"  # never connected to: refused before any connection


@pytest.fixture
def ours(tenant_a):
    return DataSource.objects.create(tenant=tenant_a, name="Ours", connection_url=URL)


@pytest.fixture
def theirs(tenant_b):
    return DataSource.objects.create(tenant=tenant_b, name="Theirs", connection_url=URL)


def draft_with(tenant, kind: str, config: dict, name: str = "Find users") -> tuple[Workflow, Step]:
    workflow = Workflow.objects.create(tenant=tenant, name="Digest")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", config={})
    step = Step.objects.create(tenant=tenant, version=draft, parent=root, kind=kind, name=name, config=config)
    return workflow, step


def file_with(datasource, kind="data_query") -> dict:
    query = {"datasource": datasource, "sql": "SELECT id FROM users", "mode": "fanout"}
    trigger = {
        "kind": "webhook_trigger",
        "config": {},
        "children": [{"kind": kind, "name": "Find users", "config": query}],
    }
    if kind == "database_trigger":
        trigger = {
            "kind": "database_trigger",
            "name": "New user",
            "config": {"datasource": datasource, "schema": "public", "table": "users"},
        }
    return {"format": "rowbell.workflow/1", "name": "Imported", "trigger": trigger}


@pytest.mark.parametrize("kind", ["data_query", "database_trigger"])
def test_the_builder_refuses_another_workspaces_data_source(member_client, tenant_a, ours, theirs, kind):
    config = {"datasource": ours.pk, "sql": "SELECT id FROM users"} if kind == "data_query" else {}
    workflow, step = draft_with(tenant_a, kind, config)
    revision = WorkflowVersion.objects.get(pk=step.version_id).revision
    response = member_client.post(
        f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
        {"name": step.name, "revision": revision, "config-datasource": theirs.pk},
    )
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "This data source does not exist (any more): choose another one." in page
    assert "Theirs" not in page
    step.refresh_from_db()
    assert step.config.get("datasource") == config.get("datasource")  # theirs was not stored


def test_a_missing_id_gets_the_same_answer(member_client, tenant_a, ours, theirs):
    workflow, step = draft_with(tenant_a, "data_query", {"datasource": ours.pk, "sql": "SELECT 1 AS id"})
    answers = []
    pks = (theirs.pk, theirs.pk + 1000)
    for pk in pks:
        revision = WorkflowVersion.objects.get(pk=step.version_id).revision
        page = member_client.post(
            f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
            {"name": step.name, "revision": revision, "config-datasource": pk},
        ).content.decode()
        start = page.index('id="err-datasource"')
        answers.append(html.unescape(page[page.index(">", start) + 1 : page.index("</div>", start)]))
    assert answers == ["This data source does not exist (any more): choose another one."] * 2


BARE_ID = 'Name the data source, like {"name": "App DB"}: ids differ between tenants and installations'


@pytest.mark.parametrize("kind", ["data_query", "database_trigger"])
@pytest.mark.parametrize("as_text", [False, True])
def test_import_refuses_another_workspaces_data_source_naming_the_step(tenant_a, theirs, kind, as_text):
    """Files name data sources; a bare id (another workspace's or not) and another's name are refused."""
    path = "trigger" if kind == "database_trigger" else "trigger/0"
    for reference, refusal in [
        (str(theirs.pk) if as_text else theirs.pk, BARE_ID),
        ({"name": theirs.name}, "This tenant has no data source named “Theirs”"),
    ]:
        with pytest.raises(WorkflowFileError) as caught:
            import_workflow(file_with(reference, kind), tenant_a)
        assert caught.value.errors[path]["datasource"].startswith(refusal)
    assert not Workflow.objects.filter(tenant=tenant_a).exists()  # nothing imported


def test_import_command_says_which_step(tenant_a, theirs, tmp_path):
    import json

    path = tmp_path / "wf.json"
    path.write_text(json.dumps(file_with(theirs.pk)))
    with pytest.raises(CommandError, match="trigger/0: datasource: Name the data source"):
        call_command("import_workflow", str(path), "--tenant", tenant_a.slug)


def test_import_by_name_works_and_a_bare_own_id_is_refused(tenant_a, ours):
    assert import_workflow(file_with({"name": "Ours"}), tenant_a).versions.get().steps.count() == 2
    with pytest.raises(WorkflowFileError) as caught:
        import_workflow(file_with(ours.pk), tenant_a)
    assert caught.value.errors["trigger/0"]["datasource"].startswith(BARE_ID)


def test_publishing_refuses_a_draft_that_names_another_workspaces_data_source(tenant_a, theirs):
    """A draft written before this check (or by any other path) cannot be published either."""
    workflow, step = draft_with(tenant_a, "data_query", {"datasource": theirs.pk, "sql": "SELECT 1 AS id"})
    with pytest.raises(PublishError) as caught:
        publish(workflow)
    assert "does not exist (any more)" in caught.value.step_errors[step.pk]["datasource"]
