"""What is in the customer's database: schemas, tables, columns with types, primary keys.

Every function opens a short autocommit connection whose transactions are read-only and returns plain dataclasses, so the builder can
call them from a view (and cache them if it wants). Only objects the connected role can read are listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.datasources.connection import connect_datasource

HIDDEN_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "rowbell")


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # as PostgreSQL spells it, e.g. "character varying(200)", "timestamp with time zone"
    nullable: bool
    is_primary_key: bool


def list_schemas(datasource) -> list[str]:
    """Schemas the role may use, without PostgreSQL's own and Rowbell's."""
    with connect_datasource(
        datasource, autocommit=True, application_name="rowbell-introspect", read_only=True
    ) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s) AND nspname NOT LIKE 'pg\\_%%' "
            "AND has_schema_privilege(oid, 'USAGE') ORDER BY nspname",
            (list(HIDDEN_SCHEMAS),),
        ).fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class SchemaInfo:
    name: str
    tables: int  # ordinary and partitioned tables, whether or not the role may read them yet
    usable: bool  # the role has USAGE on it


def server_schemas(datasource, connect_timeout: int | None = None) -> list[SchemaInfo]:
    """Every schema of the database, readable or not: PostgreSQL shows any role the catalog, so a role
    that may not read a schema yet can still offer it to be picked (and granted by the setup SQL)."""
    with connect_datasource(
        datasource, autocommit=True, application_name="rowbell-introspect", timeout=connect_timeout
    ) as conn:
        rows = conn.execute(
            "SELECT n.nspname, count(c.oid) FILTER (WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition), "
            "has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n "
            "LEFT JOIN pg_class c ON c.relnamespace = n.oid "
            "WHERE n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' GROUP BY n.oid, n.nspname ORDER BY 1",
            (list(HIDDEN_SCHEMAS),),
        ).fetchall()
    return [SchemaInfo(name=row[0], tables=row[1], usable=row[2]) for row in rows]


def list_tables(datasource, schema: str | None = None) -> list[TableInfo]:
    """Ordinary and partitioned tables the role can read, optionally in one schema."""
    with connect_datasource(
        datasource, autocommit=True, application_name="rowbell-introspect", read_only=True
    ) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL(%s) "
            "AND n.nspname NOT LIKE 'pg\\_%%' AND (%s::text IS NULL OR n.nspname = %s::text) "
            "AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') "
            "ORDER BY n.nspname, c.relname",
            (list(HIDDEN_SCHEMAS), schema, schema),
        ).fetchall()
    return [TableInfo(schema=row[0], name=row[1]) for row in rows]


def list_columns(datasource, schema: str, table: str) -> list[ColumnInfo]:
    """The table's columns in order, with types; [] when the table is missing or unreadable."""
    with connect_datasource(
        datasource, autocommit=True, application_name="rowbell-introspect", read_only=True
    ) as conn:
        rows = conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                   COALESCE(a.attnum = ANY(i.indkey), false)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
              AND has_table_privilege(c.oid, 'SELECT')
            ORDER BY a.attnum
            """,
            (schema, table),
        ).fetchall()
    return [ColumnInfo(name=r[0], type=r[1], nullable=r[2], is_primary_key=r[3]) for r in rows]


def primary_key(datasource, schema: str, table: str) -> list[str]:
    """The primary key's columns in key order ([] when the table has none)."""
    with connect_datasource(
        datasource, autocommit=True, application_name="rowbell-introspect", read_only=True
    ) as conn:
        rows = conn.execute(
            """
            SELECT a.attname
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s
            ORDER BY k.position
            """,
            (schema, table),
        ).fetchall()
    return [row[0] for row in rows]
