"""Editing a data source (rename, a new password, NOTIFY on and off, an unreachable database) and deleting
one that published workflows use, against a real customer database and the triggers installed in it."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.contrib.messages import get_messages
from django.db import connection

from integrations import datasources
from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.support import customer_execute, free_port, publish_query_workflow, scratch_database, signed_in
from workflows.database_triggers import watched_tables
from workflows.datasource_usage import published_workflows_using
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish, unpublish
from workflows.steps.base import PublishError
from workflows.views import datasources as views

pytestmark = pytest.mark.django_db


def publish_trigger_workflow(source: DataSource, name: str = "Welcome") -> Workflow:
    """A published workflow whose database trigger watches inserts into the customer's `users` table."""
    workflow = Workflow.objects.create(tenant=source.tenant, name=name)
    config = {"datasource": source.pk, "schema": "public", "table": "users", "operations": ["insert"]}
    Step.objects.create(
        tenant=source.tenant, version=get_or_create_draft(workflow), kind="database_trigger", config=config
    )
    publish(workflow)
    return workflow


def trigger_functions(url: str) -> list[tuple[str, str]]:
    """(trigger, function it calls) of Rowbell's triggers in the customer's database, from pg_trigger."""
    return customer_execute(
        url,
        "SELECT t.tgname, n.nspname || '.' || p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE t.tgname LIKE 'rowbell%%' ORDER BY 1",
    )


def trigger_oids(url: str) -> list[int]:
    """Reinstalling drops and creates the triggers, which gives them new oids."""
    return [
        row[0] for row in customer_execute(url, "SELECT oid FROM pg_trigger WHERE tgname LIKE 'rowbell%%'")
    ]


def stored_ciphertext(source: DataSource) -> str:
    """The connection URL as stored: a Fernet token, different on every encryption."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT connection_url FROM {DataSource._meta.db_table} WHERE id = %s", [source.pk])
        return cursor.fetchone()[0]


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def edit(client, source: DataSource, *, name: str | None = None, url: str = "", notify: bool | None = None):
    """POST the edit page as a browser would: every field, the checkbox only when ticked."""
    data = {"name": source.name if name is None else name, "connection_url": url}
    if source.notify_enabled if notify is None else notify:
        data["notify_enabled"] = "on"
    return client.post(f"/datasources/{source.pk}/edit/", data)


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host_and_port}"))


@pytest.fixture
def rowbell_role(customer_db, pg_admin_url):
    """Rowbell's least-privilege role in the customer's database, made by the setup SQL, with a password."""
    suffix = uuid.uuid4().hex[:8]
    role, password = f"rowbell_{suffix}", f"old-secret-{suffix}"
    database = urlsplit(customer_db).path.lstrip("/")
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute(datasources.setup_sql(role, password, database, ["public"]))
    yield {"role": role, "password": password, "url": with_credentials(customer_db, role, password)}
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        conn.execute(f'DROP OWNED BY "{role}" CASCADE')
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE "{role}"')


def test_rename_with_an_empty_url_keeps_the_url_and_leaves_the_triggers_alone(
    client, owner, datasource, customer_db
):
    publish_trigger_workflow(datasource)
    ciphertext, oids = stored_ciphertext(datasource), trigger_oids(customer_db)
    signed_in(client, owner)

    response = edit(client, datasource, name="Production DB")

    assert response.status_code == 302 and response["Location"] == f"/datasources/{datasource.pk}/"
    assert flashed(response) == [
        "Saved Production DB. Connected to PostgreSQL " + _version(customer_db) + "."
    ]
    datasource.refresh_from_db()
    assert datasource.name == "Production DB" and datasource.connection_url == customer_db
    assert stored_ciphertext(datasource) == ciphertext  # not even re-encrypted
    assert trigger_oids(customer_db) == oids  # a rename does not touch the customer's tables


def test_rotating_the_password_keeps_the_workflow_listening(
    client, owner, tenant_a, customer_db, rowbell_role, redis_conn
):
    source = DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=rowbell_role["url"])
    workflow = publish_trigger_workflow(source)
    new_password = f"new-secret-{uuid.uuid4().hex[:8]}"
    customer_execute(customer_db, f"ALTER ROLE \"{rowbell_role['role']}\" PASSWORD '{new_password}'")
    new_url = with_credentials(customer_db, rowbell_role["role"], new_password)
    signed_in(client, owner)

    page = client.get(f"/datasources/{source.pk}/edit/").content.decode()
    assert rowbell_role["password"] not in page and source.masked_url in page
    response = edit(client, source, url=new_url)

    assert flashed(response) == [
        f"Saved App DB. Connected to PostgreSQL {_version(customer_db)}.",
        "Reinstalled the triggers of 1 published workflow.",
    ]
    source.refresh_from_db()
    assert source.connection_url == new_url and source.status == DataSource.Status.OK
    assert new_password not in client.get(f"/datasources/{source.pk}/").content.decode()
    # This test server trusts local connections, so the old password would still be accepted: what is
    # checked is that Rowbell now uses the new URL, and the workflow still runs from an insert.
    assert datasources.test_connection(source, watched_tables(source)).ok
    assert trigger_functions(customer_db) == [(f"rowbell_wf_{workflow.pk}_insert", "rowbell.capture_row")]
    customer_execute(customer_db, "INSERT INTO users (email) VALUES ('ada@example.com')")
    Listener().run(until_idle=True)
    assert [run.payload["email"] for run in Run.objects.filter(workflow=workflow)] == ["ada@example.com"]


def test_the_edit_page_never_shows_the_password(client, owner, tenant_a):
    source = DataSource.objects.create(
        tenant=tenant_a, name="App DB", connection_url="postgresql://rowbell:s3cret-pw@127.0.0.1:1/app"
    )
    signed_in(client, owner)

    page = client.get(f"/datasources/{source.pk}/edit/").content.decode()
    # Refused (no name): the new URL just typed is not echoed back either.
    new_url = "postgresql://rowbell:n3w-secret@127.0.0.1:1/app"
    refused = client.post(f"/datasources/{source.pk}/edit/", {"name": "", "connection_url": new_url})

    assert "s3cret-pw" not in page and "postgresql://rowbell:••••••••@127.0.0.1:1/app" in page
    refused_page = refused.content.decode()
    assert refused.status_code == 200 and "This field is required" in refused_page
    assert "s3cret-pw" not in refused_page and "n3w-secret" not in refused_page


def test_a_bad_url_is_refused_and_nothing_changes(client, owner, datasource):
    ciphertext = stored_ciphertext(datasource)
    signed_in(client, owner)

    response = edit(client, datasource, name="Renamed", url="mysql://x/y", notify=True)

    page = response.content.decode()
    assert response.status_code == 200 and "Enter a PostgreSQL URL with a database name" in page
    assert "<h1>Edit App DB</h1>" in page
    datasource.refresh_from_db()
    assert (datasource.name, datasource.notify_enabled) == ("App DB", False)
    assert stored_ciphertext(datasource) == ciphertext


def test_toggling_notify_reinstalls_the_trigger_functions(client, owner, datasource, customer_db):
    workflow = publish_trigger_workflow(datasource)
    publish_query_workflow(datasource)  # uses the source but installs nothing: not counted
    trigger = f"rowbell_wf_{workflow.pk}_insert"
    signed_in(client, owner)

    switched_on = edit(client, datasource, notify=True)

    assert flashed(switched_on)[-1] == "Reinstalled the triggers of 1 published workflow."
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row_notify")]
    datasource.refresh_from_db()
    assert datasource.notify_enabled
    assert (
        "Rows wake the listener with NOTIFY." in client.get(f"/datasources/{datasource.pk}/").content.decode()
    )

    switched_off = edit(client, datasource, notify=False)

    assert flashed(switched_off)[-1] == "Reinstalled the triggers of 1 published workflow."
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row")]


def test_unreachable_database_keeps_the_edit_and_saving_again_reinstalls(
    client, owner, datasource, customer_db, monkeypatch
):
    workflow = publish_trigger_workflow(datasource)
    trigger = f"rowbell_wf_{workflow.pk}_insert"
    nowhere = urlunsplit(urlsplit(customer_db)._replace(netloc=f"postgres@127.0.0.1:{free_port()}"))
    reinstalls = []
    reinstall = views.reinstall_triggers
    monkeypatch.setattr(views, "reinstall_triggers", lambda source: reinstalls.append(1) or reinstall(source))
    signed_in(client, owner)

    response = edit(client, datasource, url=nowhere, notify=True)

    saved, warning = flashed(response)
    assert saved.startswith("Saved App DB. Nothing accepts connections at 127.0.0.1")
    assert warning.startswith("The triggers in the database still use the old setting")
    assert warning.endswith("Save this page again once the database is reachable.")
    datasource.refresh_from_db()
    assert datasource.connection_url == nowhere and datasource.notify_enabled  # the edit is not lost
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row")]
    # The check could not connect, so no reinstall was tried: a firewall that drops packets would
    # otherwise cost one more connect timeout per published workflow in this request.
    assert reinstalls == []

    # Back on the reachable URL: the URL changed, so this reinstalls.
    assert flashed(edit(client, datasource, url=customer_db))[-1] == (
        "Reinstalled the triggers of 1 published workflow."
    )
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row_notify")]

    # Out of date without any change on the page (an old failed save, a change made elsewhere): saving the
    # page unchanged notices it from pg_trigger and reinstalls.
    DataSource.objects.filter(pk=datasource.pk).update(notify_enabled=False)
    datasource.refresh_from_db()
    assert flashed(edit(client, datasource))[-1] == "Reinstalled the triggers of 1 published workflow."
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row")]
    assert len(reinstalls) == 2


def test_a_reinstall_the_database_refuses_keeps_the_edit_and_says_why(
    client, owner, tenant_a, customer_db, rowbell_role
):
    source = DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=rowbell_role["url"])
    workflow = publish_trigger_workflow(source)
    trigger = f"rowbell_wf_{workflow.pk}_insert"
    customer_execute(customer_db, f'REVOKE TRIGGER ON users FROM "{rowbell_role["role"]}"')
    signed_in(client, owner)

    saved, warning = flashed(edit(client, source, notify=True))

    assert saved.startswith("Saved App DB. Connected, but Rowbell's role is missing grants")
    assert warning.startswith(
        "The triggers in the database still use the old setting, because Rowbell could not reinstall them: "
        "Rowbell could not install the trigger on public.users: Permission denied"
    )
    source.refresh_from_db()
    assert source.notify_enabled
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row")]

    customer_execute(customer_db, f'GRANT TRIGGER ON users TO "{rowbell_role["role"]}"')
    assert flashed(edit(client, source))[-1] == "Reinstalled the triggers of 1 published workflow."
    assert trigger_functions(customer_db) == [(trigger, "rowbell.capture_row_notify")]


def test_delete_is_refused_while_published_workflows_use_the_source(client, owner, datasource, customer_db):
    welcome, digest = publish_trigger_workflow(datasource), publish_query_workflow(datasource)
    draft_only = Workflow.objects.create(tenant=datasource.tenant, name="Draft idea")
    Step.objects.create(
        tenant=datasource.tenant,
        version=get_or_create_draft(draft_only),
        kind="database_trigger",
        config={"datasource": datasource.pk, "table": "users"},
    )
    signed_in(client, owner)

    detail = client.get(f"/datasources/{datasource.pk}/").content.decode()
    assert f'<a href="/workflows/{digest.pk}/">Digest</a>' in detail
    assert f'<a href="/workflows/{welcome.pk}/">Welcome</a>' in detail
    assert "Draft idea" not in detail  # a draft installs nothing
    refused = client.post(f"/datasources/{datasource.pk}/delete/")

    assert refused.status_code == 302 and refused["Location"] == f"/datasources/{datasource.pk}/"
    assert flashed(refused) == [
        "App DB is used by published workflows: Digest, Welcome. "
        "Unpublish them or point their steps at another data source first."
    ]
    assert DataSource.objects.filter(pk=datasource.pk).exists()
    assert trigger_functions(customer_db) == [(f"rowbell_wf_{welcome.pk}_insert", "rowbell.capture_row")]

    unpublish(welcome)
    unpublish(digest)
    detail = client.get(f"/datasources/{datasource.pk}/").content.decode()
    assert "No published workflow uses this data source yet." in detail
    deleted = client.post(f"/datasources/{datasource.pk}/delete/")
    assert deleted["Location"] == "/datasources/" and flashed(deleted) == ["Deleted App DB."]
    assert not DataSource.objects.filter(pk=datasource.pk).exists()


def test_published_workflows_using_counts_only_published_versions_of_the_tenant(datasource, tenant_b):
    welcome = publish_trigger_workflow(datasource)
    assert published_workflows_using(datasource) == [welcome]
    # A new draft pointing elsewhere does not count until it is published.
    draft = get_or_create_draft(welcome)
    Step.objects.filter(version=draft).update(config={"datasource": datasource.pk + 1000, "table": "users"})
    assert published_workflows_using(datasource) == [welcome]
    # Another tenant's published step naming the same id is not a use of this tenant's data source.
    other = Workflow.objects.create(tenant=tenant_b, name="Other")
    other_draft = get_or_create_draft(other)
    root = Step.objects.create(tenant=tenant_b, version=other_draft, kind="webhook_trigger", config={})
    Step.objects.create(
        tenant=tenant_b,
        version=other_draft,
        parent=root,
        kind="data_query",
        config={"datasource": datasource.pk, "sql": "SELECT 1 AS id"},
    )
    with pytest.raises(PublishError) as refused:
        publish(other)
    assert list(refused.value.step_errors.values()) == [
        {"datasource": "This data source does not exist (any more): choose another one."}
    ]
    # Published anyway (as a Rowbell before that check allowed), it is still not a use of this tenant's source.
    WorkflowVersion.objects.filter(pk=other_draft.pk).update(state=WorkflowVersion.State.PUBLISHED, number=1)
    Workflow.objects.filter(pk=other.pk).update(published_version=other_draft)
    assert published_workflows_using(datasource) == [welcome]


def _version(url: str) -> str:
    with psycopg.connect(url) as conn:
        number = conn.info.server_version
    return f"{number // 10000}.{number % 10000}"


@pytest.fixture
def other_customer_db(pg_admin_url):
    """A second customer database with the same tables, for a data source that moves."""
    from tests.builder.conftest import CUSTOMER_SCHEMA

    with scratch_database(pg_admin_url) as url:
        customer_execute(url, CUSTOMER_SCHEMA)
        yield url


def test_moving_to_another_database_takes_the_triggers_along(
    client, owner, datasource, customer_db, other_customer_db
):
    workflow = publish_trigger_workflow(datasource)
    trigger = f"rowbell_wf_{workflow.pk}_insert"
    signed_in(client, owner)

    moved = edit(client, datasource, url=other_customer_db)

    assert "Removed 1 trigger from the previous database." in flashed(moved)
    assert trigger_functions(customer_db) == []
    assert trigger_functions(other_customer_db) == [(trigger, "rowbell.capture_row")]


def test_a_previous_database_that_cannot_be_reached_is_reported_with_what_to_do(
    client, owner, datasource, customer_db, other_customer_db, pg_admin_url
):
    workflow = publish_trigger_workflow(datasource)
    old_name = urlsplit(customer_db).path.lstrip("/")
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{old_name}" ALLOW_CONNECTIONS false')
    signed_in(client, owner)
    try:
        moved = edit(client, datasource, url=other_customer_db)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{old_name}" ALLOW_CONNECTIONS true')

    [warning] = [m for m in flashed(moved) if "previous database" in m]
    assert "could not remove its triggers from the previous database" in warning
    assert "is not currently accepting connections. Rowbell tries again each time you save App DB" in warning
    assert "rowbell_wf_" in warning
    trigger = (f"rowbell_wf_{workflow.pk}_insert", "rowbell.capture_row")
    assert trigger_functions(customer_db) == [trigger]
    assert trigger_functions(other_customer_db) == [trigger]
    datasource.refresh_from_db()
    assert datasource.connection_url == other_customer_db  # the move itself is kept
    assert datasource.stale_databases == [customer_db]
    detail = client.get(f"/datasources/{datasource.pk}/").content.decode()
    assert "still installed in a previous database of this data source" in detail
    assert f"<code>{customer_db}</code>" in detail

    # Reachable again: saving the page unchanged finishes the move.
    assert "Removed 1 trigger from the previous database." in flashed(edit(client, datasource))
    assert trigger_functions(customer_db) == []
    assert trigger_functions(other_customer_db) == [trigger]
    datasource.refresh_from_db()
    assert datasource.stale_databases == []
    assert "still installed" not in client.get(f"/datasources/{datasource.pk}/").content.decode()


def test_a_move_through_an_unreachable_database_still_cleans_the_first_one(
    client, owner, datasource, customer_db, other_customer_db
):
    workflow = publish_trigger_workflow(datasource)
    trigger = (f"rowbell_wf_{workflow.pk}_insert", "rowbell.capture_row")
    nowhere = urlunsplit(urlsplit(customer_db)._replace(netloc=f"postgres@127.0.0.1:{free_port()}"))
    signed_in(client, owner)

    edit(client, datasource, url=nowhere)  # a typo in the host: the triggers stay where they work
    assert trigger_functions(customer_db) == [trigger]
    datasource.refresh_from_db()
    assert datasource.stale_databases == [customer_db]

    moved = edit(client, datasource, url=other_customer_db)

    assert "Removed 1 trigger from the previous database." in flashed(moved)
    assert trigger_functions(customer_db) == []
    assert trigger_functions(other_customer_db) == [trigger]
    datasource.refresh_from_db()
    assert datasource.stale_databases == []


def test_moving_back_after_an_unreachable_database_forgets_nothing_and_removes_nothing(
    client, owner, datasource, customer_db
):
    workflow = publish_trigger_workflow(datasource)
    nowhere = urlunsplit(urlsplit(customer_db)._replace(netloc=f"postgres@127.0.0.1:{free_port()}"))
    signed_in(client, owner)

    edit(client, datasource, url=nowhere)
    back = edit(client, datasource, url=customer_db)

    assert not [m for m in flashed(back) if "previous database" in m]
    assert trigger_functions(customer_db) == [(f"rowbell_wf_{workflow.pk}_insert", "rowbell.capture_row")]
    datasource.refresh_from_db()
    assert datasource.stale_databases == []


def test_same_database_ignores_credentials_but_not_host_port_or_name():
    base = "postgresql://rowbell:old@db.example.com:5432/app"
    assert datasources.same_database(base, "postgresql://rowbell:new@db.example.com/app")
    assert not datasources.same_database(base, "postgresql://rowbell:old@db.example.com:5432/other")
    assert not datasources.same_database(base, "postgresql://rowbell:old@db2.example.com:5432/app")
    assert not datasources.same_database(base, "postgresql://rowbell:old@db.example.com:6543/app")
    assert not datasources.same_database(base, "postgresql://[not a url")
