"""The SQL a superuser (or the tables' owner with CREATEROLE, like Supabase's `postgres`) runs once in the
customer's database to create Rowbell's least-privilege role.

The script is made for one connection: the role and password of its URL, its database, and the schemas the
tables live in (`plan_from_url`). Every name is quoted by psycopg, never pasted in, so a role called
`Row"bell-UX` or a schema called `my app` is written correctly and cannot inject SQL. Running the script
again is safe: an existing role is left as it is (its password and attributes untouched), and the grants and
the helper function are idempotent. The same statements, one at a time, are the fixes the connection check
proposes (`grant_fixes`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from psycopg import sql

# Rowbell's own triggers are named rowbell_wf_<workflow id>_<insert|update|delete>; DROP TRIGGER needs table
# ownership, so the setup creates this narrow helper that drops only those names.
DROP_HELPER = """
CREATE OR REPLACE FUNCTION rowbell.drop_trigger(target regclass, trigger_name name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF trigger_name !~ '^rowbell_wf_[0-9]+_(insert|update|delete)$' THEN
        RAISE EXCEPTION 'rowbell.drop_trigger only drops Rowbell''s own triggers, not %', trigger_name;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, target);
END
$fn$"""

PASSWORD_PLACEHOLDER = "the-password-in-your-connection-url"
DEFAULT_SCHEMAS = ("public",)


@dataclass(frozen=True)
class SetupPlan:
    """What the setup SQL is made for: one role, its password, one database, the schemas to watch."""

    role: str
    password: str
    database: str
    schemas: tuple[str, ...] = DEFAULT_SCHEMAS
    # What the page proposed because the URL did not say (a role name, a password), for the person to use.
    proposed: tuple[str, ...] = field(default=(), compare=False)

    def sql(self, *, show_password: bool = True) -> str:
        password = self.password if show_password else PASSWORD_PLACEHOLDER
        return setup_sql(self.role, password, self.database, self.schemas)


def proposed_role(tenant_slug: str) -> str:
    """A role name for a URL that names none: per tenant, since role names are shared by the whole cluster."""
    cleaned = "".join(c if c.isalnum() else "_" for c in tenant_slug.lower()).strip("_")
    return f"rowbell_{cleaned or 'app'}"[:63]


def new_password() -> str:
    return secrets.token_urlsafe(24)


def plan_from_url(
    url: str, schemas: Sequence[str] = DEFAULT_SCHEMAS, *, tenant_slug: str = "", password: str = ""
) -> SetupPlan:
    """The plan for the URL the person typed: its user and password (percent-decoded) and its database.

    A URL without a user gets a proposed role, one without a password `password` (or a new one); the plan's
    `proposed` names what was filled in, and `url_with(plan, url)` writes it back into the URL.
    """
    parts = urlsplit(url.strip())
    proposed = []
    role = unquote(parts.username or "")
    if not role:
        role = proposed_role(tenant_slug)
        proposed.append("role")
    secret = unquote(parts.password or "")
    if not secret:
        secret = password or new_password()
        proposed.append("password")
    database = unquote(parts.path.lstrip("/")) or "your_database"
    return SetupPlan(role, secret, database, tuple(schemas) or DEFAULT_SCHEMAS, tuple(proposed))


def url_with(plan: SetupPlan, url: str) -> str:
    """`url` with the plan's role and password in it (what to save once the SQL has run)."""
    from urllib.parse import quote

    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    auth = f"{quote(plan.role, safe='')}:{quote(plan.password, safe='')}@"
    return urlunsplit(parts._replace(netloc=auth + host))


def setup_sql(
    role: str = "rowbell",
    password: str = "choose-a-long-password",
    database: str = "your_database",
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
) -> str:
    """The script, as text to show the customer. Identifiers and the password are quoted for them.

    The role can: connect; read the tables of `schemas`; create triggers on them; own the `rowbell`
    schema (where its event log and trigger function live); call `rowbell.drop_trigger` for its own
    triggers. It cannot write to, alter or drop the application's tables.
    """
    ident = sql.Identifier(role)
    statements = [
        _create_role(role, password),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        *rowbell_schema_statements(role),
    ]
    for schema in schemas:
        statements += schema_grants(role, schema)
    statements += helper_statements(role)
    header = (
        "-- Run once as a superuser, or as the owner of the tables with CREATEROLE (Supabase's postgres),\n"
        "-- in the database Rowbell watches.\n"
        "-- It creates a role that can read and put triggers on these tables, and nothing more.\n"
        "-- Running it again is safe: an existing role keeps its password.\n"
    )
    return header + ";\n\n".join(_render(statement) for statement in statements) + ";\n"


def rowbell_schema_statements(role: str) -> list[sql.Composable]:
    """The `rowbell` schema, owned by whoever runs the script, with the right to create in it for the role.

    Not `AUTHORIZATION <role>`: only a superuser or a member of the role may make it the owner, and on
    Supabase (or any managed PostgreSQL) the person runs the script as a role that is neither. The
    runner's owning it also lets it create rowbell.drop_trigger there, running as the tables' owner.
    """
    ident = sql.Identifier(role)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS rowbell"),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA rowbell TO {}").format(ident),
    ]


def schema_grants(role: str, schema: str) -> list[sql.Composable]:
    ident, schema_ident = sql.Identifier(role), sql.Identifier(schema)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_ident, ident),
        sql.SQL("GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA {} TO {}").format(schema_ident, ident),
        # Tables created later by the role running this script get the same grants.
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT, TRIGGER ON TABLES TO {}").format(
            schema_ident, ident
        ),
    ]


def helper_statements(role: str) -> list[sql.Composable]:
    return [
        sql.SQL(DROP_HELPER),
        sql.SQL("REVOKE ALL ON FUNCTION rowbell.drop_trigger(regclass, name) FROM PUBLIC"),
        sql.SQL("GRANT EXECUTE ON FUNCTION rowbell.drop_trigger(regclass, name) TO {}").format(
            sql.Identifier(role)
        ),
    ]


def _create_role(role: str, password: str) -> sql.Composable:
    """Create the role unless it exists. An existing role is left alone: if the URL named an existing
    (even a superuser) role, the script must not change its password or take its rights away."""
    body = _render(
        sql.SQL(
            "IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN\n"
            "    CREATE ROLE {ident} LOGIN PASSWORD {password} NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;\n"
            "ELSE\n"
            "    RAISE NOTICE 'The role % exists already: it is left as it is.', {name};\n"
            "END IF;"
        ).format(name=sql.Literal(role), ident=sql.Identifier(role), password=sql.Literal(password))
    )
    tag = "$rowbell$"
    counter = 0
    while tag in body:  # a password may contain the dollar-quote tag: pick one it does not
        counter += 1
        tag = f"$rowbell{counter}$"
    return sql.SQL("DO {tag}\nBEGIN\n    {body}\nEND\n{tag}").format(tag=sql.SQL(tag), body=sql.SQL(body))


class GrantFixes:
    """The single statements that fix one missing grant of `role` (the connection check's advice)."""

    def __init__(self, role: str):
        self.role = role
        self.ident = sql.Identifier(role)

    def usage(self, schema: str) -> str:
        return _render(sql.SQL("GRANT USAGE ON SCHEMA {} TO {};").format(sql.Identifier(schema), self.ident))

    def tables(self, schema: str) -> str:
        statement = sql.SQL("GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA {} TO {};")
        return _render(statement.format(sql.Identifier(schema), self.ident))

    def table(self, schema: str, table: str) -> str:
        statement = sql.SQL("GRANT SELECT, TRIGGER ON TABLE {} TO {};")
        return _render(statement.format(sql.Identifier(schema, table), self.ident))

    def rowbell_schema(self) -> str:
        return ";\n".join(_render(statement) for statement in rowbell_schema_statements(self.role)) + ";"

    def helper(self) -> str:
        return ";\n\n".join(_render(statement) for statement in helper_statements(self.role)) + ";"


def _render(statement: sql.Composable) -> str:
    # as_string(None) quotes identifiers and literals without a connection (psycopg >= 3.2).
    return statement.as_string(None).strip()
