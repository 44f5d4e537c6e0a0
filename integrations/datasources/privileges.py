"""Whether the data source's role can do more than Rowbell needs, said plainly to the person connecting.

Tenant SQL runs in read-only transactions and must pass sql_guard's parser (integrations/query.py), but
neither is a privilege boundary: a superuser can still do whatever a function of the database lets it
do inside a read-only transaction, and anyone with write grants is one Rowbell bug away from writing.
The least-privilege role of the setup SQL (SELECT and TRIGGER only) is the real boundary, so "test
connection" and the data source's page warn when the role is a superuser or can write to tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from integrations.datasources.rows import one_row

# Built-in roles that reach outside the database (files, programs, other sessions).
RISKY_MEMBERSHIPS = (
    "pg_execute_server_program",
    "pg_write_server_files",
    "pg_read_server_files",
    "pg_signal_backend",
)
SHOWN_TABLES = 5

ROLE_SQL = """
SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
       ARRAY(SELECT m FROM unnest(%s::text[]) AS m
             WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = m) AND pg_has_role(current_user, m, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = current_user
"""
# Tables of the customer's schemas (not PostgreSQL's, not Rowbell's own) this role may change.
WRITABLE_SQL = """
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rowbell')
  AND n.nspname NOT LIKE 'pg\\_%%'
  AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
       OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
ORDER BY 1 LIMIT %s
"""


@dataclass
class RoleRisk:
    role: str
    superuser: bool = False
    creates_roles_or_databases: bool = False
    bypasses_row_security: bool = False
    memberships: list[str] = field(default_factory=list)
    writable_tables: list[str] = field(default_factory=list)  # the first SHOWN_TABLES + 1

    @property
    def warnings(self) -> list[str]:
        """Plain sentences, the worst first; [] for a least-privilege role."""
        found = []
        if self.superuser:
            found.append(
                f"“{self.role}” is a superuser. Rowbell runs data queries read-only, but a superuser can still "
                "end other sessions, read server files or change settings through functions that read-only "
                "transactions allow; Rowbell's own checks are the only thing in the way."
            )
        if self.writable_tables:
            shown = ", ".join(self.writable_tables[:SHOWN_TABLES])
            more = " and more" if len(self.writable_tables) > SHOWN_TABLES else ""
            found.append(f"“{self.role}” can change rows of your tables ({shown}{more}).")
        if self.memberships:
            found.append(f"“{self.role}” is a member of {', '.join(self.memberships)}.")
        if self.creates_roles_or_databases and not self.superuser:
            found.append(f"“{self.role}” can create roles or databases.")
        if self.bypasses_row_security and not self.superuser:
            found.append(f"“{self.role}” bypasses row-level security.")
        return found


def role_risk(conn: psycopg.Connection) -> RoleRisk:
    """What the connected role can do beyond reading (one round trip each; safe on a read-only session)."""
    row = one_row(conn.execute(ROLE_SQL, (list(RISKY_MEMBERSHIPS),)))
    role, superuser, createrole, createdb, bypassrls, memberships = row
    writable = [r[0] for r in conn.execute(WRITABLE_SQL, (SHOWN_TABLES + 1,)).fetchall()]
    return RoleRisk(
        role=role,
        superuser=superuser,
        creates_roles_or_databases=createrole or createdb,
        bypasses_row_security=bypassrls,
        memberships=[] if superuser else list(memberships),
        writable_tables=writable,
    )
