"""Tenant-written SQL reaches a customer's database only as one read-only SELECT with a time limit.

The customer database here is connected as the `postgres` superuser: the worst case a self-hoster can
configure. Every path that sends a tenant's SQL gets the same corpus of writing SQL as a MEMBER (the
builder's describe check on save, the step preview, the test page, the engine's run on real RQ burst
workers), and each must answer with a clear error and change nothing: rows, sequences, large objects,
files, roles, settings, other sessions.
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import psycopg
import pytest

from integrations.models import DataSource
from integrations.query import QueryError, connect_for_tenant_sql, fetch_rows, stream_rows
from integrations.sql_guard import UnsafeQuery, check_select
from runs.engine import start_run
from runs.models import StepExecution
from tests.engine.conftest import build_workflow, clock, query, webhook, work  # noqa: F401 (fixtures)
from tests.support import customer_execute
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft

CUSTOMER_SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL, full_name text);
INSERT INTO app.users (email, full_name) VALUES ('ada@example.com', 'Ada'), ('bob@example.com', 'Bob');
CREATE PROCEDURE app.add_user(e text) LANGUAGE sql AS $$ INSERT INTO app.users (email) VALUES (e) $$;
-- A function of the customer's that writes: the parser cannot know, the read-only transaction stops it.
CREATE FUNCTION app.sneaky() RETURNS int LANGUAGE sql AS
  $$ INSERT INTO app.users (email) VALUES ('fn@pwn') RETURNING 1 $$;
"""

# The exact text from the report: it closes the describe wrapper's subquery, commits, inserts, and
# reopens a subquery so that the wrapper's tail still parses.
REPORTED = (
    "select 1 as id) q; commit; insert into app.users (email, full_name) values ('x@pwn','p'); "
    "select * from (select 1 as id"
)


def victim(tag: str) -> str:
    """application_name of the customer session the corpus tries to kill: unique to the test, since
    pg_stat_activity is server-wide and another test (or xdist worker) has a victim of its own."""
    return f"rowbell-victim-{tag}"


def corpus(tag: str, database: str) -> list[str]:
    """Writing SQL a tenant might type; `tag` makes the files and roles it names unique to this test."""
    insert = "insert into app.users (email) values ('{}@pwn')"
    return [
        REPORTED,
        "select 1 as id) q; rollback; " + insert.format("rb") + "; select * from (select 1 as id",
        "select 1 as id) q; set transaction read write; "
        + insert.format("rw")
        + "; select * from (select 1 as id",
        "select 1 as id; " + insert.format("multi"),
        "commit; " + insert.format("commit"),
        "rollback; " + insert.format("rollback"),
        "set transaction read write; " + insert.format("settx"),
        insert.format("plain") + " returning id",
        "update app.users set email = 'upd@pwn'",
        "delete from app.users",
        "truncate app.users",
        "drop table app.users",
        f"with x as ({insert.format('cte')} returning id) select id from x",
        f"select id from app.users where id in (with x as ({insert.format('nested')} returning id) select id from x)",
        "with gone as (delete from app.users returning id) select id from gone",
        "select * into app.copied from app.users",
        "select id from app.users for update",
        "set role postgres",
        "set session authorization default",
        f"create role rowbell_pwned_{tag} superuser login",
        f"copy (select 1) to program 'touch /tmp/rowbell-pwned-{tag}-copy'",
        "copy app.users from program 'echo 9,x@pwn,p'",
        f"select lo_export(lo_from_bytea(0, 'pwn'), '/tmp/rowbell-pwned-{tag}-lo') as id",
        "select lo_from_bytea(0, 'pwn') as id",
        "call app.add_user('call@pwn')",
        "do $$ begin " + insert.format("do") + "; end $$",
        "select set_config('default_transaction_read_only', 'off', false) as id",
        "select 1 as id, set_config('statement_timeout', '0', false)",
        f"select pg_terminate_backend(pid) as id from pg_stat_activity where application_name = '{victim(tag)}'",
        f"select pg_cancel_backend(pid) as id from pg_stat_activity where application_name = '{victim(tag)}'",
        "select pg_advisory_lock(42) as id",
        "select pg_read_file('/etc/hostname') as id",
        "select * from pg_ls_dir('.') as id",
        "select query_to_xml('"
        + insert.format("xml").replace("'", "''")
        + " returning 1', true, true, '') as id",
        "explain analyze " + insert.format("explain"),
        f"alter database \"{database}\" set work_mem = '64kB'",
        "listen rowbell_events",
        *SERVER_REFUSES,
    ]


# Plain SELECTs the parser has no reason to refuse: the READ ONLY transaction stops them when they run
# (describing them with LIMIT 0 runs nothing, so saving them shows no error and changes nothing).
SERVER_REFUSES = [
    "select app.sneaky() as id",  # the customer's own function that writes
    "select nextval('app.users_id_seq') as id",  # sequences
]


def state(url: str, tag: str) -> dict:
    """Everything the corpus could change, read as the owner outside Rowbell."""
    with psycopg.connect(url, autocommit=True) as conn:
        one = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
        return {
            "users": one("SELECT id, email, full_name FROM app.users ORDER BY id"),
            "sequence": one("SELECT last_value, is_called FROM app.users_id_seq"),
            "tables": one("SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace ORDER BY 1"),
            "large_objects": one("SELECT count(*) FROM pg_largeobject_metadata"),
            "roles": one(f"SELECT rolname FROM pg_roles WHERE rolname LIKE 'rowbell_pwned_{tag}%'"),
            "role_settings": one(
                "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting "
                "WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "OR setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY 1, 2"
            ),
            "files": sorted(str(p) for p in Path("/tmp").glob(f"rowbell-pwned-{tag}*")),
            "victim_alive": one(
                f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{victim(tag)}'"
            ),
            "advisory_locks": one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
        }


CLEAR = ("read-only", "one SELECT", "is not allowed", "SQL error")


def assert_clear(message: str, sql: str) -> None:
    assert any(words in message for words in CLEAR), f"{sql!r} answered {message!r}"


@pytest.fixture
def customer(tenant_database, tag):
    customer_execute(tenant_database, CUSTOMER_SCHEMA)
    # Another session on the customer's database, which pg_terminate_backend / pg_cancel_backend aim at.
    session = psycopg.connect(tenant_database, autocommit=True, application_name=victim(tag))
    yield tenant_database
    session.execute("SELECT 1")  # still connected: nothing terminated it
    session.close()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(params=["direct", "pooler"])
def customer_url(request, customer) -> str:
    """The URL Rowbell is given: the customer's database itself, or the same database through PgBouncer
    in transaction mode with its default settings (tests/pooler.py), where no session state survives a
    transaction. Every test of this module runs both ways; `state` always reads the database directly."""
    if request.param == "direct":
        return customer
    return request.getfixturevalue("pooler").url_for(customer)


@pytest.fixture
def source(tenant_a, customer_url):
    return DataSource.objects.create(
        tenant=tenant_a, name="App DB (as postgres)", connection_url=customer_url
    )


def draft_query_step(tenant, source, sql="SELECT id, email FROM app.users") -> tuple[Workflow, Step]:
    workflow = Workflow.objects.create(tenant=tenant, name="Digest")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", config={})
    step = Step.objects.create(
        tenant=tenant,
        version=draft,
        parent=root,
        kind="data_query",
        config={"datasource": source.pk, "sql": sql, "mode": "fanout"},
    )
    return workflow, step


def save_sql(client, workflow: Workflow, step: Step, sql: str) -> str:
    revision = WorkflowVersion.objects.get(pk=step.version_id).revision
    response = client.post(
        f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
        {
            "name": step.name,
            "revision": revision,
            "config-sql": sql,
            "config-datasource": step.config["datasource"],
        },
    )
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def error_in(page: str, marker: str) -> str:
    """The text of the element holding `marker` (the SQL field's error, the preview's error)."""
    start = page.find(marker)
    assert start != -1, page[:2000]
    return page[page.find(">", start) + 1 : page.find("</", start)]


@pytest.mark.django_db
def test_the_reported_describe_injection_writes_nothing(member_client, tenant_a, source, customer, tag):
    before = state(customer, tag)
    workflow, step = draft_query_step(tenant_a, source)
    page = save_sql(member_client, workflow, step, REPORTED)
    assert state(customer, tag) == before
    assert "SQL error: syntax error" in page and "one SELECT" in page


@pytest.mark.django_db
def test_builder_save_preview_and_test_page_refuse_the_corpus(member_client, tenant_a, source, customer, tag):
    before = state(customer, tag)
    workflow, step = draft_query_step(tenant_a, source)
    for sql in corpus(tag, customer.rsplit("/", 1)[1]):
        # Saving: the describe check (and the kind's validation) answer under the SQL field.
        saved = error_in(save_sql(member_client, workflow, step, sql), 'id="err-sql"')
        if sql in SERVER_REFUSES:
            assert saved == ""
        else:
            assert_clear(saved, sql)
        step.refresh_from_db()
        assert step.config["sql"].strip() == sql.strip()  # kept as typed, to be fixed
        # The step preview runs the saved SQL on an item.
        preview = member_client.post(f"/steps/{step.pk}/preview/", {"item": "{}"}, HTTP_HX_REQUEST="true")
        assert preview.status_code == 200
        assert_clear(error_in(html.unescape(preview.content.decode()), "preview-error"), sql)
        assert state(customer, tag) == before, sql
        if sql in SERVER_REFUSES:
            continue  # a test run would start; the engine test shows how it fails
        # The test page refuses to start a run of the draft and names the step.
        test_page = member_client.post(f"/workflows/{workflow.pk}/test/", {"item": "{}", "skip_waits": "on"})
        assert test_page.status_code == 200, "a test run was started"
        assert "Fix these steps before testing" in test_page.content.decode()
        assert state(customer, tag) == before, sql
    assert not StepExecution.objects.exists()


def test_the_engine_refuses_the_corpus_on_rq_workers(clock, tenant_a, source, customer, tag):  # noqa: F811
    """A draft stored before these checks existed: every query is its own branch of one run."""
    before = state(customer, tag)
    sqls = corpus(tag, customer.rsplit("/", 1)[1])
    steps = [{**query(source, sql), "name": f"q{index}"} for index, sql in enumerate(sqls)]
    workflow = build_workflow(tenant_a, webhook(steps), validate=False, publish_it=False)
    run = start_run(workflow, {}, "evt", version=workflow.versions.get())
    work(clock)
    executions = {
        e.step.name: e
        for e in StepExecution.objects.filter(run=run, step__kind="data_query").select_related("step")
    }
    assert len(executions) == len(sqls)
    for index, sql in enumerate(sqls):
        execution = executions[f"q{index}"]
        assert execution.status == "failed" and execution.attempts == 1, (sql, execution.error)
        assert execution.error.startswith("Data query: ")
        assert_clear(execution.error, sql)
    assert StepExecution.objects.filter(run=run).count() == len(sqls) + 1  # nothing below any query
    assert state(customer, tag) == before


def test_the_server_stops_what_the_parser_cannot_see(source, customer, tag):
    """The customer's own writing function passes the parser; the READ ONLY transaction stops it."""
    before = state(customer, tag)
    check_select("SELECT app.sneaky() AS id")  # the parser has no reason to refuse it
    with pytest.raises(QueryError, match="read-only") as caught:
        fetch_rows(source.connection_url, "SELECT app.sneaky() AS id", [])
    assert "cannot execute INSERT in a read-only transaction" in caught.value.message
    assert state(customer, tag) == before


def test_a_poisoned_reused_connection_is_still_read_only_for_the_next_query(source, customer, tag):
    """Whatever happened to the session before (here: made writable from outside the gate), each query
    makes its own transaction read-only and time-limited."""
    before = state(customer, tag)
    conn = connect_for_tenant_sql(source.connection_url)
    try:
        with pytest.raises(QueryError, match="set_config"):
            fetch_rows(conn, "SELECT set_config('default_transaction_read_only', 'off', false) AS x", [])
        conn.read_only = False
        conn.autocommit = True
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("SET statement_timeout = 0")
        conn.autocommit = False
        with pytest.raises(QueryError, match="read-only"):
            fetch_rows(conn, "SELECT app.sneaky() AS id", [])
        with pytest.raises(QueryError, match="longer than"):
            fetch_rows(conn, "SELECT pg_sleep(60) AS id", [])  # DATA_QUERY_TIMEOUT_MS still applies
        assert fetch_rows(conn, "SELECT count(*) AS n FROM app.users", []) == [{"n": 2}]
    finally:
        conn.close()
    assert state(customer, tag) == before


def test_placeholders_stay_parameters_and_percent_signs_stay_text(source, customer):
    rows = fetch_rows(
        source.connection_url,
        "SELECT email FROM app.users WHERE email LIKE %s AND '100%%' <> %s",
        ["ada%", "x"],
    )
    assert rows == [{"email": "ada@example.com"}]
    assert list(
        stream_rows(source.connection_url, "SELECT %s::text AS v", ["'); DROP TABLE app.users; --"])
    ) == [{"v": "'); DROP TABLE app.users; --"}]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER SYSTEM SET statement_timeout = 1",
        "SELECT pg_reload_conf()",
        "SELECT pg_rotate_logfile()",
        "SELECT pg_catalog.pg_switch_wal()",
        "SELECT * FROM dblink('dbname=postgres', 'select 1') AS t(x int)",
        "SELECT dblink_exec('dbname=postgres', 'drop table x')",
        "SELECT pg_try_advisory_lock(1)",
        "SELECT txid_current()",
        "SELECT ts_stat('select 1')",
        "SELECT pg_notify('rowbell_events', 'x')",
        "SELECT pg_stat_reset()",
        "SELECT * FROM pg_create_logical_replication_slot('s', 'test_decoding')",
        "SELECT id FROM app.users FOR SHARE",
        "SELECT id FROM app.users; ",
        "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
        "GRANT ALL ON app.users TO public",
        "VACUUM app.users",
        "PREPARE p AS SELECT 1",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SELECT 1 AS id UNION ALL (WITH x AS (UPDATE app.users SET email = '' RETURNING 1) SELECT * FROM x)",
    ],
)
def test_the_parser_refuses_what_must_never_be_sent(sql):
    if sql == "SELECT id FROM app.users; ":
        check_select(sql)  # one statement with a trailing `;` is fine
        return
    with pytest.raises(UnsafeQuery) as caught:
        check_select(sql)
    assert_clear(caught.value.message, sql)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("schema", "table", "search"),
    [
        ("app", "users", "'); delete from app.users; --"),
        ("app", 'users"; delete from app.users; --', ""),
        ("app; commit; delete from app.users; --", "users", ""),
    ],
)
def test_live_and_sample_rows_keep_names_quoted_and_search_bound(
    member_client, tenant_a, source, customer, tag, schema, table, search
):
    """The test page's live rows (and the sample item built from the table's columns) use the trigger's
    schema and table, typed by the member, as quoted identifiers, and the search text as a parameter."""
    before = state(customer, tag)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Signups")
    draft = get_or_create_draft(workflow)
    Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="database_trigger",
        config={"datasource": source.pk, "schema": schema, "table": table, "operations": ["insert"]},
    )
    response = member_client.get(f"/workflows/{workflow.pk}/test/", {"search": search})
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    if table == "users" and schema == "app":
        assert "ada@example.com" not in page  # the search matched no row: it was data, not SQL
        found = member_client.get(f"/workflows/{workflow.pk}/test/", {"search": "ada@"}).content.decode()
        assert "ada@example.com" in found and "bob@example.com" not in found
    else:
        assert "Cannot read" in page and "does not exist" in page
    assert state(customer, tag) == before


def test_no_module_but_the_gate_runs_statements_on_a_query_connection():
    """The describe hole was a module that opened the query connection and ran its own cursor. Modules
    that take a connection from integrations.query may pass it on to the gate's functions, never run
    SQL on it themselves."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    apps = ("config", "tenants", "workflows", "runs", "integrations")
    for path in (p for app in apps for p in (root / app).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative == "integrations/query.py":
            continue
        text = path.read_text()
        if re.search(r"from integrations\.query import [^\n]*\bconnect_for_tenant_sql\b", text) and re.search(
            r"\.(execute|cursor|executemany|copy|pipeline)\(", text
        ):
            offenders.append(relative)
    assert offenders == []
