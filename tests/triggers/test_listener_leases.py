"""Several listener processes share the data sources by lease (runs/listener_leases.py): each source is read
by exactly one, the sources split between them, and a killed listener's sources are taken over within
seconds, with every event run once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integrations.models import DataSource
from runs.listener_leases import Leases
from runs.models import ProcessHeartbeat, Run
from tests.support import customer_execute, scratch_database, subprocess_database_url
from tests.triggers.conftest import CUSTOMER_SCHEMA, db_trigger_workflow
from tests.triggers.test_listener import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
SOURCES = 6


def owners() -> Counter:
    return Counter(DataSource.objects.exclude(listener_owner="").values_list("listener_owner", flat=True))


def test_the_fair_share_is_given_back_for_a_new_listener_and_taken_over_after_expiry(tenant_a, settings):
    settings.LISTENER_LEASE_SECONDS = 60
    ids = [
        DataSource.objects.create(tenant=tenant_a, name=f"S{n}", connection_url="postgres://x/y").pk
        for n in range(5)
    ]
    first, second = Leases("first"), Leases("second")
    assert first.hold(ids) == ids  # alone: everything
    assert second.hold(ids) == []  # nothing is free yet, but second now counts as live
    assert first.hold(ids) == ids[:3]  # two live listeners: first keeps its share and gives back two
    assert second.hold(ids) == ids[3:]
    assert first.hold(ids) == ids[:3] and second.hold(ids) == ids[3:]  # stable
    ProcessHeartbeat.objects.filter(name="first").update(beat_at=timezone.now() - timedelta(minutes=5))
    DataSource.objects.filter(listener_owner="first").update(listener_lease_until=None)  # first died
    assert second.hold(ids) == ids  # second alone is live: takes the expired ones
    second.release()
    assert owners() == Counter()


@pytest.mark.slow
def test_two_listener_processes_split_the_sources_and_one_takes_over_when_the_other_is_killed(
    tenant_a, pg_admin_url
):
    with scratch_databases(pg_admin_url, SOURCES) as urls:
        sources = [
            DataSource.objects.create(tenant=tenant_a, name=f"S{n}", connection_url=url)
            for n, url in enumerate(urls)
        ]
        workflows = [db_trigger_workflow(source, name=f"On order {n}") for n, source in enumerate(sources)]
        env = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "DB_CONN_MAX_AGE": "0",
            "LISTENER_LEASE_SECONDS": "4",
            "LISTENER_REFRESH_INTERVAL": "0.5",
        }
        listeners = [
            subprocess.Popen(
                [sys.executable, "manage.py", "listen"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            assert wait_for(lambda: sorted(owners().values()) == [3, 3], timeout=60), owners()
            for url in urls:
                customer_execute(url, "INSERT INTO orders (email) VALUES ('before@x.org')")
            assert wait_for(lambda: Run.objects.count() == SOURCES, timeout=30)

            listeners[0].send_signal(signal.SIGKILL)
            listeners[0].wait(10)
            for url in urls:
                customer_execute(url, "INSERT INTO orders (email) VALUES ('after@x.org')")
            took = wait_for(lambda: Run.objects.count() == 2 * SOURCES, timeout=15)
            assert took, f"{Run.objects.count()} runs 15 s after the kill; owners {owners()}"
            assert list(owners().values()) == [SOURCES]
        finally:
            for process in listeners:
                process.kill()
                process.wait(10)
        for workflow in workflows:
            assert sorted(Run.objects.filter(workflow=workflow).values_list("payload__email", flat=True)) == [
                "after@x.org",
                "before@x.org",
            ]


class scratch_databases:
    """`count` customer databases with the orders table, dropped afterwards."""

    def __init__(self, admin_url: str, count: int):
        self.contexts = [scratch_database(admin_url) for _ in range(count)]

    def __enter__(self) -> list[str]:
        urls = [context.__enter__() for context in self.contexts]
        for url in urls:
            customer_execute(url, CUSTOMER_SCHEMA)
        return urls

    def __exit__(self, *exc) -> None:
        for context in self.contexts:
            context.__exit__(None, None, None)
