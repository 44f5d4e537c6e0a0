"""Which tenant-written SQL may be sent to a customer's database: one plain SELECT, read by PostgreSQL's
own parser (pglast) before anything is sent.

This is the first of the layers in integrations/query.py (the others run on the server: extended
protocol, a READ ONLY transaction, statement_timeout). It refuses, with a message that says what to
change:
- anything but exactly one statement, and any statement but SELECT (VALUES and TABLE parse as SELECT);
- a data-modifying CTE anywhere (WITH x AS (DELETE ... RETURNING ...) SELECT ...), SELECT INTO, and
  row-locking clauses (FOR UPDATE / SHARE);
- calls of functions that act outside the query even in a read-only transaction (a superuser may run
  them): settings, signals to other sessions, server files and programs, large objects, locks that
  outlive the query, connections to other databases, replication, and functions that run SQL given as
  text (which this parser cannot see into). See DENIED_FUNCTIONS and DENIED_PREFIXES.

Functions of the customer's own schemas are not judged here: a read-only transaction stops any write
they make, and the least-privilege role of the setup SQL is the real boundary for the rest.
"""

from __future__ import annotations

import re

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

# Exact names (as PostgreSQL folds them: lower case), whatever schema they are qualified with.
DENIED_FUNCTIONS = frozenset(
    {
        "set_config",  # changes settings, e.g. default_transaction_read_only for the next query
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_log_backend_memory_contexts",
        "pg_notify",
        "pg_stat_file",
        "pg_import_system_collations",
        "loread",
        "lowrite",
        "query_to_xml",  # the *_to_xml family and ts_stat run SQL passed as a string
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "ts_stat",
        "txid_current",
        "pg_current_xact_id",
    }
)
DENIED_PREFIXES = (
    "lo_",  # large objects: lo_export writes a server file, lo_import reads one
    "dblink",  # a second connection, not read-only
    "pg_advisory",  # locks that outlive the query (and could block Rowbell's own installs)
    "pg_try_advisory",
    "pg_read_",  # server files
    "pg_ls_",
    "pg_file_",
    "pg_stat_reset",
    "pg_replication_",
    "pg_logical_",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_wal_",
    "pg_backup_",
    "pg_start_backup",
    "pg_stop_backup",
)
ONE_SELECT = "A data query is one SELECT statement"
PSYCOPG_PLACEHOLDER = re.compile(r"%%|%s")


class UnsafeQuery(Exception):
    """The SQL is not one plain, read-only SELECT; the message says what to change."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def check_select(sql: str) -> None:
    """Raise UnsafeQuery unless `sql` (psycopg's format: `%s` placeholders, `%%` for %) is one plain SELECT."""
    try:
        statements = parse_sql(postgres_text(sql))
    except ParseError as exc:
        raise UnsafeQuery(f"SQL error: {exc.args[0]}. {ONE_SELECT}, without `;`.") from exc
    if len(statements) != 1:
        raise UnsafeQuery(
            f"{ONE_SELECT}: this text holds {len(statements)} statements; remove the `;` and what follows."
        )
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        raise UnsafeQuery(
            f"Data queries are read-only: {_statement_name(statement)} is not allowed. Use SELECT only."
        )
    _Inspector()(statement)


def postgres_text(sql: str) -> str:
    """psycopg's query text as PostgreSQL receives it: `%s` becomes `$1`, `$2`…, and `%%` becomes `%`."""
    numbers = iter(range(1, sql.count("%s") + 1))
    return PSYCOPG_PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)


def denied_function(name: str) -> bool:
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


class _Inspector(Visitor):
    """Walks the whole tree: subqueries, CTEs, FROM-clause functions, expressions."""

    def visit(self, ancestors, node) -> None:
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise UnsafeQuery("Data queries are read-only: SELECT INTO creates a table. Remove INTO.")
            if node.lockingClause:
                raise UnsafeQuery("Data queries are read-only: FOR UPDATE / FOR SHARE lock rows. Remove it.")
        elif isinstance(node, ast.IntoClause):
            raise UnsafeQuery("Data queries are read-only: SELECT INTO creates a table. Remove INTO.")
        elif type(node).__name__.endswith("Stmt") and not isinstance(node, ast.RawStmt):
            raise UnsafeQuery(
                f"Data queries are read-only: {_statement_name(node)} (in a WITH clause or subquery) is not "
                "allowed. Use SELECT only."
            )
        elif isinstance(node, ast.FuncCall):
            if not node.funcname:  # the parser always names the function: refuse rather than guess
                raise UnsafeQuery("Data queries cannot call a function without a name.")
            name = node.funcname[-1].sval
            if denied_function(name):
                raise UnsafeQuery(
                    f"The function {name}() is not allowed in a data query: it acts outside the query "
                    "(settings, other sessions, server files, locks or other connections)."
                )


def _statement_name(node) -> str:
    """`InsertStmt` → "INSERT", `VariableSetStmt` → "SET", for messages."""
    names = {
        "InsertStmt": "INSERT",
        "UpdateStmt": "UPDATE",
        "DeleteStmt": "DELETE",
        "MergeStmt": "MERGE",
        "TransactionStmt": "COMMIT / ROLLBACK / BEGIN",
        "VariableSetStmt": "SET",
        "CopyStmt": "COPY",
        "CallStmt": "CALL",
        "DoStmt": "DO",
        "ExplainStmt": "EXPLAIN",
        "CreateTableAsStmt": "CREATE TABLE AS",
    }
    kind = type(node).__name__
    return names.get(kind, re.sub(r"Stmt$", "", kind).upper() or kind)
