"""Publish preview tests use the engine's fixtures (real PostgreSQL commits, Redis, a patchable clock)
and a few helpers: past runs with given payloads, and a draft changed step by step."""

from __future__ import annotations

import pytest

from consent.models import Topic
from runs.engine import start_runs
from runs.publish_preview.job import run_preview, start_preview
from tests.api.conftest import api, api_key, outsider_api  # noqa: F401 (fixtures)
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.engine.conftest import clock, smtp, work  # noqa: F401 (fixtures)
from workflows.models import PublishPreview, Step, Workflow
from workflows.publishing import get_or_create_draft
from workflows.steps import get_kind


@pytest.fixture
def tips(tenant_a) -> Topic:
    return Topic.objects.create(tenant=tenant_a, name="Tips")


def past_runs(workflow: Workflow, payloads: list[dict], *, worked: bool = False) -> None:
    """Real (not test) runs of the live version with these payloads; `worked` runs them for real too."""
    start_runs(workflow, [(p, f"event-{i}") for i, p in enumerate(payloads)], queue=worked)
    if worked:
        work()


def draft_step(workflow: Workflow, kind: str) -> Step:
    return get_or_create_draft(workflow).steps.get(kind=kind)


def insert_above(
    workflow: Workflow,
    child_kind: str,
    kind: str,
    config: dict,
    name: str = "",
    child_name: str | None = None,
) -> Step:
    """A new draft step between `child_kind`'s step (the one named `child_name`, if given) and its parent."""
    draft = get_or_create_draft(workflow)
    child = draft.steps.get(kind=child_kind, **({"name": child_name} if child_name is not None else {}))
    step = Step.objects.create(
        tenant_id=workflow.tenant_id,
        version=draft,
        parent_id=child.parent_id,
        position=child.position,
        kind=kind,
        name=name,
        config=get_kind(kind).validate(config),
    )
    Step.objects.filter(pk=child.pk).update(parent=step, position=0)
    return step


def preview_now(workflow: Workflow, events: int = 200) -> PublishPreview:
    """Start a preview of the draft and run its job here (as a worker would)."""
    preview = start_preview(workflow, get_or_create_draft(workflow), events=events, by="test")
    run_preview(preview.pk)
    preview.refresh_from_db()
    return preview
