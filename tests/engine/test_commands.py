"""Workflows as files (export, import, publish) and starting runs from the command line."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from runs.models import Run
from tests.engine.conftest import build_workflow, customer_db, data_source, email, query, webhook, work
from workflows.models import Workflow


def test_export_then_import_into_another_tenant_and_run_it(
    clock, smtp, tenant_a, tenant_b, tenant_database, tmp_path, capsys
):
    customer_db(
        tenant_database, "CREATE TABLE u (id int, email text); INSERT INTO u VALUES (1, 'x@example.com')"
    )
    source_a = data_source(tenant_a, tenant_database)
    original = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    source_a,
                    "SELECT id, email FROM u WHERE id = {{ item.id }}",
                    children=[email(subject="Hi", text="Hello")],
                )
            ]
        ),
        name="Welcome",
    )
    path = tmp_path / "welcome.json"
    call_command("export_workflow", original.pk, "-o", str(path))
    data = json.loads(path.read_text())
    assert data["format"] == "rowbell.workflow/1" and data["name"] == "Welcome"
    dq = data["trigger"]["children"][0]
    assert dq["kind"] == "data_query" and dq["config"]["datasource"] == {"name": "App DB"}

    data_source(tenant_b, tenant_database)
    call_command("import_workflow", str(path), "--tenant", tenant_b.slug, "--publish")
    imported = Workflow.objects.for_tenant(tenant_b).get()
    assert imported.is_published and imported.name == "Welcome"
    step_keys = {str(k) for k in imported.published_version.steps.values_list("key", flat=True)}
    assert data["trigger"]["key"] in step_keys

    call_command("trigger_workflow", imported.pk, "--payload", '{"id": 1}', "--event-key", "cli-1")
    assert "run " in capsys.readouterr().out
    work(clock)
    assert Run.objects.get(workflow=imported).status == "succeeded"
    assert smtp.recipients() == ["x@example.com"]


def test_a_bad_file_is_refused_naming_the_step_and_field_and_imports_nothing(clock, tenant_a, tmp_path):
    bad = {
        "format": "rowbell.workflow/1",
        "name": "Bad",
        "trigger": {
            "kind": "webhook_trigger",
            "config": {},
            "children": [{"kind": "send_email", "config": {"subject": "Hi", "text": "x"}}],
        },
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError, match=r"trigger/0: to: This field is required"):
        call_command("import_workflow", str(path), "--tenant", tenant_a.slug)
    assert not Workflow.objects.exists()


def test_trigger_workflow_refuses_bad_payloads_and_unpublished_workflows(clock, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]), publish_it=False)
    with pytest.raises(CommandError, match="JSON object"):
        call_command("trigger_workflow", workflow.pk, "--payload", "[1]")
    with pytest.raises(CommandError, match="not published"):
        call_command("trigger_workflow", workflow.pk, "--payload", "{}")
    with pytest.raises(CommandError, match="No workflow"):
        call_command("trigger_workflow", workflow.pk, "--tenant", "someone-else")


def test_sweeper_command_runs_once(clock, capsys):
    call_command("sweeper", "--once")
    assert "reclaimed=0" in capsys.readouterr().out
