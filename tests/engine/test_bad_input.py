"""Bad input gets a clear error that names what to fix, and changes nothing."""

from __future__ import annotations

import pytest

from integrations.templating import TemplateError, render, validate_template
from runs.engine import start_run
from runs.models import StepExecution
from tests.engine.conftest import build_workflow, customer_db, data_source, email, query, webhook, work
from workflows.steps import ConfigError, get_kind


@pytest.mark.parametrize(
    ("kind", "config", "field", "words"),
    [
        ("send_email", {"subject": "Hi", "text": "x"}, "to", "required"),
        (
            "send_email",
            {"to": "{{ item.email }}", "subject": "Hi {{ item.name ", "text": "x"},
            "subject",
            "line 1",
        ),
        ("send_email", {"to": "a@b.co", "subject": "Hi"}, "text", "text body"),
        (
            "send_email",
            {"to": "a@b.co", "subject": "Hi", "text": "x", "max_attempts": 0},
            "max_attempts",
            "1 to 50",
        ),
        ("wait", {"mode": "duration", "amount": -1, "unit": "days"}, "amount", "zero or more"),
        ("wait", {"mode": "duration", "amount": 3, "unit": "weeks"}, "unit", "minutes, hours or days"),
        ("wait", {"mode": "until"}, "field", "trial_ends_at"),
        ("data_query", {"sql": "SELECT 1"}, "datasource", "data source"),
        ("data_query", {"datasource": 1}, "sql", "SELECT"),
        ("data_query", {"datasource": 1, "sql": "SELECT {{ item. }}"}, "sql", "placeholder"),
        ("data_query", {"datasource": 1, "sql": "SELECT 1", "mode": "many"}, "mode", "fanout"),
        ("condition", {"expression": ""}, "expression", "item.plan"),
        ("condition", {"expression": "item.a =="}, "expression", "Expression error"),
        ("slack_message", {"text": "hi"}, "webhook_url", "webhook URL"),
        ("http_request", {"url": "ftp://x", "method": "POST"}, "url", "http"),
        ("http_request", {"url": "https://x.io", "method": "FETCH"}, "method", "POST"),
        ("http_request", {"url": "https://x.io", "headers": ["a"]}, "headers", "JSON object"),
    ],
)
def test_config_errors_name_the_field(kind, config, field, words):
    with pytest.raises(ConfigError) as caught:
        get_kind(kind).validate(config)
    assert field in caught.value.errors, caught.value.errors
    assert words.lower() in caught.value.errors[field].lower()


def test_slack_webhook_is_stored_encrypted():
    cleaned = get_kind("slack_message").validate(
        {"webhook_url": "https://hooks.slack.com/services/T/B/secret", "text": "hi"}
    )
    assert "webhook_url" not in cleaned
    assert "secret" not in cleaned["webhook_url_encrypted"]
    assert get_kind("slack_message").validate(cleaned) == cleaned


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO users (id, email) VALUES (2, 'x@y.z')",
        "UPDATE users SET email = 'x'",
        "DELETE FROM users",
        "DROP TABLE users",
        "commit; insert into users (id, email) values (3, 'x@y.z')",
        "SELECT 1; DELETE FROM users",
        "WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone",
        "SELECT * FROM users WHERE id IN (WITH x AS (INSERT INTO users VALUES (4, 'a') RETURNING id) SELECT id FROM x)",
    ],
)
def test_a_data_query_that_writes_fails_clearly_and_changes_nothing(
    clock, smtp, tenant_a, tenant_database, sql
):
    customer_db(
        tenant_database,
        "CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'a@b.co')",
    )
    step = query(data_source(tenant_a, tenant_database), sql, children=[email()])
    with pytest.raises(ConfigError, match=r"read-only|one SELECT"):
        get_kind("data_query").validate(step["config"])
    # A draft saved before the check existed: the engine refuses it too.
    workflow = build_workflow(tenant_a, webhook([step]), validate=False, publish_it=False)
    run = start_run(workflow, {}, "evt", version=workflow.versions.get())
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="data_query")
    assert execution.status == "failed"
    assert "read-only" in execution.error or "one SELECT" in execution.error, execution.error
    import psycopg

    with psycopg.connect(tenant_database) as conn:
        assert conn.execute("SELECT id, email FROM users").fetchall() == [(1, "a@b.co")]
    assert smtp.recipients() == []


def test_an_item_value_reaches_the_query_as_data(clock, smtp, tenant_a, tenant_database):
    customer_db(
        tenant_database,
        "CREATE TABLE users (id int PRIMARY KEY, email text, name text); "
        "INSERT INTO users VALUES (1, 'a@b.co', $$'; DROP TABLE users; --$$)",
    )
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    source,
                    "SELECT id, email, name FROM users WHERE name = {{ item.name }}",
                    children=[email(text="x")],
                )
            ]
        ),
    )
    start_run(workflow, {"name": "'; DROP TABLE users; --"}, "evt")
    work(clock)
    assert smtp.recipients() == ["a@b.co"]
    import psycopg

    with psycopg.connect(tenant_database) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ item.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_escapes(template):
    with pytest.raises(TemplateError, match=r"Not allowed|undefined"):
        render(template, {"item": {}})


def test_huge_output_and_long_loops_are_stopped(settings):
    settings.TEMPLATE_MAX_SECONDS = 0.5
    with pytest.raises(TemplateError, match="over the limit"):
        render("{{ 'a' * 10**8 }}", {})
    with pytest.raises(TemplateError, match="more than"):
        render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", {})
    with pytest.raises(TemplateError, match=r"longer than 0\.5 s"):
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})


def test_template_errors_give_the_line():
    problem = validate_template("Hello\n{{ item.name }\n")
    assert problem is not None and problem.line == 2


def test_an_unknown_variable_fails_the_execution_with_its_name(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email(subject="Hi {{ item.first_name }}")]))
    run = start_run(workflow, {"email": "a@b.co"}, "evt")
    work(clock)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    assert send.status == "failed" and send.attempts == 1
    assert "Subject" in send.error and "first_name" in send.error
    assert smtp.recipients() == []


def test_header_values_lose_cr_and_lf(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email(subject="Hi {{ item.name }}")]))
    start_run(workflow, {"email": "a@b.co", "name": "Ann\r\nBcc: victim@example.com"}, "evt")
    work(clock)
    assert smtp.messages[0]["Subject"] == "Hi Ann  Bcc: victim@example.com"
    assert smtp.messages[0]["Bcc"] is None
