"""Every activity template renders whatever shape the items have (#21).

A customer's rows are not ours to choose: no `name` (a `full_name` instead), no `email`, nested objects,
lists, 10,000-character values, unicode, keys with spaces, dots, leading underscores or digits, and
(from an HTTP step's response or a webhook body) bare lists, strings, numbers and null. The run page once
answered 500 for an item without `name` (templates/runs/_step_items.html); this walk opens every page
and partial of the activity area for runs full of such items, and checks that every template under
templates/runs/ was drawn by it, so a template added later is walked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from runs.models import BulkOperation, Delivery, Run, StepExecution
from runs.views.presenting import item_summary
from tests.activity.conftest import add_delivery, add_execution, steps_of
from tests.engine.conftest import branch, build_workflow, email, on_path, query
from tests.support import customer_execute
from workflows.publishing import get_or_create_draft

CUSTOMERS = """
CREATE TABLE customers (id int PRIMARY KEY, email text, full_name text);
INSERT INTO customers VALUES (1, 'grace@example.com', 'Grace Hopper'), (2, NULL, 'Ada ' || repeat('Lovelace ', 40));
"""

SHAPES: dict[str, object] = {
    "no name": {"id": 1, "email": "grace@example.com", "full_name": "Grace Hopper"},
    "no email, no name": {"id": 2, "full_name": "Ada Lovelace"},
    "empty email": {"id": 3, "email": "", "full_name": None},
    "nested": {"profile": {"name": {"first": "Ann"}}, "tags": ["a", {"b": [1, 2]}], "email": {"work": "w@x"}},
    "long": {"bio": "word " * 2000, "name": "N" * 500},
    "unicode": {"名前": "山田太郎", "emoji": "🎉🎉", "rtl": "שלום", "email": "zoë@exämple.com"},
    "odd keys": {"first name": "Ann", "a.b": 1, "_private": 2, "123": "digits", "items": "x", "": "empty"},
    "markup": {"name": "<script>alert(1)</script>", "email": '"><img src=x>'},
    "list": [1, "two", {"three": 3}],
    "text": "just a string",
    "number": 42,
    "boolean": True,
}
ODD_OUTPUTS: list[object] = [
    None,
    {"path": {"not": "text"}, "reason": ["a", "b"]},
    ["x", "y"],
    "plain text",
    {"would_wait_until": "not a time", "items": "many"},
    {"joined_digest": "not a bucket", "items_so_far": "lots"},
    {"joined_digest": {"id": 1}},
    {"joined_digest": 999999},  # no such bucket (or another workspace's)
]
ODD_ATTEMPTS = [{"at": "not a date", "took": "slow", "outcome": "failed", "error": "x" * 1000}, "junk", 7]


@pytest.fixture
def customer_source(tenant_a, tenant_database):
    from integrations.models import DataSource

    customer_execute(tenant_database, CUSTOMERS)
    return DataSource.objects.create(tenant=tenant_a, name="Shop", connection_url=tenant_database)


@pytest.fixture
def shapes_workflow(tenant_a, customer_source):
    """Database trigger on customers → branch (has email → email; otherwise → Slack) · wait · condition ·
    data query · digest · throttle · HTTP call: one step of every kind whose preview has a template."""
    slack = {
        "kind": "slack_message",
        "name": "Tell the team",
        "config": {"webhook_url": "https://hooks.slack.example/T/B/x", "text": "{{ item.full_name }}"},
    }
    spec = {
        "kind": "database_trigger",
        "config": {"datasource": customer_source.pk, "schema": "public", "table": "customers"},
        "children": [
            {
                **branch(
                    [{"id": "p1", "label": "Has an email", "field": "email", "operator": "is_not_empty"}],
                    otherwise=True,
                    children=[on_path("p1", email(name="Welcome")), on_path("otherwise", slack)],
                ),
                "name": "Reachable?",
            },
            {"kind": "wait", "name": "A day", "config": {"mode": "duration", "amount": 1, "unit": "days"}},
            {"kind": "condition", "name": "Has id", "config": {"expression": "item.id is defined"}},
            {**query(customer_source, "SELECT id, full_name FROM customers", mode="fanout"), "name": "All"},
            {"kind": "digest", "name": "Per email", "config": {"key": "{{ item.email }}", "amount": 1}},
            {
                "kind": "throttle",
                "name": "3 an hour",
                "config": {"limit": 3, "amount": 1, "unit": "hours", "key": "{{ item.email }}"},
            },
            {
                "kind": "http_request",
                "name": "CRM",
                "config": {"method": "POST", "url": "https://crm.example/hook", "body": "{}"},
            },
        ],
    }
    return build_workflow(tenant_a, spec, name="Shapes")


def shaped_run(workflow, *, is_test: bool) -> Run:
    """A failed run whose every step has an execution per item shape, with odd outputs, odd attempt logs,
    and messages of every channel and state, one uncertain and one held among them."""
    run = Run.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        version=workflow.published_version,
        event_key="shapes-test" if is_test else "shapes",
        status=Run.Status.FAILED,
        is_test=is_test,
        payload=SHAPES["no name"],
    )
    channels = {"Welcome": "email", "Tell the team": "slack", "CRM": "http", "All": "sms"}
    states = list(Delivery.Status.values)
    for step in steps_of(workflow).values():
        for n, (shape, item) in enumerate(SHAPES.items()):
            key = "0" if n == 0 else f"0/{shape}"
            execution = add_execution(
                run,
                step,
                key,
                status="failed" if n % 3 == 0 else "succeeded",
                input=item,
                output=ODD_OUTPUTS[n % len(ODD_OUTPUTS)],
                attempts=3,
                error="Nothing answers at 127.0.0.1:9 ([Errno 111] Connection refused)" if n % 3 == 0 else "",
                attempt_log=ODD_ATTEMPTS,
            )
            channel = channels.get(step.name)
            if channel:
                delivery = add_delivery(execution, f"{shape}@example.com", status=states[n % len(states)])
                Delivery.objects.filter(pk=delivery.pk).update(
                    channel=channel,
                    error="odd" if n % 2 else "",
                    content={
                        "to": item,
                        "subject": {"not": "text"},
                        "text": item,
                        "cc": "not-a-list",
                        "headers": [1, 2],
                        "method": "POST",
                        "url": "https://crm.example/hook",
                        "body": item,
                        "skipped": "unsubscribed" if n == 4 else "",
                    },
                )
    return run


def runs_templates() -> set[str]:
    root = Path(settings.BASE_DIR) / "templates"
    return {str(path.relative_to(root)) for path in (root / "runs").rglob("*.html")}


def test_the_item_summary_names_an_item_of_any_shape():
    assert item_summary(SHAPES["no name"]) == "grace@example.com"
    assert item_summary(SHAPES["no email, no name"]) == "Ada Lovelace"  # full_name names someone
    assert item_summary(SHAPES["empty email"]) == "id: 3"
    assert item_summary(SHAPES["nested"]) == ""  # nothing plain to show
    assert item_summary(SHAPES["long"]) == "N" * 79 + "…"
    assert item_summary(SHAPES["unicode"]) == "zoë@exämple.com"
    assert item_summary(SHAPES["odd keys"]) == "Ann"
    assert item_summary(SHAPES["list"]) == "a list of 3"
    assert item_summary("just a string") == "just a string" and item_summary(None) == ""


def test_every_activity_template_renders_items_of_every_shape(
    owner_client, tenant_a, shapes_workflow, settings, django_user_model
):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True  # a template error fails the test with its traceback
    run, test_run = shaped_run(shapes_workflow, is_test=False), shaped_run(shapes_workflow, is_test=True)
    drawn: set[str] = set()

    def get(url: str, params=None, **headers) -> str:
        response = owner_client.get(url, params or {}, **headers)
        assert response.status_code in (200, 204), (url, params, response.status_code)
        drawn.update(t.name for t in response.templates if t.name)
        return response.content.decode()

    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "run-live"}
    for each in (run, test_run):
        url = reverse("runs:run_detail", args=[each.pk])
        page = get(url)
        assert "Grace Hopper" not in page or "<script>alert(1)</script>" not in page
        for step in steps_of(shapes_workflow).values():
            get(url, {"step": step.pk})
            get(url, {"step": step.pk, "status": "failed"}, **htmx)
            get(url, {"step": step.pk, "item": "0/odd keys", "after": "0/list"})
    side = get(reverse("runs:run_detail", args=[run.pk]), {"step": steps_of(shapes_workflow)["Welcome"].pk})
    assert "Ada Lovelace" in side and "id: 3" in side  # each item says whom it is about
    assert "<script>alert(1)</script>" not in side  # escaped
    get(reverse("runs:run_list"))
    get(reverse("runs:workflow_runs", args=[shapes_workflow.pk]))
    get(reverse("runs:message_list"))
    get(reverse("runs:message_list"), {"status": "held"})
    get(reverse("runs:workflow_messages", args=[shapes_workflow.pk]))
    get(reverse("runs:workflow_tracking_counts", args=[shapes_workflow.pk]))
    for delivery in Delivery.objects.filter(run__in=[run, test_run]):
        get(reverse("runs:message_detail", args=[delivery.pk]))
    test_page = get(reverse("runs:test_workflow", args=[shapes_workflow.pk]))
    assert "Grace Hopper" in test_page  # a live row of the customers table, as a table of columns
    for step in steps_of(shapes_workflow).values():
        preview = reverse("runs:step_preview", args=[step.pk])
        get(preview)
        for item in SHAPES.values():
            if isinstance(item, dict):
                get(preview, {"item": json.dumps(item)})
                get(preview, {"item": json.dumps(item)}, HTTP_HX_REQUEST="true")
    # Bulk actions: the dialog, its count (a POST), an operation whose filter holds odd text, its progress.
    operation = BulkOperation.objects.create(
        tenant=tenant_a,
        name="Retry <script>alert(1)</script>",
        action="retry",
        filter_digest="x",
        filters={"error": "<script>alert(1)</script>", "step": None, "workflow": shapes_workflow.pk},
        counted={"executions": 3},
        total=3,
    )
    get(reverse("runs:bulk_dialog"), {"workflow": shapes_workflow.pk, "date_from": "not a date"})
    counted = owner_client.post(
        reverse("runs:bulk_count"), {"action": "retry", "workflow": shapes_workflow.pk, "token": "t"}
    )
    drawn.update(t.name for t in counted.templates if t.name)
    assert "already sent" in counted.content.decode()
    assert "<script>alert(1)</script>" not in get(reverse("runs:bulk_list"))
    assert "<script>alert(1)</script>" not in get(reverse("runs:bulk_detail", args=[operation.pk]))
    get(reverse("runs:bulk_detail", args=[operation.pk]), HTTP_HX_REQUEST="true")
    # The publish dialog of a draft (its preview, and the note on open digest buckets: none here).
    get_or_create_draft(shapes_workflow)
    get(reverse("runs:publish_dialog", args=[shapes_workflow.pk]))
    operator = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    owner_client.force_login(operator)
    get(reverse("admin:runs_run_changelist"))
    get(reverse("admin:runs_stepexecution_changelist"))
    get(reverse("admin:runs_bulkoperation_changelist"))
    get(reverse("admin:runs_bulkoperation_new"))
    missing = runs_templates() - drawn
    assert not missing, f"templates the walk never drew: {sorted(missing)}"
    assert StepExecution.objects.filter(run=run).count() == len(SHAPES) * len(steps_of(shapes_workflow))


def test_a_server_error_answers_htmx_with_a_fragment_and_an_error_id_that_is_logged(
    owner_client, shapes_workflow, monkeypatch, caplog
):
    """The run page's htmx answers must never swap a whole error page in: a fragment, the id in a header
    (static/js/rowbell.js shows it in place), and the same id in the log with the traceback."""
    run = shaped_run(shapes_workflow, is_test=False)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the side panel")

    monkeypatch.setattr("runs.views.run_detail.side_panel", broken)
    owner_client.raise_request_exception = False
    url = reverse("runs:run_detail", args=[run.pk])
    answer = owner_client.get(url, {"step": 1}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    error_id = answer["X-Error-Id"]
    body = answer.content.decode()
    assert answer.status_code == 500 and len(error_id) == 8
    assert body.startswith('<p class="load-error"') and "<html" not in body and error_id in body
    logged = [r for r in caplog.records if r.name == "rowbell.errors"]
    assert error_id in logged[-1].getMessage() and "a bug in the side panel" in str(logged[-1].exc_info[1])
    page = owner_client.get(url)  # a whole page: ours, with the id
    assert page.status_code == 500 and page["X-Error-Id"] in page.content.decode()
