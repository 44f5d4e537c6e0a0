"""The SQL a superuser runs once in the customer's database to create Rowbell's least-privilege role."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

# Rowbell's own triggers are named rowbell_wf_<workflow id>_<insert|update>; DROP TRIGGER needs table
# ownership, so the setup creates this narrow helper that drops only those names.
DROP_HELPER = """
CREATE OR REPLACE FUNCTION rowbell.drop_trigger(target regclass, trigger_name name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF trigger_name !~ '^rowbell_wf_[0-9]+_(insert|update)$' THEN
        RAISE EXCEPTION 'rowbell.drop_trigger only drops Rowbell''s own triggers, not %', trigger_name;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, target);
END
$fn$"""


def setup_sql(
    role: str = "rowbell",
    password: str = "choose-a-long-password",
    database: str = "your_database",
    schemas: Sequence[str] = ("public",),
) -> str:
    """The script, as text to show the customer. Identifiers and the password are quoted for them.

    The role can: connect; read the tables of `schemas`; create triggers on them; own the `rowbell`
    schema (where its event log and trigger function live); call `rowbell.drop_trigger` for its own
    triggers. It cannot write to, alter or drop the application's tables.
    """
    ident = sql.Identifier(role)
    statements = [
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(
            ident, sql.Literal(password)
        ),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("CREATE SCHEMA IF NOT EXISTS rowbell AUTHORIZATION {}").format(ident),
    ]
    for schema in schemas:
        schema_ident = sql.Identifier(schema)
        statements += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_ident, ident),
            sql.SQL("GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA {} TO {}").format(schema_ident, ident),
            # Tables created later by the role running this script get the same grants.
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT, TRIGGER ON TABLES TO {}").format(
                schema_ident, ident
            ),
        ]
    statements += [
        sql.SQL(DROP_HELPER),
        sql.SQL("REVOKE ALL ON FUNCTION rowbell.drop_trigger(regclass, name) FROM PUBLIC"),
        sql.SQL("GRANT EXECUTE ON FUNCTION rowbell.drop_trigger(regclass, name) TO {}").format(ident),
    ]
    header = (
        "-- Run once as a superuser (or the owner of the tables) in the database Rowbell watches.\n"
        "-- It creates a role that can read and put triggers on these tables, and nothing more.\n"
    )
    return header + ";\n\n".join(_render(statement) for statement in statements) + ";\n"


def _render(statement: sql.Composable) -> str:
    # as_string(None) quotes identifiers and literals without a connection (psycopg >= 3.2).
    return statement.as_string(None).strip()
