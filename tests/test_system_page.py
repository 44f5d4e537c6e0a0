"""The System page says in words what /metrics knows: processes alive or gone, queues, the oldest due
execution, the listener per data source; empty states say what to start; only staff see it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright
from rq import Queue

from integrations.models import DataSource
from runs.engine import metrics as engine_metrics
from runs.models import ProcessHeartbeat, StepExecution
from tests.activity.conftest import add_execution, make_run, steps_of
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import SCREENSHOTS, launch_chromium, unreachable_redis


@pytest.fixture
def staff(owner):
    owner.is_staff = True
    owner.save()
    client = Client()
    client.force_login(owner)
    return client


def beat(kind: str, name: str, age: float, host: str = "host-a", pid: int = 42, stopped: float | None = None):
    now = timezone.now()
    return ProcessHeartbeat.objects.create(
        kind=kind,
        name=name,
        host=host,
        pid=pid,
        started_at=now - timedelta(hours=1),
        beat_at=now - timedelta(seconds=age),
        stopped_at=now - timedelta(seconds=stopped) if stopped is not None else None,
    )


def seed(tenant_a, redis_conn) -> DataSource:
    beat("worker", "worker-ab12", 1)
    beat("worker", "worker-cd34", 120, host="host-b", pid=7)
    beat("scheduler", "scheduler-1", 2)
    beat("cron", "cron-1", 1, stopped=600)
    beat("listener", "listener-1", 3)
    source = DataSource.objects.create(
        tenant=tenant_a,
        name="App DB",
        connection_url="postgresql://app@db.example.com/app",
        listener_status=DataSource.ListenerStatus.LISTENING,
        listener_seen_at=timezone.now() - timedelta(seconds=2),
    )
    DataSource.objects.create(tenant=tenant_a, name="Warehouse", connection_url="postgresql://w@x/w")
    engine_metrics.record_listener_lag(source.pk, 4.25)
    queue = Queue("default", connection=redis_conn)
    for n in range(3):
        queue.enqueue("builtins.print", n)
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Onboarding")
    run = make_run(workflow, "due")
    add_execution(
        run,
        steps_of(workflow)["Welcome"],
        "0",
        status=StepExecution.Status.PENDING,
        next_attempt_at=timezone.now() - timedelta(seconds=40),
    )
    return source


@pytest.mark.django_db
def test_only_staff_see_the_system_page(owner_client, client, owner):
    assert owner_client.get("/system/").status_code == 404  # a tenant's owner is not the operator
    assert client.get("/system/").status_code == 302  # signed out: to the sign-in page
    assert "/system/" not in owner_client.get("/").content.decode()
    owner.is_staff = True
    owner.save()
    assert owner_client.get("/system/").status_code == 200
    assert 'href="/system/"' in owner_client.get("/").content.decode()


@pytest.mark.django_db
def test_empty_states_say_what_to_start(staff, redis_conn):
    html = staff.get("/system/").content.decode()
    for kind, command in [
        ("worker", "manage.py rqworker default low --worker-class runs.worker.EngineWorker"),
        ("scheduler", "manage.py scheduler default low"),
        ("cron", "manage.py cron config/cron.py"),
        ("listener", "manage.py listen"),
    ]:
        assert f"No {kind} has reported" in html and f"<code>{command}</code>" in html
    assert "No execution is waiting to be claimed" in html
    assert "No data source is being listened to" in html
    assert "default</strong>: 0 jobs queued" in html


@pytest.mark.django_db
def test_processes_queues_due_work_and_listener_in_words(staff, tenant_a, redis_conn):
    source = seed(tenant_a, redis_conn)
    html = staff.get("/system/").content.decode()
    assert "worker worker-ab12 on host-a (pid 42): heartbeat 1 s ago" in html
    assert "worker worker-cd34 on host-b (pid 7): no heartbeat for 2 min; presumed gone" in html
    assert "cron cron-1 on host-a (pid 42): stopped cleanly 10 min ago" in html
    assert "No worker has reported" not in html  # one worker is alive
    assert "No cron has reported alive" in html  # the only cron stopped: start one
    assert "default</strong>: 3 jobs queued" in html
    # Due 40 s before the test's clock; PostgreSQL's now() is the test transaction's start, a bit earlier.
    waited = re.search(r"The oldest due execution has waited <strong>(\d+) s</strong> to be claimed", html)
    assert waited and 30 <= int(waited.group(1)) <= 45
    row = html[html.index(f'data-source="{source.pk}"') :]
    assert "Listening; last polled 2 s ago; the oldest waiting event is 4.2 s old" in row
    assert "1 other data source has no published database trigger" in html


@pytest.mark.django_db
def test_redis_away_is_said_in_place(staff, tenant_a, redis_conn, monkeypatch):
    beat("worker", "worker-ab12", 1)
    monkeypatch.setattr(
        "runs.engine.enqueue.redis_connection",
        lambda: unreachable_redis(socket_timeout=1),
    )
    response = staff.get("/system/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Could not read Redis" in html
    assert "worker worker-ab12 on host-a (pid 42): heartbeat 1 s ago" in html  # the rest still shows


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_system_page_at_1366x768(live_server, owner, tenant_a, redis_conn, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    seed(tenant_a, redis_conn)
    owner.is_staff = True
    owner.save()
    client = Client()
    client.force_login(owner)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        page.get_by_role("link", name="System").click()
        expect(page.locator("h1")).to_have_text("System")
        expect(page.locator('#processes li[data-state="alive"]')).to_have_count(3)
        expect(page.locator('#processes li[data-state="gone"]')).to_contain_text("presumed gone")
        expect(page.locator('[data-queue="default"]')).to_contain_text("3 jobs queued")
        expect(page.locator("#listener tbody tr")).to_contain_text("last polled")
        page.screenshot(path=str(SCREENSHOTS / "system-page.png"), full_page=True)
        browser.close()
        connections.close_all()
    connections.close_all()
