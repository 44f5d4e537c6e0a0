"""Opening a published workflow writes nothing: the builder shows the live version until the first change,
and that change (a save, an added or deleted step) is what starts the draft, on the draft's copy."""

from __future__ import annotations

import pytest

from tests.builder.test_builder_views import save
from tests.engine.conftest import build_workflow, email, webhook
from workflows.models import Step, WorkflowVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(tenant_a):
    return build_workflow(tenant_a, webhook([email(name="Welcome", subject="Welcome, {{ item.name }}")]))


def published_step(workflow, name: str) -> Step:
    return Step.objects.get(version=workflow.published_version, name=name)


def test_opening_the_builder_and_a_step_creates_no_version(owner_client, live):
    welcome = published_step(live, "Welcome")
    before = WorkflowVersion.objects.count()
    page = owner_client.get(f"/workflows/{live.pk}/")
    panel = owner_client.get(f"/workflows/{live.pk}/steps/{welcome.pk}/")
    with_step = owner_client.get(f"/workflows/{live.pk}/", {"step": welcome.pk})
    assert (page.status_code, panel.status_code, with_step.status_code) == (200, 200, 200)
    assert WorkflowVersion.objects.count() == before
    assert not live.versions.filter(state=WorkflowVersion.State.DRAFT).exists()
    assert "your first change starts a draft" in page.content.decode()
    assert f'id="node-{welcome.pk}"' in page.content.decode()


def test_the_first_save_starts_the_draft_and_leaves_the_live_version_alone(owner_client, live):
    welcome = published_step(live, "Welcome")
    owner_client.get(f"/workflows/{live.pk}/steps/{welcome.pk}/")
    response = save(owner_client, live, welcome, subject="Hi {{ item.name }}", changed="config-subject")
    assert response.status_code == 200
    draft = live.versions.get(state=WorkflowVersion.State.DRAFT)
    assert draft.steps.get(key=welcome.key).config["subject"] == "Hi {{ item.name }}"
    welcome.refresh_from_db()
    assert welcome.config["subject"] == "Welcome, {{ item.name }}"
    assert "stale" not in response.content.decode().lower()  # the copy kept the revision the page showed
    # The page still names the published step: the next save goes to the same draft, not a new one.
    save(owner_client, live, welcome, subject="Hey {{ item.name }}", changed="config-subject")
    assert live.versions.filter(state=WorkflowVersion.State.DRAFT).count() == 1
    assert draft.steps.get(key=welcome.key).config["subject"] == "Hey {{ item.name }}"
    # Once a draft exists, the published step's id opens the draft's copy.
    panel = owner_client.get(f"/workflows/{live.pk}/steps/{welcome.pk}/")
    assert "Hey {{ item.name }}" in panel.content.decode()


def test_adding_below_a_published_step_adds_it_to_the_new_draft(owner_client, live):
    welcome = published_step(live, "Welcome")
    response = owner_client.post(
        f"/workflows/{live.pk}/steps/add/", {"kind": "wait", "mode": "child", "anchor": welcome.pk}
    )
    assert response.status_code == 200
    draft = live.versions.get(state=WorkflowVersion.State.DRAFT)
    wait = draft.steps.get(kind="wait")
    assert wait.parent == draft.steps.get(key=welcome.key)
    assert not live.published_version.steps.filter(kind="wait").exists()


def test_another_tenant_cannot_reach_a_published_step(outsider_client, live):
    welcome = published_step(live, "Welcome")
    assert outsider_client.get(f"/workflows/{live.pk}/steps/{welcome.pk}/").status_code == 404
    before = WorkflowVersion.objects.count()
    response = save(outsider_client, live, welcome, subject="x", changed="config-subject")
    assert response.status_code == 404
    assert WorkflowVersion.objects.count() == before


def test_opening_the_test_page_creates_no_version_and_a_test_run_starts_the_draft(
    owner_client, live, redis_conn
):
    before = WorkflowVersion.objects.count()
    page = owner_client.get(f"/workflows/{live.pk}/test/")
    assert page.status_code == 200 and WorkflowVersion.objects.count() == before
    response = owner_client.post(
        f"/workflows/{live.pk}/test/",
        {"item": '{"email": "ada@example.com", "name": "Ada"}'},
    )
    assert response.status_code == 302, response.content
    assert live.versions.filter(state=WorkflowVersion.State.DRAFT).count() == 1


def test_the_first_save_updates_the_node_on_the_page_showing_the_live_version(owner_client, live):
    """The canvas drew the live version's nodes: the first save (which starts the draft) must update those
    nodes, not the draft copy's ids, which are not on the page until it is drawn again."""
    welcome = published_step(live, "Welcome")
    response = save(
        owner_client, live, welcome, name="Hello there", subject="Hi", changed="name,config-subject"
    )
    body = response.content.decode()
    draft_copy = live.versions.get(state=WorkflowVersion.State.DRAFT).steps.get(key=welcome.key)
    assert draft_copy.pk != welcome.pk
    assert f'hx-swap-oob="innerHTML:.step-name-{welcome.pk}">Hello there<' in body
    assert f'id="node-summary-{welcome.pk}" hx-swap-oob="true">' in body
    assert f'id="node-warn-{welcome.pk}"' in body
    assert f"step-name-{draft_copy.pk}" not in body
    # Later saves from the same page post to the same id and keep updating the same node.
    again = save(owner_client, live, welcome, name="Hello again", subject="Hi", changed="name")
    assert f'innerHTML:.step-name-{welcome.pk}">Hello again<' in again.content.decode()


def test_a_panel_redrawn_by_the_first_save_keeps_posting_to_the_node_on_the_page(owner_client, live):
    """A stale first save redraws the panel: its form must keep saving to the node the canvas shows."""
    welcome = published_step(live, "Welcome")
    response = save(owner_client, live, welcome, revision=-1, subject="Hi", changed="config-subject")
    body = response.content.decode()
    assert f'hx-post="/workflows/{live.pk}/steps/{welcome.pk}/save/"' in body
    assert f'id="node-summary-{welcome.pk}"' in body
