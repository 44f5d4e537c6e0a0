"""Connecting to a tenant's database, and saying what is wrong in words a person can act on."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from django.conf import settings
from django.utils import timezone
from psycopg.conninfo import conninfo_to_dict

from integrations.datasources.privileges import RoleRisk, role_risk
from integrations.datasources.rows import one_row
from integrations.datasources.session import POOL_SAFE, limited_transaction
from integrations.datasources.setup import GrantFixes
from integrations.datasources.target import DataSourceTargetRefused, pinned_conninfo

MIN_SERVER_VERSION = 120000  # PostgreSQL 12: the oldest release Rowbell's trigger SQL is tested against
CONNECT_TIMEOUT_SECONDS = 5  # the default of settings.DATASOURCE_CONNECT_TIMEOUT
# A host that vanishes mid-conversation (a firewall starts dropping packets, the machine dies) sends no
# error: without these, a read waits for the operating system's defaults (two hours of silence before the
# first keepalive probe). Keepalive probes after 15 s of silence, three unanswered 5 s apart, close the
# connection; tcp_user_timeout does the same when data sent is not acknowledged for 30 s. libpq ignores
# them for Unix-domain sockets.
TCP_KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


class DataSourceUnavailable(Exception):
    """The customer's database cannot be used right now; the message says why and what to do."""


@dataclass(frozen=True)
class MissingGrant:
    """Something Rowbell's role cannot do yet, and the SQL a superuser runs to fix it ("" when none)."""

    problem: str
    fix: str = ""


@dataclass
class ConnectionCheck:
    ok: bool
    message: str
    problems: list[str] = field(default_factory=list)
    server_version: str = ""
    role_warnings: list[str] = field(default_factory=list)  # privileges.RoleRisk.warnings
    # The problems that a statement fixes, with that statement (a subset of `problems`, in order).
    missing: list[MissingGrant] = field(default_factory=list)
    # What works differently on this connection (a transaction-mode pooler): sentences for the page.
    pooler_notes: list[str] = field(default_factory=list)


def same_database(first_url: str, second_url: str) -> bool:
    """Whether two connection URLs name the same database (host, port, name; the credentials may differ).

    Only a sure "same" counts: URLs that cannot be parsed, or spell one server two ways, count as two.
    """
    try:
        first, second = conninfo_to_dict(first_url), conninfo_to_dict(second_url)
    except psycopg.ProgrammingError:
        return False

    def where(info: dict) -> tuple:
        return (info.get("host") or "", str(info.get("port") or 5432), info.get("dbname") or "")

    return where(first) == where(second)


def connect_timeout() -> int:
    """Seconds a connection attempt may take (whole seconds, at least 2, as libpq counts them)."""
    return max(2, int(getattr(settings, "DATASOURCE_CONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)))


def connect_datasource(
    datasource,
    *,
    autocommit: bool = False,
    application_name: str = "rowbell",
    read_only: bool = False,
    timeout: int | None = None,
) -> psycopg.Connection:
    """Open a connection to the data source, or raise DataSourceUnavailable with a readable reason.

    The connection carries no session settings and prepares no statements (session.py: it works the
    same through a transaction-mode pooler); a caller that needs a statement timeout sets it per
    transaction (session.limited_transaction). `read_only` makes every transaction read-only
    (BEGIN READ ONLY, and not autocommit: every statement runs in such a transaction), for connections
    that only look (introspection); `timeout` (seconds, at least 2) replaces DATASOURCE_CONNECT_TIMEOUT
    for this connection attempt.
    """
    url = datasource.connection_url or ""
    if not url.startswith(("postgres://", "postgresql://")):
        raise DataSourceUnavailable(
            "The connection URL cannot be used: write it as postgresql://user:password@host:5432/dbname."
        )
    try:
        pinned: dict[str, Any] = pinned_conninfo(url)
    except DataSourceTargetRefused as exc:
        raise DataSourceUnavailable(str(exc)) from exc
    try:
        conn = psycopg.connect(
            url,
            autocommit=autocommit and not read_only,
            connect_timeout=max(2, timeout) if timeout else connect_timeout(),
            application_name=application_name,
            **TCP_KEEPALIVE,
            **POOL_SAFE,
            **pinned,
        )
    except psycopg.ProgrammingError as exc:  # a malformed URL fails before any network traffic
        raise DataSourceUnavailable(f"The connection URL cannot be used: {exc}") from exc
    except psycopg.Error as exc:
        raise DataSourceUnavailable(describe_error(exc, url)) from exc
    conn.read_only = read_only or None
    return conn


def describe_error(exc: BaseException, url: str = "") -> str:
    """Turn a driver error into a sentence that names the problem and the fix."""
    text = str(exc)
    parts = urlsplit(url) if url else None
    host = unquote(parts.hostname or "localhost") if parts else "the server"
    port = (parts.port or 5432) if parts else 5432
    user = (parts.username or "") if parts else ""
    database = (parts.path.lstrip("/") or user) if parts else ""
    lowered = text.lower()
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"The host “{host}” was not found. Check the host name in the connection URL."
    if "connection refused" in lowered or ("on socket" in lowered and "no such file" in lowered):
        return (
            f"Nothing accepts connections at {host}:{port}. Check the host and port, and that PostgreSQL "
            "listens on that address (listen_addresses) and a firewall lets Rowbell in."
        )
    if "statement timeout" in lowered:
        return (
            "The database cancelled a query of Rowbell's that ran too long (statement_timeout): it is "
            "overloaded, or a lock holds up the table."
        )
    if "could not receive data" in lowered or "could not send data" in lowered:
        return (
            f"{host}:{port} stopped answering in the middle of a query ({text.strip().splitlines()[0]}). "
            "The host may be down, or a firewall may be dropping Rowbell's connections."
        )
    if "timeout" in lowered or "timed out" in lowered:
        return (
            f"{host}:{port} did not answer within {connect_timeout()} s. A firewall may be dropping "
            "Rowbell's connections, or the host is down."
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"The server rejected the password for user “{user}”. Check the user name and password."
    if "no pg_hba.conf entry" in lowered:
        return (
            f"The server does not allow user “{user}” to connect from Rowbell's address. Add a line for it "
            "to pg_hba.conf and reload PostgreSQL."
        )
    if "database" in lowered and "does not exist" in lowered:
        return f"The database “{database}” does not exist on {host}. Check the database name in the URL."
    if "role" in lowered and "does not exist" in lowered:
        return f"The user “{user}” does not exist on {host}. Run the setup SQL first, or fix the user name."
    if "permission denied" in lowered:
        return f"Permission denied: {text.strip()}. Run the setup SQL again to grant what is missing."
    if "terminating connection" in lowered or "server closed the connection" in lowered:
        return "The database closed the connection (restarted, or the session was terminated)."
    return f"Could not use the database: {text.strip()}"


def test_connection(
    datasource, tables: Iterable[tuple[str, str]] = (), *, save: bool = True
) -> ConnectionCheck:
    """Connect, check the version and the grants Rowbell needs, and record the outcome on the data source.

    The grants checked: every table of the data source's `schemas` readable and accepting triggers, the
    `rowbell` schema, the trigger-removal helper, and `tables`, (schema, table) pairs that must exist too
    (the pages pass the tables of the data source's published database triggers:
    workflows.database_triggers.watched_tables). Each missing grant comes with the statement that fixes
    it (`check.missing`).
    """
    schemas = list(getattr(datasource, "schemas", None) or ["public"])
    try:
        with connect_datasource(datasource, autocommit=True, application_name="rowbell-check") as conn:
            check = _check_server(conn, schemas, list(tables))
            if check.server_version and not _limits_hold(conn, check):
                check.ok = False
            if check.server_version and getattr(datasource, "notify_enabled", False):
                _check_notify(datasource, conn, check)
    except DataSourceUnavailable as exc:
        check = ConnectionCheck(ok=False, message=str(exc), problems=[str(exc)])
    except psycopg.Error as exc:
        message = describe_error(exc, datasource.connection_url or "")
        check = ConnectionCheck(ok=False, message=message, problems=[message])
    if save and datasource.pk:
        _record(datasource, check)
    return check


def _limits_hold(conn: psycopg.Connection, check: ConnectionCheck) -> bool:
    """Run one transaction the way the listener and the data queries run theirs (limits set first, by
    session.limited_transaction) and read the limits back: a pooler that drops them fails the check."""
    timeout_ms = int(settings.DATA_QUERY_TIMEOUT_MS)
    with limited_transaction(conn, statement_timeout_ms=timeout_ms, read_only=True):
        shown = conn.execute(
            "SELECT setting::int, current_setting('transaction_read_only') FROM pg_settings "
            "WHERE name = 'statement_timeout'"
        ).fetchone()
    if shown == (timeout_ms, "on"):
        return True
    shown = shown or ("?", "?")
    problem = (
        "Something between Rowbell and the database drops the limits Rowbell sets in each transaction "
        f"(statement_timeout {shown[0]} ms instead of {timeout_ms}, read-only {shown[1]}): connect directly "
        "or through a pooler that passes SET LOCAL on."
    )
    check.problems.append(problem)
    check.message = problem
    return False


NOTIFY_PROBE_SECONDS = 1.0


def _check_notify(datasource, conn: psycopg.Connection, check: ConnectionCheck) -> None:
    """With NOTIFY wake-ups on, see whether a notification sent from a second connection arrives.

    Through a transaction-mode pooler it does not (LISTEN stays on a server connection the next
    transaction may not get): the listener then finds rows by polling alone, and the page says so.
    """
    channel = f"rowbell_probe_{uuid.uuid4().hex[:12]}"
    conn.execute(f"LISTEN {channel}")
    with connect_datasource(datasource, autocommit=True, application_name="rowbell-check") as sender:
        sender.execute(f"NOTIFY {channel}")
    arrived = any(True for _ in conn.notifies(timeout=NOTIFY_PROBE_SECONDS, stop_after=1))
    conn.execute(f"UNLISTEN {channel}")
    if not arrived:
        check.pooler_notes.append(POOLED_NOTIFY_NOTE)


POOLED_NOTIFY_NOTE = (
    "NOTIFY wake-ups do not arrive through this connection (a transaction-mode pooler, such as "
    "Supabase's on port 6543, keeps no LISTEN between transactions). The listener finds new rows by "
    "polling instead, within a fraction of a second. For NOTIFY, use the direct connection "
    "(Supabase: db.<project>.supabase.co:5432) or turn NOTIFY off."
)


def check_role(datasource) -> RoleRisk | None:
    """The role's risk, or None when the database cannot be reached (the connection check says why)."""
    try:
        with connect_datasource(
            datasource, autocommit=True, application_name="rowbell-check", read_only=True
        ) as conn:
            return role_risk(conn)
    except (DataSourceUnavailable, psycopg.Error):
        return None


def _check_server(
    conn: psycopg.Connection, schemas: list[str], tables: list[tuple[str, str]]
) -> ConnectionCheck:
    version_num = conn.info.server_version
    version = f"{version_num // 10000}.{version_num % 10000}"
    if version_num < MIN_SERVER_VERSION:
        message = (
            f"The server runs PostgreSQL {version_num // 10000}; Rowbell needs PostgreSQL "
            f"{MIN_SERVER_VERSION // 10000} or newer."
        )
        return ConnectionCheck(ok=False, message=message, problems=[message], server_version=version)
    missing = missing_grants(conn, schemas, tables)
    role_warnings = role_risk(conn).warnings
    if missing:
        problems = [grant.problem for grant in missing]
        return ConnectionCheck(
            ok=False,
            message="Connected, but Rowbell's role is missing grants: " + " ".join(problems),
            problems=problems,
            server_version=version,
            role_warnings=role_warnings,
            missing=missing,
        )
    return ConnectionCheck(
        ok=True,
        message=f"Connected to PostgreSQL {version}.",
        server_version=version,
        role_warnings=role_warnings,
    )


def missing_grants(
    conn: psycopg.Connection, schemas: list[str], tables: Sequence[tuple[str, str]] = ()
) -> list[MissingGrant]:
    """What the connected role still lacks to watch the tables of `schemas` (and `tables`), with fixes."""
    role = one_row(conn.execute("SELECT current_user"))[0]
    fixes = GrantFixes(role)
    missing = _rowbell_schema_problems(conn, role, fixes)
    reported: set[str] = set()
    for schema in schemas:
        problems = _schema_problems(conn, role, schema, fixes)
        if problems:
            reported.add(schema)
        missing += problems
    for schema, table in tables:
        missing += _table_problems(conn, role, schema, table, fixes, schema_reported=schema in reported)
    if _needs_drop_helper(conn, schemas, tables):
        missing += _helper_problems(conn, role, fixes)
    return missing


def _rowbell_schema_problems(conn: psycopg.Connection, role: str, fixes: GrantFixes) -> list[MissingGrant]:
    row = conn.execute(
        "SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = 'rowbell'"
    ).fetchone()
    if row is None:
        if one_row(conn.execute("SELECT has_database_privilege(current_database(), 'CREATE')"))[0]:
            return []
        problem = f"There is no “rowbell” schema and “{role}” cannot create it."
    elif not row[0]:
        problem = f"“{role}” cannot create objects in the “rowbell” schema (its event log lives there)."
    else:
        return []
    return [MissingGrant(problem, fixes.rowbell_schema())]


def _schema_problems(
    conn: psycopg.Connection, role: str, schema: str, fixes: GrantFixes
) -> list[MissingGrant]:
    row = conn.execute(
        "SELECT oid, has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    if row is None:
        return [
            MissingGrant(
                f"There is no schema “{schema}” in this database: choose the schemas your tables are in "
                "on the data source's edit page."
            )
        ]
    missing = []
    if not row[1]:
        missing.append(MissingGrant(f"“{role}” cannot use the schema “{schema}”.", fixes.usage(schema)))
    lacking = [
        name
        for (name,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s AND relkind IN ('r', 'p') "
            "AND NOT relispartition AND NOT (has_table_privilege(oid, 'SELECT') "
            "AND has_table_privilege(oid, 'TRIGGER')) ORDER BY relname",
            (row[0],),
        )
    ]
    if lacking:
        shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        count = f"{len(lacking)} table{'s' if len(lacking) != 1 else ''}"
        missing.append(
            MissingGrant(
                f"“{role}” cannot read or put triggers on {count} in “{schema}”: {shown}.",
                fixes.tables(schema),
            )
        )
    return missing


def _table_problems(
    conn: psycopg.Connection, role: str, schema: str, table: str, fixes: GrantFixes, *, schema_reported: bool
) -> list[MissingGrant]:
    row = conn.execute(
        "SELECT has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'TRIGGER') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    ).fetchone()
    if row is None:
        return [
            MissingGrant(f"The table {schema}.{table} does not exist (or “{role}” cannot see its schema).")
        ]
    lacking = [name for name, granted in zip(("SELECT", "TRIGGER"), row, strict=True) if not granted]
    if not lacking or schema_reported:
        return []
    return [
        MissingGrant(
            f"“{role}” lacks {' and '.join(lacking)} on {schema}.{table}.", fixes.table(schema, table)
        )
    ]


def _needs_drop_helper(
    conn: psycopg.Connection, schemas: list[str], tables: Sequence[tuple[str, str]]
) -> bool:
    """Whether the role must remove triggers from tables it does not own (needing rowbell.drop_trigger)."""
    return one_row(
        conn.execute(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT pg_has_role(c.relowner, 'USAGE') "
            "AND (n.nspname = ANY(%s) OR (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))))",
            (schemas, [s for s, _ in tables], [t for _, t in tables]),
        )
    )[0]


def _helper_problems(conn: psycopg.Connection, role: str, fixes: GrantFixes) -> list[MissingGrant]:
    oid, can_execute = one_row(
        conn.execute(
            "SELECT p, p IS NOT NULL AND has_function_privilege(p, 'EXECUTE') "
            "FROM to_regprocedure('rowbell.drop_trigger(regclass, name)') AS p"
        )
    )
    if oid is not None and can_execute:
        return []
    problem = (
        "The function rowbell.drop_trigger is missing"
        if oid is None
        else f"“{role}” may not call rowbell.drop_trigger"
    )
    return [
        MissingGrant(
            f"{problem}: without it Rowbell cannot remove its triggers from tables “{role}” does not own.",
            fixes.helper(),
        )
    ]


def _record(datasource, check: ConnectionCheck) -> None:
    datasource.status = datasource.Status.OK if check.ok else datasource.Status.ERROR
    datasource.last_error = "" if check.ok else check.message
    datasource.checked_at = timezone.now()
    type(datasource).objects.filter(pk=datasource.pk).update(
        status=datasource.status, last_error=datasource.last_error, checked_at=datasource.checked_at
    )


# Not a pytest test, although its name starts with "test_".
test_connection.__test__ = False  # type: ignore[attr-defined]
