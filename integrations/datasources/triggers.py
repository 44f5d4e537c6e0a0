"""Installing and removing a workflow's row triggers in the customer's database.

Everything Rowbell creates lives in the `rowbell` schema: the `event_log` table, and the trigger
functions `capture_row()` (insert into the log, nothing else) and `capture_row_notify()` (the same plus a
`pg_notify`, for data sources that opted in). Each workflow gets its own triggers, named
`rowbell_wf_<workflow id>_insert`, `_update` and `_delete`, whose argument is the workflow
id; so two workflows on one table each get their own log rows, and finding "this workflow's triggers"
anywhere in the database is a lookup by name.

Installing is one transaction, idempotent, and replaces whatever the workflow had before (on any table).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import psycopg
from psycopg import sql

from integrations.datasources.connection import DataSourceUnavailable, connect_datasource, describe_error
from integrations.datasources.rows import one_row

NOTIFY_CHANNEL = "rowbell_events"
# Bump when the SQL below changes, so installs replace functions written by an older Rowbell.
# 2: deletes are captured (the log's new_row holds the deleted row, old_row too).
SQL_VERSION = "rowbell-triggers-2"
LOCK_TIMEOUT = "5s"

EVENT_LOG = """
CREATE TABLE IF NOT EXISTS rowbell.event_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint NOT NULL,
    op text NOT NULL,
    new_row jsonb NOT NULL,
    old_row jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
)"""

# SECURITY DEFINER: the customer's app role needs no grant on the rowbell schema for its writes to be
# logged. No exception handler (a subtransaction per row would cost every write).
CAPTURE_FUNCTION = """
CREATE OR REPLACE FUNCTION rowbell.{name}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO rowbell.event_log (workflow_id, op, new_row, old_row)
    -- A delete has no NEW: its row goes in both columns, so the log's NOT NULL new_row (and every
    -- log written by an older Rowbell) stays as it was.
    VALUES (TG_ARGV[0]::bigint, TG_OP, to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END),
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END);
    {notify}
    RETURN NULL;
END
$fn$"""


@dataclass(frozen=True)
class TriggerSpec:
    """What to watch: a table, which operations, and (for updates) which columns must change."""

    schema: str
    table: str
    operations: tuple[str, ...] = ("insert",)
    watch_columns: tuple[str, ...] = ()
    notify: bool = False


def trigger_names(workflow_id: int) -> dict[str, str]:
    return {op: f"rowbell_wf_{int(workflow_id)}_{op}" for op in ("insert", "update", "delete")}


def install_trigger(datasource, workflow_id: int, spec: TriggerSpec) -> None:
    """Create (or replace) the workflow's triggers on spec's table, removing any it had elsewhere."""
    try:
        with connect_datasource(datasource, application_name="rowbell-install") as conn, conn.transaction():
            _prepare(conn)
            _drop_workflow_triggers(conn, workflow_id)
            _create_triggers(conn, workflow_id, spec)
    except psycopg.Error as exc:
        raise DataSourceUnavailable(
            f"Rowbell could not install the trigger on {spec.schema}.{spec.table}: "
            f"{describe_error(exc, datasource.connection_url)}"
        ) from exc


def remove_trigger(datasource, workflow_id: int) -> int:
    """Drop the workflow's triggers wherever they are; returns how many were dropped. Idempotent."""
    try:
        with connect_datasource(datasource, application_name="rowbell-install") as conn, conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            return _drop_workflow_triggers(conn, workflow_id)
    except psycopg.Error as exc:
        raise DataSourceUnavailable(
            f"Rowbell could not remove its trigger: {describe_error(exc, datasource.connection_url)}"
        ) from exc


def replace_triggers_at_boundary(datasource, install: dict[int, TriggerSpec], remove: list[int]) -> str:
    """Install (`install`, by workflow id) or remove (`remove`) row triggers in one transaction, and return
    the WAL position read inside it, after its locks were taken.

    Creating or dropping a trigger locks its table against writes, so every write to a watched table
    either committed before that position (and was seen by the triggers as they were) or commits after
    this transaction (and sees them as they are now): the position is the exact boundary between two
    captures, which is what a switch to or from logical decoding needs.
    """
    try:
        with connect_datasource(datasource, application_name="rowbell-install") as conn, conn.transaction():
            _prepare(conn)
            for workflow_id in remove:
                _drop_workflow_triggers(conn, workflow_id)
            for workflow_id, spec in install.items():
                _drop_workflow_triggers(conn, workflow_id)
                _create_triggers(conn, workflow_id, spec)
            return str(one_row(conn.execute("SELECT pg_current_wal_insert_lsn()::text"))[0])
    except psycopg.Error as exc:
        raise DataSourceUnavailable(
            f"Rowbell could not switch its triggers: {describe_error(exc, datasource.connection_url)}"
        ) from exc


def remove_triggers_from(connection_url: str, workflow_ids: list[int]) -> int:
    """Drop these workflows' triggers from the database at `connection_url`: a data source's previous
    database, once it points elsewhere. Returns how many were dropped."""
    previous = SimpleNamespace(connection_url=connection_url)
    return sum(remove_trigger(previous, workflow_id) for workflow_id in workflow_ids)


def installed_triggers(datasource, workflow_id: int | None = None) -> list[tuple[str, str, str]]:
    """(schema, table, trigger name) of Rowbell's triggers in the database, optionally one workflow's."""
    names = list(trigger_names(workflow_id).values()) if workflow_id is not None else None
    with connect_datasource(datasource, autocommit=True, application_name="rowbell-check") as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE t.tgname LIKE 'rowbell\\_wf\\_%%' AND (%s::text[] IS NULL OR t.tgname = ANY(%s::text[])) "
            "ORDER BY 1, 2, 3",
            (names, names),
        ).fetchall()
    return [tuple(row) for row in rows]


def _prepare(conn: psycopg.Connection) -> None:
    """The schema, the log and the functions, created once; concurrent installs wait for each other."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('rowbell.install'))")
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'rowbell'").fetchone() is None:
        conn.execute("CREATE SCHEMA rowbell")
    conn.execute(EVENT_LOG)
    current = one_row(
        conn.execute("SELECT obj_description(to_regprocedure('rowbell.capture_row_notify()'), 'pg_proc')")
    )[0]
    if current != SQL_VERSION:
        notify = f"PERFORM pg_notify('{NOTIFY_CHANNEL}', '');"
        for name, extra in (("capture_row", ""), ("capture_row_notify", notify)):
            conn.execute(CAPTURE_FUNCTION.format(name=name, notify=extra))
            conn.execute(f"COMMENT ON FUNCTION rowbell.{name}() IS '{SQL_VERSION}'")


def _drop_workflow_triggers(conn: psycopg.Connection, workflow_id: int) -> int:
    rows = conn.execute(
        "SELECT t.tgrelid::regclass::text, t.tgname, pg_has_role(c.relowner, 'USAGE') "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = ANY(%s)",
        (list(trigger_names(workflow_id).values()),),
    ).fetchall()
    has_helper = None
    for relation, name, owns_table in rows:
        if owns_table:
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), sql.SQL(relation))
            )
            continue
        if has_helper is None:
            has_helper = one_row(
                conn.execute("SELECT to_regprocedure('rowbell.drop_trigger(regclass, name)') IS NOT NULL")
            )[0]
        if not has_helper:
            raise DataSourceUnavailable(
                f"Rowbell's role does not own {relation} and rowbell.drop_trigger is missing, so the old "
                "trigger cannot be removed. Run the setup SQL again."
            )
        conn.execute("SELECT rowbell.drop_trigger(%s::regclass, %s)", (relation, name))
    return len(rows)


def _create_triggers(conn: psycopg.Connection, workflow_id: int, spec: TriggerSpec) -> None:
    table = sql.Identifier(spec.schema, spec.table)
    function = sql.SQL(_function_name(spec.notify))
    argument = sql.Literal(str(int(workflow_id)))
    names = trigger_names(workflow_id)
    if "insert" in spec.operations:
        conn.execute(
            sql.SQL("CREATE TRIGGER {} AFTER INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}({})").format(
                sql.Identifier(names["insert"]), table, function, argument
            )
        )
    if "update" in spec.operations:
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} AFTER UPDATE ON {} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {}({})"
            ).format(
                sql.Identifier(names["update"]),
                table,
                _changed_condition(spec.watch_columns),
                function,
                argument,
            )
        )
    if "delete" in spec.operations:
        _require_delete_helper(conn, spec)
        conn.execute(
            sql.SQL("CREATE TRIGGER {} AFTER DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}({})").format(
                sql.Identifier(names["delete"]), table, function, argument
            )
        )


def _require_delete_helper(conn: psycopg.Connection, spec: TriggerSpec) -> None:
    """A delete trigger on a table Rowbell's role does not own can only be removed again through
    rowbell.drop_trigger; the helper of an older setup SQL refuses `_delete` names, so say to re-run it
    now rather than install a trigger that unpublishing could not drop."""
    owns, helper = one_row(
        conn.execute(
            "SELECT pg_has_role(c.relowner, 'USAGE'), "
            "(SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('rowbell.drop_trigger(regclass, name)')) "
            "FROM pg_class c WHERE c.oid = %s::regclass",
            (sql.Identifier(spec.schema, spec.table).as_string(conn),),
        )
    )
    if not owns and "delete" not in (helper or ""):
        raise DataSourceUnavailable(
            f"Watching deletes on {spec.schema}.{spec.table} needs the current setup SQL: run it again "
            "(it lets Rowbell remove its delete triggers), then publish again."
        )


def _changed_condition(columns: tuple[str, ...]) -> sql.Composable:
    """Fire on updates that changed one of the watched columns (any column when none are given)."""
    if not columns:
        return sql.SQL("OLD.* IS DISTINCT FROM NEW.*")
    return sql.SQL(" OR ").join(
        sql.SQL("OLD.{0} IS DISTINCT FROM NEW.{0}").format(sql.Identifier(column)) for column in columns
    )


def triggers_installed(datasource, specs: dict[int, TriggerSpec]) -> bool:
    """Whether each workflow's triggers (`specs`, by workflow id) are installed on its table, calling the
    function its spec's `notify` picks; false after a reinstall that could not reach the database, say.

    Raises DataSourceUnavailable when the database cannot be reached.
    """
    expected = {
        (name, spec.schema, spec.table, _function_name(spec.notify))
        for workflow_id, spec in specs.items()
        for op, name in trigger_names(workflow_id).items()
        if op in spec.operations
    }
    try:
        with connect_datasource(datasource, autocommit=True, application_name="rowbell-check") as conn:
            rows = conn.execute(
                "SELECT t.tgname, n.nspname, c.relname, fn.nspname || '.' || f.proname FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_proc f ON f.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = f.pronamespace "
                "WHERE t.tgname = ANY(%s)",
                ([name for name, *_ in expected],),
            ).fetchall()
    except psycopg.Error as exc:
        raise DataSourceUnavailable(describe_error(exc, datasource.connection_url)) from exc
    return {tuple(row) for row in rows} == expected


def _function_name(notify: bool) -> str:
    return "rowbell.capture_row_notify" if notify else "rowbell.capture_row"
