"""Pieces the fan-out benchmark runs inside RQ workers (importable by `manage.py rqworker`)."""

from __future__ import annotations

from django.core.mail import send_mail
from django.db import connection
from jinja2 import Environment

from runs.worker import EngineWorker

STATEMENTS_KEY = "bench:statements"
# Of those, the statements on the digest's own tables (joins and releases: benchmarks/digest.py).
DIGEST_STATEMENTS_KEY = "bench:statements:digest"
_env = Environment(autoescape=False)
_subject = _env.from_string("Hello {{ item.name }}")
_text = _env.from_string("Hi {{ item.name }}, there is a new comment on post {{ item.post_id }}.")


class CountingWorker(EngineWorker):
    """A forking RQ worker that counts the SQL statements its jobs send (in the work horse), and apart
    those on the digest's tables."""

    def perform_job(self, job, queue):
        count = digest = 0

        def counter(execute, sql, params, many, context):
            nonlocal count, digest
            count += 1
            digest += "runs_digest" in sql
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            result = super().perform_job(job, queue)
        self.connection.incrby(STATEMENTS_KEY, count)
        self.connection.incrby(DIGEST_STATEMENTS_KEY, digest)
        return result


def naive_send(item: dict) -> None:
    """The baseline: one plain job per recipient that renders and sends with send_mail."""
    send_mail(_subject.render(item=item), _text.render(item=item), None, [item["email"]])


def publish_fanout_workflow(customer_url: str, name: str, sql: str, send_kind: str, send_config: dict):
    """A new tenant's published workflow: webhook trigger → fan-out query over the customer database →
    one send step per row."""
    import uuid

    from integrations.models import DataSource
    from tenants.models import Tenant
    from workflows.models import Step, Workflow
    from workflows.publishing import get_or_create_draft, publish
    from workflows.steps import get_kind

    tenant = Tenant.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
    source = DataSource.objects.create(tenant=tenant, name="customer", connection_url=customer_url)
    workflow = Workflow.objects.create(tenant=tenant, name=name)
    draft = get_or_create_draft(workflow)

    def step(kind, parent, config):
        return Step.objects.create(
            tenant=tenant, version=draft, parent=parent, kind=kind, config=get_kind(kind).validate(config)
        )

    root = step("webhook_trigger", None, {})
    query = step("data_query", root, {"datasource": source.pk, "sql": sql, "mode": "fanout"})
    step(send_kind, query, send_config)
    publish(workflow)
    workflow.refresh_from_db()
    return workflow
