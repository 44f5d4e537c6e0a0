"""The blast radius of a draft, measured now, read-only:

- for each fan-out data query (a schedule's query, or a fan-out below any trigger), the query run now
  on the live data and, for each send step below it, how many it would message and how many of those
  the send path would skip (suppressed, unsubscribed, over budget): the send kind's own `skip_reasons`,
  the check a real batch makes, so the numbers cannot drift from what a send does;
- for a database trigger, how many of the table's rows of the last N days would have started a run
  (counted by the table's creation-time column), next to how many runs the live version started.

Conditions between the query and the send step are not applied (they may read what earlier steps
produce): the figures are an upper bound, and the page says so.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from django.conf import settings

from integrations import clock
from integrations.datasources import list_columns
from integrations.failures import Failure
from integrations.models import DataSource
from integrations.query import QueryError, check_tenant_sql, compile_sql, connect_for_tenant_sql, fetch_rows
from integrations.templating import TemplateError
from runs.engine.context import BatchResources, StepContext
from runs.models import Run
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import ConfigError, get_kind
from workflows.steps.send_kind import SendKind

TIME_COLUMNS = ("created_at", "inserted_at", "created", "created_on", "updated_at")


def blast_radius(workflow: Workflow, draft: WorkflowVersion, item: dict[str, Any], days: int) -> list[dict]:
    steps = list(draft.steps.all())
    children: dict[int | None, list[Step]] = {}
    for step in steps:
        children.setdefault(step.parent_id, []).append(step)
    found: list[dict] = []
    for step in steps:
        if step.kind == "data_query" and (step.config or {}).get("mode") == "fanout":
            found.append(_fanout(workflow, draft, step, _sends_below(step, children), item))
        elif step.kind == "database_trigger" and step.parent_id is None:
            found.append(_trigger_rows(workflow, step, days))
    return found


def _sends_below(step: Step, children: dict[int | None, list[Step]]) -> list[Step]:
    """The send steps that get the query's rows: below it, not below another fan-out."""
    sends, waiting = [], list(children.get(step.id, []))
    while waiting:
        child = waiting.pop(0)
        try:
            kind = get_kind(child.kind)
        except ConfigError:
            continue
        if isinstance(kind, SendKind):
            sends.append(child)
        if not (child.kind == "data_query" and (child.config or {}).get("mode") == "fanout"):
            waiting.extend(children.get(child.id, []))
    return sends


def _context(workflow: Workflow, draft: WorkflowVersion, step: Step, item: dict[str, Any]) -> StepContext:
    """The context of a test run that is never saved, as the step preview makes (runs/preview.py)."""
    run = Run(
        tenant_id=step.tenant_id,
        workflow=workflow,
        version=draft,
        event_key="blast",
        is_test=True,
        payload=item,
    )
    return StepContext(run=run, step=step, now=clock.now(), resources=BatchResources())


def _fanout(workflow, draft, step: Step, sends: list[Step], item: dict[str, Any]) -> dict:
    entry: dict[str, Any] = {"kind": "query", "step": step.display_name, "sends": []}
    cap = settings.PUBLISH_PREVIEW_BLAST_ROWS
    try:
        source = DataSource.objects.get(tenant_id=step.tenant_id, pk=step.config.get("datasource"))
        sql, params = compile_sql(
            (step.config.get("sql") or "").strip().rstrip(";"), {"item": item, "run": {}}
        )
        check_tenant_sql(sql)
        conn = connect_for_tenant_sql(source.connection_url)
        try:
            total = fetch_rows(conn, f"SELECT count(*) AS n FROM ({sql}\n) AS blast", params)[0]["n"]
            rows = fetch_rows(
                conn, f"SELECT * FROM ({sql}\n) AS blast LIMIT {int(cap)}", params, max_rows=cap
            )
        finally:
            conn.close()
    except (QueryError, Failure, TemplateError) as exc:
        entry["error"] = f"The query could not run now: {exc.message}"
        return entry
    except (DataSource.DoesNotExist, ValueError, TypeError):
        entry["error"] = "The query's data source is not set or no longer exists."
        return entry
    entry["rows"] = total
    entry["counted"] = len(rows)
    for send in sends:
        entry["sends"].append(_recipients(workflow, draft, send, rows))
    return entry


def _recipients(workflow, draft, send: Step, rows: list[dict[str, Any]]) -> dict:
    """How many of `rows` this send step would message, and what the send path would skip."""
    kind = get_kind(send.kind)
    assert isinstance(kind, SendKind)  # _sends_below keeps send steps only
    ctx = _context(workflow, draft, send, rows[0] if rows else {})
    try:
        pairs = list(enumerate(rows))
        skips = kind.skip_reasons(ctx, pairs) if pairs else {}
        addresses = set()
        for index, row in pairs:
            if index in skips:
                continue
            try:
                content, _transport = kind.render(ctx, row)
                addresses.add(kind.recipient(content).strip().lower())
            except (Failure, TemplateError):
                continue
    finally:
        ctx.resources.close()
    reasons = Counter(_reason(reason) for _recipient, reason in skips.values())
    return {
        "step": send.display_name,
        "would_send": len(rows) - len(skips),
        "recipients": len(addresses),
        "skipped": len(skips),
        "suppressed": reasons.get("suppressed", 0),
        "unsubscribed": reasons.get("unsubscribed", 0),
        "other_skips": sum(n for r, n in reasons.items() if r not in ("suppressed", "unsubscribed")),
    }


def _reason(reason: Any) -> str:
    text = str(reason).lower()
    return next((word for word in ("unsubscribed", "suppressed") if word in text), "other")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _trigger_rows(workflow: Workflow, step: Step, days: int) -> dict:
    config = step.config or {}
    table = config.get("table") or ""
    schema = config.get("schema") or "public"
    since = clock.now() - timedelta(days=days)
    live_runs = Run.objects.filter(workflow=workflow, is_test=False, created_at__gte=since).count()
    entry: dict[str, Any] = {
        "kind": "trigger",
        "step": step.display_name,
        "table": f"{schema}.{table}",
        "days": days,
        "live_runs": live_runs,
    }
    try:
        source = DataSource.objects.get(tenant_id=step.tenant_id, pk=int(config.get("datasource") or 0))
        columns = {c.name for c in list_columns(source, schema, table)}
        column = next((c for c in TIME_COLUMNS if c in columns), None)
        if column is None:
            entry["error"] = (
                f"{schema}.{table} has no creation-time column ({', '.join(TIME_COLUMNS[:3])}), so its recent "
                "rows cannot be told apart: every new row will start a run."
            )
            return entry
        sql = f"SELECT count(*) AS n FROM {_quoted(schema)}.{_quoted(table)} WHERE {_quoted(column)} >= %s"
        entry["rows"] = fetch_rows(source.connection_url, sql, [since])[0]["n"]
        entry["column"] = column
    except (QueryError, Failure) as exc:
        entry["error"] = f"The table could not be read now: {exc.message}"
    except (DataSource.DoesNotExist, ValueError, TypeError):
        entry["error"] = "The trigger's data source is not set or no longer exists."
    except Exception as exc:  # psycopg's connection errors from the introspection: say them, no 500
        entry["error"] = f"The table could not be read now: {str(exc).splitlines()[0] if str(exc) else exc}"
    return entry
