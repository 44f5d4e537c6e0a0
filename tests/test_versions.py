"""Workflow versions: drafts, publishing, immutability, archiving."""

import pytest

from runs.engine import start_run
from workflows.models import PublishedVersionImmutable, Step, Workflow, WorkflowVersion
from workflows.publishing import (
    archive_or_delete,
    get_or_create_draft,
    publish,
    restore_as_draft,
    unpublish,
)
from workflows.steps.base import PublishError


def add_step(version, kind="webhook_trigger", parent=None, name="", config=None, position=0):
    return Step.objects.create(
        tenant_id=version.tenant_id,
        version=version,
        parent=parent,
        kind=kind,
        name=name,
        config=config or {},
        position=position,
    )


@pytest.fixture
def workflow(tenant_a, owner):
    return Workflow.objects.create(tenant=tenant_a, name="Onboarding", created_by=owner)


def tree(version):
    return sorted(
        (s.name, s.kind, s.parent.name if s.parent else None, s.position, str(s.key))
        for s in version.steps.all()
    )


def test_publish_edit_publish_gives_two_versions_with_their_own_steps(workflow, owner):
    draft = get_or_create_draft(workflow)
    root = add_step(draft, name="On signup")
    add_step(draft, kind="webhook_trigger", parent=None, name="extra").delete()
    v1 = publish(workflow, owner)
    assert (v1.number, v1.state, v1.published_by) == (1, "published", owner)
    assert v1.published_at is not None
    v1_tree = tree(v1)

    draft2 = get_or_create_draft(workflow)
    assert draft2.pk != v1.pk and draft2.based_on_id == v1.pk
    # The copy keeps each step's key, so the versions can be compared step by step.
    assert tree(draft2) == v1_tree
    copied_root = draft2.steps.get(parent__isnull=True)
    copied_root.name = "On signup (renamed)"
    copied_root.save()

    v2 = publish(workflow, owner, sandbox=True)
    workflow.refresh_from_db()
    assert (v2.number, v2.sandbox, workflow.published_version_id) == (2, True, v2.pk)
    assert [s.name for s in v2.steps.all()] == ["On signup (renamed)"]
    assert tree(WorkflowVersion.objects.get(pk=v1.pk)) == v1_tree
    assert root.key == copied_root.key


def test_a_published_version_refuses_changes(workflow, owner):
    draft = get_or_create_draft(workflow)
    step = add_step(draft, name="trigger")
    version = publish(workflow, owner)
    step.refresh_from_db()

    step.name = "changed"
    with pytest.raises(PublishedVersionImmutable, match="published and cannot change"):
        step.save()
    with pytest.raises(PublishedVersionImmutable):
        step.delete()
    with pytest.raises(PublishedVersionImmutable):
        Step.objects.filter(version=version).update(name="changed")
    with pytest.raises(PublishedVersionImmutable):
        Step.objects.filter(version=version).delete()
    with pytest.raises(PublishedVersionImmutable):
        add_step(version, name="new")
    with pytest.raises(PublishedVersionImmutable):
        Step.objects.bulk_create([Step(tenant_id=version.tenant_id, version=version, kind="webhook_trigger")])
    assert [s.name for s in version.steps.all()] == ["trigger"]


def test_one_draft_at_a_time(workflow):
    assert get_or_create_draft(workflow).pk == get_or_create_draft(workflow).pk
    assert workflow.versions.filter(state="draft").count() == 1


def test_publish_refuses_an_invalid_draft_and_names_the_steps(workflow, owner):
    with pytest.raises(PublishError) as empty:
        publish(workflow, owner)
    assert "no draft" in empty.value.step_errors[None]["tree"]

    draft = get_or_create_draft(workflow)
    with pytest.raises(PublishError) as no_trigger:
        publish(workflow, owner)
    assert "Add a trigger" in no_trigger.value.step_errors[None]["tree"]

    root = add_step(draft, name="trigger")
    bad = add_step(draft, kind="no_such_kind", parent=root, name="mystery")
    with pytest.raises(PublishError) as unknown:
        publish(workflow, owner)
    assert unknown.value.step_errors == {bad.pk: {"kind": "Unknown step kind “no_such_kind”."}}
    draft.refresh_from_db()
    assert draft.is_draft and workflow.versions.count() == 1


def test_restore_as_draft_copies_an_old_version(workflow, owner):
    draft = get_or_create_draft(workflow)
    add_step(draft, name="first")
    v1 = publish(workflow, owner)
    draft = get_or_create_draft(workflow)
    step = draft.steps.get()
    step.name = "second"
    step.save()
    publish(workflow, owner)

    restored = restore_as_draft(v1)
    assert restored.is_draft and restored.based_on_id == v1.pk
    assert [s.name for s in restored.steps.all()] == ["first"]


def test_unpublish_and_archive(workflow, owner, tenant_a):
    draft = get_or_create_draft(workflow)
    add_step(draft, name="trigger")
    publish(workflow, owner)
    unpublish(workflow)
    workflow.refresh_from_db()
    assert workflow.published_version is None

    # A workflow that never ran is deleted...
    assert archive_or_delete(workflow) == "deleted"
    assert not Workflow.objects.filter(pk=workflow.pk).exists()

    # ...one with runs is archived, so its history stays readable.
    ran = Workflow.objects.create(tenant=tenant_a, name="Ran")
    add_step(get_or_create_draft(ran), name="trigger")
    publish(ran, owner)
    start_run(ran, {"id": 1}, "event-1")
    assert archive_or_delete(ran) == "archived"
    ran.refresh_from_db()
    assert (ran.status, ran.published_version) == ("archived", None)
