"""Drafts, publishing and unpublishing. A run stays pinned to the version it started on."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from workflows import row_watches
from workflows.datasource_usage import lock_datasources_of
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.paths import path_problem
from workflows.preview_token import check_token
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import PublishError


def latest_published(workflow: Workflow) -> WorkflowVersion | None:
    return workflow.versions.filter(state=WorkflowVersion.State.PUBLISHED).order_by("-number").first()


def get_draft(workflow: Workflow) -> WorkflowVersion | None:
    return workflow.versions.filter(state=WorkflowVersion.State.DRAFT).first()


def get_or_create_draft(workflow: Workflow) -> WorkflowVersion:
    """The draft the builder edits; a new one starts as a copy of the last published version."""
    draft = get_draft(workflow)
    if draft is not None:
        return draft
    source = latest_published(workflow)
    try:
        with transaction.atomic():
            # The copy keeps the revision the builder showed, so the edit that starts it is not stale.
            draft = WorkflowVersion.objects.create(
                tenant_id=workflow.tenant_id,
                workflow=workflow,
                based_on=source,
                revision=source.revision if source is not None else 0,
            )
            if source is not None:
                copy_steps(source, draft)
    except IntegrityError:
        # Another request created the draft first: use theirs.
        draft = get_draft(workflow)
        if draft is None:
            raise
    return draft


def copy_steps(source: WorkflowVersion, target: WorkflowVersion) -> None:
    """Copy source's tree into target, keeping each step's key so versions can be compared.

    One bulk insert per level of the tree: a level's parents get their new ids before their children.
    """
    target.ensure_editable()
    by_parent: dict[int | None, list[Step]] = {}
    for step in source.steps.order_by("id"):
        by_parent.setdefault(step.parent_id, []).append(step)
    copies: dict[int | None, Step | None] = {None: None}
    level = by_parent.get(None, [])
    while level:
        new_steps = [
            Step(
                tenant_id=target.tenant_id,
                version=target,
                parent=copies[step.parent_id],
                position=step.position,
                key=step.key,
                kind=step.kind,
                name=step.name,
                config=step.config,
                path=step.path,
            )
            for step in level
        ]
        Step.objects.bulk_create(new_steps)
        copies.update({old.id: new for old, new in zip(level, new_steps, strict=True)})
        level = [child for step in level for child in by_parent.get(step.id, [])]


def validate_version(version: WorkflowVersion) -> dict[int | None, dict[str, str]]:
    """Every problem that stops publishing, keyed by step id (None for problems of the tree itself)."""
    errors: dict[int | None, dict[str, str]] = {}
    steps = list(version.steps.all())
    by_id = {step.id: step for step in steps}
    roots = [step for step in steps if step.parent_id is None]
    if not roots:
        errors[None] = {
            "tree": "Add a trigger: a workflow starts from a database row, a webhook or a schedule."
        }
    elif len(roots) > 1:
        errors[None] = {
            "tree": "A workflow has exactly one trigger at the top; move the other steps under it."
        }
    for step in steps:
        try:
            kind = get_kind(step.kind)
            # With the tenant: a data source, sender, topic or layout of another workspace is refused.
            kind.validate(step.config, step.tenant_id)
        except ConfigError as exc:
            errors[step.id] = exc.errors
            continue
        if step.parent_id is None and not kind.is_trigger:
            errors.setdefault(step.id, {})["kind"] = "The first step must be a trigger."
        if step.parent_id is not None and kind.is_trigger:
            errors.setdefault(step.id, {})["kind"] = "A trigger can only be the first step."
        problem = path_problem(by_id.get(step.parent_id), step.path)
        if problem:
            errors.setdefault(step.id, {})["path"] = problem
    return errors


def publish(
    workflow: Workflow, user=None, sandbox: bool = False, preview_token: str | None = None
) -> WorkflowVersion:
    """Freeze the draft into version N, make it the live version, and install its triggers.

    With `preview_token` (the publish dialog and the REST API), the draft must still be what that
    finished preview saw: checked under the workflow's lock, so an edit cannot slip in between."""
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        draft = get_draft(locked)
        if draft is None:
            raise PublishError({None: {"tree": "There is no draft to publish: edit the workflow first."}})
        if preview_token is not None:
            check_token(locked, draft, preview_token)
        errors = validate_version(draft)
        if errors:
            raise PublishError(errors)
        if missing := lock_datasources_of(draft):
            raise PublishError(missing)
        previous = locked.published_version
        number = (locked.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        WorkflowVersion.objects.filter(pk=draft.pk).update(
            state=WorkflowVersion.State.PUBLISHED,
            number=number,
            sandbox=sandbox,
            published_at=timezone.now(),
            published_by=user,
        )
        draft.refresh_from_db()
        locked.published_version = draft
        locked.status = Workflow.Status.ACTIVE
        locked.save(update_fields=["published_version", "status", "updated_at"])
        _swap_triggers(previous, draft)
        row_watches.install_for(draft)
        transaction.on_commit(lambda: row_watches.drop_unused(locked.tenant_id))
    workflow.refresh_from_db()
    return draft


def unpublish(workflow: Workflow) -> None:
    """Stop real events from starting runs; runs in flight finish on their version."""
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        previous = locked.published_version
        if previous is not None:
            locked.published_version = None
            locked.save(update_fields=["published_version", "updated_at"])
            _swap_triggers(previous, None)
            transaction.on_commit(lambda: row_watches.drop_unused(locked.tenant_id))
    workflow.refresh_from_db()


def archive_or_delete(workflow: Workflow) -> str:
    """Delete a workflow that never ran; archive one that has runs, so its history stays readable.

    Runs are read through their foreign key's reverse name (`runs`): publishing sits below runs and
    imports nothing of it."""
    unpublish(workflow)
    if workflow.runs.exists():
        Workflow.objects.filter(pk=workflow.pk).update(status=Workflow.Status.ARCHIVED)
        return "archived"
    workflow.delete()
    return "deleted"


def discard_test_runs(draft: WorkflowVersion) -> None:
    """Delete the draft's test runs before its steps go: they pin those steps, and they tested a shape
    that no longer exists."""
    draft.ensure_editable()
    draft.runs.filter(is_test=True).delete()


def delete_draft_step(step: Step) -> None:
    """Delete a draft step and its subtree (the tree's foreign key cascades)."""
    discard_test_runs(step.version)
    step.delete()


def restore_as_draft(version: WorkflowVersion) -> WorkflowVersion:
    """Replace the workflow's draft with a copy of an older version."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=version.workflow_id)
        draft = get_or_create_draft(workflow)
        discard_test_runs(draft)
        draft.steps.filter(parent__isnull=True).delete()
        copy_steps(version, draft)
        draft.based_on = version
        draft.save(update_fields=["based_on"])
    return draft


def _swap_triggers(previous: WorkflowVersion | None, current: WorkflowVersion | None) -> None:
    """Let trigger kinds install what the new version needs and remove what the old one had."""
    old_root = previous.root_step() if previous else None
    new_root = current.root_step() if current else None
    if old_root is not None and (new_root is None or new_root.kind != old_root.kind):
        get_kind(old_root.kind).on_unpublish(old_root)
        old_root = None
    if new_root is not None:
        get_kind(new_root.kind).on_publish(new_root, old_root)
