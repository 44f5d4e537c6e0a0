"""Deleting a data source while a workflow on it is being published: one of them must see the other.

Each test stops one side halfway with a real lock (Rowbell's install lock in the customer's database, or a
row lock in Rowbell's), starts the other side in a thread, and checks it waits and then does the right thing.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from integrations.models import DataSource
from tests.support import signed_in, subprocess_database_url
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft, publish
from workflows.steps.base import PublishError

pytestmark = pytest.mark.django_db(transaction=True)


def trigger_draft(source: DataSource) -> Workflow:
    workflow = Workflow.objects.create(tenant=source.tenant, name="Welcome")
    config = {"datasource": source.pk, "schema": "public", "table": "users", "operations": ["insert"]}
    Step.objects.create(
        tenant=source.tenant, version=get_or_create_draft(workflow), kind="database_trigger", config=config
    )
    return workflow


def in_thread(action) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = action()
        except Exception as exc:  # the assertions look at it
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waits_on_lock(url: str, query_like: str, timeout: float = 10.0) -> bool:
    """Whether a backend of the database at `url` is waiting for a lock while running `query_like`."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                (query_like,),
            ).fetchone()[0]
            if waiting:
                return True
            time.sleep(0.02)
    return False


@contextmanager
def install_paused(customer_url: str):
    """Hold the lock trigger installs take in the customer's database, so a publish stops inside it."""
    with psycopg.connect(customer_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('rowbell.install'))")
        yield


def test_a_delete_waits_for_a_publish_in_flight_and_then_refuses(client, owner, datasource, customer_db):
    workflow = trigger_draft(datasource)
    signed_in(client, owner)
    with install_paused(customer_db):
        publishing, published = in_thread(lambda: publish(Workflow.objects.get(pk=workflow.pk)))
        assert waits_on_lock(customer_db, "%pg_advisory_xact_lock%"), "the publish never reached the install"
        deleting, deleted = in_thread(lambda: client.post(f"/datasources/{datasource.pk}/delete/"))
        delete_waited = waits_on_lock(subprocess_database_url(), "%FOR UPDATE%", timeout=3)
    publishing.join(30)
    deleting.join(30)

    assert delete_waited, "the delete did not wait for the publish that uses the data source"
    assert "error" not in published, published
    assert deleted["result"]["Location"] == f"/datasources/{datasource.pk}/"
    assert DataSource.objects.filter(pk=datasource.pk).exists()
    assert Workflow.objects.get(pk=workflow.pk).published_version_id is not None


def test_a_publish_waits_for_a_delete_in_flight_and_then_names_the_missing_source(datasource, customer_db):
    workflow = trigger_draft(datasource)
    root = get_or_create_draft(workflow).root_step()
    with psycopg.connect(subprocess_database_url()) as deleter:
        table = DataSource._meta.db_table
        deleter.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", (datasource.pk,))
        publishing, published = in_thread(lambda: publish(Workflow.objects.get(pk=workflow.pk)))
        publish_waited = waits_on_lock(subprocess_database_url(), "%FOR KEY SHARE%", timeout=3)
        deleter.execute(f"DELETE FROM {table} WHERE id = %s", (datasource.pk,))
        deleter.commit()
    publishing.join(30)

    assert publish_waited, "the publish did not wait for the delete of its data source"
    assert isinstance(published.get("error"), PublishError), published
    assert published["error"].step_errors == {
        root.pk: {"datasource": "This data source does not exist (any more): choose another one."}
    }
    assert Workflow.objects.get(pk=workflow.pk).published_version_id is None
    with psycopg.connect(customer_db, autocommit=True) as customer:
        installed = customer.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rowbell%'")
        assert installed.fetchone()[0] == 0
