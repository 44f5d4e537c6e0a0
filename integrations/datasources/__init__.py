"""A tenant's PostgreSQL database: connecting, checking, introspecting, and installing row triggers.

The small public API (the builder's pickers and the data-source pages call these):

- `test_connection(datasource) -> ConnectionCheck`: `.ok` and a `.message` a person can act on; also
  records the result on the data source (`status`, `last_error`, `checked_at`).
- `setup_sql(role, password, database, schemas)`: the SQL a superuser runs once to create Rowbell's
  least-privilege role; `plan_from_url(url, schemas)` takes the role, password and database from the URL
  the person typed (proposing what it lacks). `test_connection` lists each missing grant with its fix.
- `server_schemas(ds)`: every schema of the database with its table count (for the schema picker).
- `list_schemas(ds)`, `list_tables(ds, schema=None)`, `list_columns(ds, schema, table)`,
  `primary_key(ds, schema, table)`: introspection for pickers and for a trigger's item shape.
- `install_trigger(ds, workflow_id, spec)` / `remove_trigger(ds, workflow_id)`: what publishing a
  database-trigger workflow does on the customer's side (integrations/datasources/triggers.py);
  `triggers_installed(ds, {workflow_id: spec})` checks them; `remove_triggers_from(url, workflow_ids)`
  cleans a data source's previous database after it was pointed at another (`same_database(url, url)`).

Which triggers should exist, and which workflows use a data source, are workflows' questions:
workflows/database_triggers.py and workflows/datasource_usage.py.
"""

from integrations.datasources.connection import (
    ConnectionCheck,
    DataSourceUnavailable,
    connect_datasource,
    describe_error,
    same_database,
    test_connection,
)
from integrations.datasources.introspection import (
    ColumnInfo,
    SchemaInfo,
    TableInfo,
    list_columns,
    list_schemas,
    list_tables,
    primary_key,
    server_schemas,
)
from integrations.datasources.setup import SetupPlan, plan_from_url, setup_sql, url_with
from integrations.datasources.triggers import (
    TriggerSpec,
    install_trigger,
    installed_triggers,
    remove_trigger,
    remove_triggers_from,
    triggers_installed,
)

__all__ = [
    "ColumnInfo",
    "ConnectionCheck",
    "DataSourceUnavailable",
    "SchemaInfo",
    "SetupPlan",
    "TableInfo",
    "TriggerSpec",
    "connect_datasource",
    "describe_error",
    "install_trigger",
    "installed_triggers",
    "list_columns",
    "list_schemas",
    "list_tables",
    "plan_from_url",
    "primary_key",
    "remove_trigger",
    "remove_triggers_from",
    "same_database",
    "server_schemas",
    "setup_sql",
    "test_connection",
    "triggers_installed",
    "url_with",
]
