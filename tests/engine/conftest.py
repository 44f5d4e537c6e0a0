"""Engine test helpers: real SMTP sink (aiosmtpd), a patchable clock, workflows from nested specs, and
in-process RQ workers in burst mode."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import django_rq
import pytest
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from rq.job import Job

from runs.engine.sweeper import sweep
from tests.support import free_port
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft, publish
from workflows.steps import get_kind


class SinkHandler:
    """Records every accepted message; `script` lists SMTP answers to give DATA before accepting."""

    def __init__(self):
        self.messages: list = []
        self.script: list[str] = []
        self.refuse: dict[str, str] = {}
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds per message, to make a batch slow enough to interrupt

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        with self.lock:
            if self.script:
                return self.script.pop(0)
            msg = message_from_bytes(envelope.content)
            self.messages.append(msg)
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        with self.lock:
            return [m["To"] for m in self.messages]


@pytest.fixture
def smtp(settings):
    handler = SinkHandler()
    port = handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    yield handler
    controller.stop()


class Clock:
    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def travel(self, **delta) -> None:
        self.now += timedelta(**delta)


def promote_scheduled(now: datetime) -> int:
    """RQ's scheduler, but on the test's clock: queue scheduled jobs whose time has come."""
    moved = 0
    for name in ("default", "low"):
        queue = django_rq.get_queue(name)
        registry = queue.scheduled_job_registry
        ids = registry.get_jobs_to_schedule(int(now.timestamp()))
        for job in Job.fetch_many(ids, connection=queue.connection):
            if job is not None:
                queue._enqueue_job(job)
                moved += 1
        for job_id in ids:
            registry.remove(job_id)
    return moved


def work(clock: Clock | None = None, rounds: int = 20) -> None:
    """Run burst workers (and the test-clock scheduler) until the queues stay empty."""
    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    for _ in range(rounds):
        if clock is not None:
            promote_scheduled(clock.now)
        if not any(q.count for q in queues):
            return
        SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def settle(clock: Clock, *, step_seconds: float = 3600, rounds: int = 30) -> None:
    """Work, then travel and sweep, until nothing is left to do (waits and retries come due)."""
    from runs.models import StepExecution

    for _ in range(rounds):
        work(clock)
        if not StepExecution.objects.filter(status__in=StepExecution.OPEN).exists():
            return
        clock.travel(seconds=step_seconds)
        sweep()
    work(clock)


def build_workflow(
    tenant, spec: dict, *, name: str = "Test workflow", sandbox: bool = False, publish_it=True, validate=True
):
    """spec: {"kind": ..., "config": {...}, "name": ..., "children": [spec, ...]} with the trigger at the top;
    a child of a branch names its path with "path".

    `validate=False` stores the configs as given, like a draft saved before a check existed (publishing
    would refuse it: run its draft with `start_run(..., version=workflow.versions.get())`)."""
    workflow = Workflow.objects.create(tenant=tenant, name=name)
    draft = get_or_create_draft(workflow)

    def add(node, parent, position):
        config = node.get("config", {})
        if validate:
            config = get_kind(node["kind"]).validate(config)
        step = Step.objects.create(
            tenant=tenant,
            version=draft,
            parent=parent,
            position=position,
            kind=node["kind"],
            name=node.get("name", ""),
            config=config,
            path=node.get("path", ""),
        )
        for index, child in enumerate(node.get("children", [])):
            add(child, step, index)
        return step

    add(spec, None, 0)
    if publish_it:
        publish(workflow, sandbox=sandbox)
        workflow.refresh_from_db()
    return workflow


def webhook(children=None) -> dict:
    return {"kind": "webhook_trigger", "config": {}, "children": children or []}


def email(to="{{ item.email }}", subject="Hello {{ item.name }}", text="Hi {{ item.name }}", **extra) -> dict:
    children = extra.pop("children", [])
    name = extra.pop("name", "")
    return {
        "kind": "send_email",
        "name": name,
        "config": {"to": to, "subject": subject, "text": text, **extra},
        "children": children,
    }


@pytest.fixture
def clock(transactional_db, redis_conn, monkeypatch) -> Clock:
    """The engine's clock, stopped at a fixed instant that the test moves with `travel`; with what every
    engine test needs besides: real DB commits and a clean Redis."""
    fake = Clock()
    monkeypatch.setattr("integrations.clock.now", fake)
    return fake


def customer_db(url: str, sql: str) -> None:
    """Run setup SQL in the test's customer database (as its owner, not through Rowbell)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def data_source(tenant, url: str):
    from integrations.models import DataSource

    return DataSource.objects.create(tenant=tenant, name="App DB", connection_url=url)


def query(source, sql: str, mode: str = "fanout", children=None, **extra) -> dict:
    return {
        "kind": "data_query",
        "config": {"datasource": source.pk, "sql": sql, "mode": mode, **extra},
        "children": children or [],
    }


def branch(paths: list[dict], children=None, otherwise: bool = False) -> dict:
    """A branch step; each path: {"id", "label", and "expression" or "field"/"operator"/"value"}."""
    cleaned = [{"match": "expression" if "expression" in path else "rule", **path} for path in paths]
    return {
        "kind": "branch",
        "config": {"paths": cleaned, "otherwise": otherwise},
        "children": children or [],
    }


def on_path(path: str, spec: dict) -> dict:
    return {**spec, "path": path}
