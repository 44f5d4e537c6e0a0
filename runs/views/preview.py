"""Step preview: one step applied to one item, without running the workflow or sending anything.

A message step shows its rendered message; a data query its first rows and total count (read-only,
through the same runner the engine uses); a condition true or false; a wait when the item would go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.input_guard import checks_nul_itself
from integrations import clock
from integrations.failures import Failure
from integrations.query import check_tenant_sql, compile_sql, fetch_rows
from integrations.templating import TemplateError, evaluate
from runs.engine.context import BatchResources, StepContext
from runs.models import Run, StepExecution
from runs.views.samples import live_rows, sample_item
from runs.views.testing import ItemField
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step
from workflows.steps import ConfigError
from workflows.steps.send_kind import SendKind

PREVIEW_ROWS = 10


@dataclass
class Preview:
    shows: str  # "message", "rows", "condition", "wait" or "item"
    error: str = ""
    channel: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    passed: bool | None = None
    due: datetime | None = None


def preview_step(step: Step, item: dict[str, Any]) -> Preview:
    try:
        kind = step.kind_class
    except ConfigError as exc:
        return Preview(shows="item", error=" ".join(exc.errors.values()))
    run = Run(
        tenant_id=step.tenant_id,
        workflow=step.version.workflow,
        version=step.version,
        event_key="preview",
        is_test=True,
        payload=item,
    )
    ctx = StepContext(run=run, step=step, now=clock.now(), resources=BatchResources())
    shows = (
        "message"
        if isinstance(kind, SendKind)
        else {"data_query": "rows", "condition": "condition", "wait": "wait"}.get(step.kind, "item")
    )
    result = Preview(shows=shows)
    try:
        if shows == "message":
            result.channel = kind.channel
            result.content, _transport = kind.render(ctx, item)
            skip = kind.skip_reasons(ctx, [(0, item)]).get(0)
            if skip:
                result.content = {**result.content, "skipped": f"Would be skipped: {skip[1]}"}
        elif shows == "rows":
            result.rows, result.total = query_preview(ctx, item)
        elif shows == "condition":
            result.passed = bool(evaluate(step.config["expression"], {"item": item, "run": ctx.run_context}))
        elif shows == "wait":
            result.due = kind.due_at(step.config, item, ctx.now)
        else:
            result.content = item
    except (Failure, TemplateError) as exc:
        result.error = exc.message
    except KeyError as exc:
        result.error = f"The step's settings are incomplete ({exc.args[0]} is missing); fix the step first."
    finally:
        ctx.resources.close()
    return result


def query_preview(ctx: StepContext, item: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The first rows and the total count of the step's query for this item (read-only)."""
    sql, params = compile_sql(ctx.step.config["sql"], {"item": item, "run": ctx.run_context})
    check_tenant_sql(sql)
    conn = ctx.query_connection(ctx.step.config["datasource"])
    total = fetch_rows(conn, f"SELECT count(*) AS total FROM ({sql}\n) AS preview", params)[0]["total"]
    rows = fetch_rows(conn, f"SELECT * FROM ({sql}\n) AS preview LIMIT {PREVIEW_ROWS}", params)
    return rows, total


def last_input(step: Step) -> dict[str, Any] | None:
    """What this step (the same step in any version) last received, so a preview starts from real data."""
    execution = (
        StepExecution.objects.filter(
            tenant_id=step.tenant_id, step__key=step.key, step__version__workflow_id=step.version.workflow_id
        )
        .order_by("-id")
        .only("input")
        .first()
    )
    return execution.input if execution is not None else None


@checks_nul_itself
@login_required
def step_preview(request: HttpRequest, step_id: int) -> HttpResponse:
    tenant = request.tenant
    step = get_for_tenant_or_404(Step.objects.select_related("version__workflow"), tenant, pk=step_id)
    workflow, root = step.version.workflow, step.version.root_step()
    field_ = ItemField(required=False)
    text = request.POST.get("item") or request.GET.get("item")
    preview, error = None, ""
    if text is None:
        item = last_input(step) or sample_item(tenant, workflow, root)
        text = json.dumps(item, indent=2, ensure_ascii=False)
    if request.method == "POST" or request.GET.get("item"):
        try:
            item = field_.clean(text)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            preview = preview_step(step, item)
    context = {
        "step": step,
        "workflow": workflow,
        "item_text": text,
        "preview": preview,
        "item_error": error,
        "search": request.GET.get("search", "")[:200],
    }
    if root is not None and root.kind == "database_trigger":
        context["live"] = live_rows(tenant, root, context["search"])
    template = "runs/_preview_result.html" if request.htmx else "runs/step_preview.html"
    return render(request, template, context)
