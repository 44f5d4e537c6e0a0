"""Step preview: one step applied to one item, without running the workflow or sending anything.

Each kind makes its own preview (StepKind.preview): a message step its rendered message, a data query
its first rows and total count (read-only), a condition true or false, a wait when the item would go on.
The builder's panel (workflows/views/panel.py) and the preview page (runs/views/preview.py) show it.
"""

from __future__ import annotations

from typing import Any

from integrations import clock
from integrations.failures import Failure
from integrations.templating import TemplateError
from runs.engine.context import BatchResources, StepContext
from runs.models import Run, StepExecution
from workflows.models import Step
from workflows.steps import ConfigError
from workflows.steps.base import StepPreview


def preview_step(step: Step, item: dict[str, Any]) -> StepPreview:
    """The step's own preview of `item` (StepKind.preview), or the reason it cannot be made."""
    try:
        kind = step.step_kind
    except ConfigError as exc:
        return StepPreview(shows="item", error=" ".join(exc.errors.values()))
    run = Run(
        tenant_id=step.tenant_id,
        workflow=step.version.workflow,
        version=step.version,
        event_key="preview",
        is_test=True,
        payload=item,
    )
    ctx = StepContext(run=run, step=step, now=clock.now(), resources=BatchResources())
    try:
        return kind.preview(ctx, item)
    except (Failure, TemplateError) as exc:
        return StepPreview(shows="item", error=exc.message)
    except ConfigError as exc:  # an unfinished draft: its typed settings lack what the step needs
        error = (
            f"The step's settings are incomplete ({', '.join(exc.errors)} is missing); fix the step first."
        )
        return StepPreview(shows="item", error=error)
    except KeyError as exc:
        error = f"The step's settings are incomplete ({exc.args[0]} is missing); fix the step first."
        return StepPreview(shows="item", error=error)
    finally:
        ctx.resources.close()


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
