"""The publish dialog says what a digest's changed window does to its open buckets: they release under
the settings they opened with; items of runs started afterwards open new buckets (#23)."""

from __future__ import annotations

from django.urls import reverse

from runs.digest_publish import digest_window_notes
from runs.engine import start_run
from runs.models import DigestBucket
from tests.engine.conftest import build_workflow, email, settle, webhook, work
from workflows.publishing import get_or_create_draft, publish


def comment_digest(tenant):
    step = {
        "kind": "digest",
        "name": "Comments per post",
        "config": {"key": "post {{ item.post }}", "window": "fixed", "amount": 1, "unit": "hours"},
        "children": [email(to="{{ item.digest.first.email }}", subject="{{ item.digest.count }} new")],
    }
    return build_workflow(tenant, webhook([step]), name="Comment digest")


def with_draft_window(workflow, **window):
    draft = get_or_create_draft(workflow)
    step = draft.steps.get(kind="digest")
    step.config = {**step.config, **window}
    step.save()
    return draft


def dialog(client, workflow) -> str:
    answer = client.get(reverse("runs:publish_dialog", args=[workflow.pk]))
    assert answer.status_code == 200
    return " ".join(answer.content.decode().split())


def test_a_changed_window_with_open_buckets_says_they_release_as_they_opened(
    clock, smtp, owner_client, tenant_a
):
    workflow = comment_digest(tenant_a)
    for post in (1, 2, 3):
        start_run(workflow, {"email": "ann@x.org", "post": post}, f"e{post}")
    work(clock)
    assert DigestBucket.objects.filter(released_at=None).count() == 3
    draft = with_draft_window(workflow, amount=2)

    said = dialog(owner_client, workflow)
    assert (
        "<strong>Comments per post</strong>: 3 open buckets release under the settings they opened with"
        " (per post {{ item.post }}, 1 hour). Items of runs started after publishing open new buckets"
        " (per post {{ item.post }}, 2 hours)" in said.replace("&#x27;", "'")
    )
    # Publishing changes no open bucket's release.
    before = set(DigestBucket.objects.values_list("release_at", flat=True))
    publish(workflow)
    assert set(DigestBucket.objects.values_list("release_at", flat=True)) == before
    assert [n.open_buckets for n in digest_window_notes(workflow, draft)] == []  # draft published: none


def test_one_open_bucket_is_said_in_the_singular_and_a_removed_step_too(clock, smtp, owner_client, tenant_a):
    workflow = comment_digest(tenant_a)
    start_run(workflow, {"email": "ann@x.org", "post": 1}, "e1")
    work(clock)
    draft = get_or_create_draft(workflow)
    draft.steps.filter(kind__in=["digest", "send_email"]).delete()
    said = dialog(owner_client, workflow)
    assert (
        "1 open bucket releases under the settings it opened with (per post {{ item.post }}, 1 hour)." in said
    )
    assert "This version removes the step: no new items join." in said


def test_nothing_is_said_without_open_buckets_or_without_a_window_change(clock, smtp, owner_client, tenant_a):
    workflow = comment_digest(tenant_a)
    with_draft_window(workflow, amount=2)
    assert 'data-testid="digest-window-notes"' not in dialog(owner_client, workflow)  # no open bucket
    start_run(workflow, {"email": "ann@x.org", "post": 1}, "e1")
    work(clock)
    assert 'data-testid="digest-window-notes"' in dialog(owner_client, workflow)
    with_draft_window(workflow, amount=1, key="{{ item.email }}")  # the window as live: only the key changed
    assert 'data-testid="digest-window-notes"' not in dialog(owner_client, workflow)
    with_draft_window(workflow, amount=1, key="post {{ item.post }}", release_at_count=10)
    assert 'data-testid="digest-window-notes"' in dialog(owner_client, workflow)
    settle(clock)  # released: nothing open to speak of
    assert 'data-testid="digest-window-notes"' not in dialog(owner_client, workflow)
