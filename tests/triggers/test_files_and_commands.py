"""Portable workflow files (data sources by name, errors by step path, no decryption on export) and the
commands to list, unpublish and archive workflows and to add a data source."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations.crypto import _fernet, encrypt
from integrations.models import DataSource
from runs.models import Run
from tests.triggers.conftest import db_trigger_workflow, make_workflow, pg_triggers
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft, publish

pytestmark = pytest.mark.django_db


def export(workflow, tmp_path) -> dict:
    path = tmp_path / "workflow.json"
    call_command("export_workflow", workflow.pk, "-o", str(path))
    return json.loads(path.read_text())


def import_file(data: dict, tmp_path, tenant, *flags) -> str:
    path = tmp_path / "import.json"
    path.write_text(json.dumps(data))
    from io import StringIO

    out = StringIO()
    call_command("import_workflow", str(path), "--tenant", tenant.slug, *flags, stdout=out)
    return out.getvalue()


def test_a_database_trigger_workflow_moves_to_another_tenant_by_data_source_name(
    tenant_a, tenant_b, datasource, second_customer_db, tmp_path
):
    original = db_trigger_workflow(datasource, table="signups", name="Welcome")
    data = export(original, tmp_path)
    assert data["trigger"]["config"]["datasource"] == {"name": "Shop"}

    # Tenant B's "Shop" is another database; an unrelated source with a lower id must not be picked.
    DataSource.objects.create(tenant=tenant_b, name="Other", connection_url=second_customer_db)
    theirs = DataSource.objects.create(tenant=tenant_b, name="Shop", connection_url=second_customer_db)
    import_file(data, tmp_path, tenant_b, "--publish")

    imported = Workflow.objects.for_tenant(tenant_b).get()
    assert imported.published_version.root_step().config["datasource"] == theirs.pk
    assert pg_triggers(second_customer_db) == [("signups", f"rowbell_wf_{imported.pk}_insert")]


def test_an_unknown_data_source_name_fails_by_step_path_and_imports_nothing(
    tenant_a, tenant_b, datasource, tmp_path
):
    workflow = make_workflow(tenant_a, "webhook_trigger", {"sample": {}})
    root = get_or_create_draft(workflow).root_step()
    Step.objects.create(
        tenant=tenant_a,
        version=root.version,
        parent=root,
        kind="data_query",
        config={"datasource": datasource.pk, "sql": "SELECT 1 AS x", "mode": "fanout", "key_column": "x"},
    )
    data = export(workflow, tmp_path)

    with pytest.raises(
        CommandError, match="trigger/0: datasource: This tenant has no data source named “Shop”"
    ):
        import_file(data, tmp_path, tenant_b)
    data["trigger"]["children"][0]["config"]["datasource"] = datasource.pk  # a bare id: another tenant's
    with pytest.raises(CommandError, match=r"trigger/0: datasource: Name the data source, like \{\"name\""):
        import_file(data, tmp_path, tenant_b)
    assert not Workflow.objects.for_tenant(tenant_b).exists()


def test_a_publish_failure_on_import_names_the_step_path(
    tenant_a, tenant_b, datasource, second_customer_db, tmp_path
):
    data = export(db_trigger_workflow(datasource, table="signups"), tmp_path)
    DataSource.objects.create(tenant=tenant_b, name="Shop", connection_url=second_customer_db)
    data["trigger"]["config"]["table"] = "no_such_table"

    with pytest.raises(CommandError) as raised:
        import_file(data, tmp_path, tenant_b, "--publish")

    assert "trigger: table: Rowbell could not install the trigger on public.no_such_table" in str(
        raised.value
    )
    assert "{" not in str(raised.value)
    assert not Workflow.objects.for_tenant(tenant_b).exists()


def test_export_works_after_encryption_keys_changed_and_decrypts_nothing(tenant_a, settings, tmp_path):
    workflow = make_workflow(tenant_a, "webhook_trigger", {"sample": {}})
    token = encrypt("https://hooks.slack.com/services/T/B/x")
    root = get_or_create_draft(workflow).root_step()
    Step.objects.create(
        tenant=tenant_a,
        version=root.version,
        parent=root,
        kind="slack_message",
        config={"webhook_url_encrypted": token, "text": "hi"},
    )
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    _fernet.cache_clear()
    try:
        with pytest.raises(ValueError):
            Workflow.objects.get(pk=workflow.pk).webhook_secret  # noqa: B018 (the secret is unreadable now)
        data = export(workflow, tmp_path)
    finally:
        _fernet.cache_clear()
    assert data["trigger"]["children"][0]["config"]["webhook_url_encrypted"] == token
    assert "webhook_secret" not in json.dumps(data)


def test_list_unpublish_and_archive_commands(tenant_a, tenant_b, datasource, customer_db, capsys):
    live = db_trigger_workflow(datasource, name="Live one")
    draft = make_workflow(tenant_a, "webhook_trigger", {"sample": {}}, name="Draft one")
    make_workflow(tenant_b, "webhook_trigger", {"sample": {}}, name="Theirs")

    call_command("list_workflows", "--tenant", "acme")
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["ID", "TENANT", "STATE", "TRIGGER", "NAME"]
    assert any(
        line.split()[:4] == [str(live.pk), "acme", "live", "v1"] and "Database trigger" in line
        for line in listing
    )
    assert any(
        line.startswith(str(draft.pk)) and "draft" in line and "Webhook trigger" in line for line in listing
    )
    assert not any("Theirs" in line for line in listing)

    with pytest.raises(CommandError, match=f"No workflow {live.pk} in tenant globex"):
        call_command("unpublish_workflow", live.pk, "--tenant", "globex")
    call_command("unpublish_workflow", live.pk)
    assert "unpublished (it ran version 1)" in capsys.readouterr().out
    live.refresh_from_db()
    assert live.published_version is None and pg_triggers(customer_db) == []

    get_or_create_draft(live)
    publish(live)
    Run.objects.create(
        tenant=tenant_a, workflow=live, version=live.published_version, event_key="e1", payload={}
    )
    call_command("archive_workflow", live.pk)
    call_command("archive_workflow", draft.pk)
    out = capsys.readouterr().out
    assert (
        f"workflow {live.pk} “Live one” archived" in out
        and f"workflow {draft.pk} “Draft one” deleted (it never ran)" in out
    )
    live.refresh_from_db()
    assert live.status == "archived" and live.published_version is None and pg_triggers(customer_db) == []
    assert not Workflow.objects.filter(pk=draft.pk).exists()
    call_command("list_workflows", "--archived")
    assert "Live one" in capsys.readouterr().out


def test_add_datasource_checks_and_lists_fixes(tenant_a, customer_db, capsys, monkeypatch):
    monkeypatch.setenv("SHOP_URL", customer_db)
    call_command(
        "add_datasource",
        "--tenant",
        "acme",
        "--name",
        "Shop",
        "--url-env",
        "SHOP_URL",
        "--schemas",
        "public,app",
    )
    out = capsys.readouterr().out
    source = DataSource.objects.get(tenant=tenant_a)
    assert source.connection_url == customer_db and source.schemas == ["public", "app"]
    assert "There is no schema “app” in this database" in out

    with pytest.raises(CommandError, match="has a data source named “Shop” already"):
        call_command("add_datasource", "--tenant", "acme", "--name", "Shop", "--url", customer_db)
    with pytest.raises(CommandError, match="PostgreSQL URL"):
        call_command("add_datasource", "--tenant", "acme", "--name", "X", "--url", "mysql://h/db")
    call_command(
        "add_datasource",
        "--tenant",
        "acme",
        "--name",
        "Y",
        "--url",
        "postgresql://rowbell_ux:pw@h/shop",
        "--schemas",
        "app",
        "--setup-sql",
    )
    assert 'GRANT USAGE ON SCHEMA "app" TO "rowbell_ux"' in capsys.readouterr().out
    assert DataSource.objects.count() == 1
