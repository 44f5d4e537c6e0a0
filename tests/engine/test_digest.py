"""Digest step: one bucket per key and window, released once through the ledger."""

from __future__ import annotations

from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import Delivery, DigestBucket, DigestItem, Run, StepExecution
from tests.engine.conftest import build_workflow, email, settle, webhook, work


def digest(children=None, **config) -> dict:
    base = {"key": "{{ item.email }}", "window": "fixed", "amount": 1, "unit": "hours"}
    return {"kind": "digest", "config": {**base, **config}, "children": children or []}


def digest_email(**extra) -> dict:
    return email(
        to="{{ item.digest.first.email }}",
        subject="{{ item.digest.count }} new comments",
        text="{% for c in item.digest['items'] %}{{ c.name }};{% endfor %}",
        **extra,
    )


def test_items_of_one_key_release_one_message_with_every_item(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([digest_email()])]))
    for n in range(5):
        start_run(workflow, {"email": "ann@example.com", "name": f"c{n}"}, f"evt-{n}")
    work(clock)
    assert smtp.recipients() == []
    bucket = DigestBucket.objects.get()
    assert bucket.items.count() == 5 and bucket.released_at is None
    settle(clock)
    assert len(smtp.messages) == 1
    assert Delivery.objects.get().content["subject"] == "5 new comments"
    assert DigestBucket.objects.get().released_at is not None
    assert not StepExecution.objects.filter(status__in=StepExecution.OPEN).exists()


def test_two_keys_are_never_merged(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([digest_email()])]))
    for n in range(6):
        start_run(workflow, {"email": f"user{n % 2}@example.com", "name": f"c{n}"}, f"evt-{n}")
    settle(clock)
    subjects = sorted(d.content["subject"] for d in Delivery.objects.all())
    assert subjects == ["3 new comments", "3 new comments"]
    assert sorted(smtp.recipients()) == ["user0@example.com", "user1@example.com"]


def test_an_item_after_the_release_opens_the_next_window(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([digest_email()])]))
    start_run(workflow, {"email": "ann@example.com", "name": "a"}, "evt-1")
    settle(clock)
    start_run(workflow, {"email": "ann@example.com", "name": "b"}, "evt-2")
    settle(clock)
    assert [d.content["subject"] for d in Delivery.objects.order_by("id")] == [
        "1 new comments",
        "1 new comments",
    ]
    assert list(DigestBucket.objects.order_by("generation").values_list("generation", flat=True)) == [1, 2]


def test_release_early_at_n_items(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([digest_email()], release_at_count=3)]))
    for n in range(3):
        start_run(workflow, {"email": "ann@example.com", "name": f"c{n}"}, f"evt-{n}")
    work(clock)
    clock.travel(seconds=60)
    sweep()
    work(clock)
    assert Delivery.objects.get().content["subject"] == "3 new comments"


def test_a_retried_join_adds_nothing_and_a_rerun_release_sends_once(clock, smtp, tenant_a):
    from runs.engine.context import BatchResources, StepContext
    from runs.engine.digest import join_bucket, release_bucket

    workflow = build_workflow(tenant_a, webhook([digest([digest_email()])]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "a"}, "evt-1")
    work(clock)
    joined = StepExecution.objects.get(run=run, step__kind="digest", item_key__startswith="digest/")
    join_execution = StepExecution.objects.filter(run=run, step__kind="digest").exclude(pk=joined.pk).get()
    ctx = StepContext(
        run=run, step=join_execution.step, now=clock.now, resources=BatchResources(), execution=join_execution
    )
    again = join_bucket(ctx, join_execution.step, {"email": "ann@example.com"}, "ann@example.com")
    assert again.added is False and again.count == 1
    assert DigestItem.objects.count() == 1
    bucket = DigestBucket.objects.get()
    first = release_bucket(bucket.pk, clock.now)
    second = release_bucket(bucket.pk, clock.now)
    assert first == second and first["digest"]["count"] == 1
    settle(clock)
    assert Delivery.objects.count() == 1
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_send_the_first_at_once_then_digest_the_rest_of_the_window(clock, smtp, tenant_a):
    """The first item of a key in a window goes on at once (as a digest of one); the later ones make the
    digest; once the window released, the next item is again the first of a new window."""
    workflow = build_workflow(tenant_a, webhook([digest([digest_email()], first_at_once=True)]))
    start_run(workflow, {"email": "ann@example.com", "name": "c0"}, "evt-0")
    start_run(workflow, {"email": "bob@example.com", "name": "b0"}, "evt-b")
    work(clock)
    assert sorted(d.content["subject"] for d in Delivery.objects.all()) == ["1 new comments"] * 2
    assert Delivery.objects.get(recipient="ann@example.com").content["text"] == "c0;"
    for n in range(1, 4):
        start_run(workflow, {"email": "ann@example.com", "name": f"c{n}"}, f"evt-{n}")
    work(clock)
    assert Delivery.objects.count() == 2  # the rest wait for the window
    settle(clock)
    texts = [d.content["text"] for d in Delivery.objects.filter(recipient="ann@example.com").order_by("id")]
    assert texts == ["c0;", "c1;c2;c3;"]  # the first is not sent twice
    assert Delivery.objects.filter(recipient="bob@example.com").count() == 1  # a digest of none sends nothing
    start_run(workflow, {"email": "ann@example.com", "name": "c4"}, "evt-4")
    work(clock)
    assert Delivery.objects.filter(recipient="ann@example.com").order_by("-id")[0].content["text"] == "c4;"


def test_a_retried_first_item_passes_again_and_never_joins_its_digest(clock, smtp, tenant_a):
    from runs.engine.context import BatchResources, StepContext
    from runs.engine.digest import join_bucket

    workflow = build_workflow(tenant_a, webhook([digest([digest_email()], first_at_once=True)]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "a"}, "evt-1")
    work(clock)
    join_execution = StepExecution.objects.get(run=run, step__kind="digest", item_key="0")
    ctx = StepContext(
        run=run, step=join_execution.step, now=clock.now, resources=BatchResources(), execution=join_execution
    )
    again = join_bucket(
        ctx, join_execution.step, {"email": "ann@example.com"}, "ann@example.com", first_passes=True
    )
    assert again.passed is True and again.added is False and again.count == 0
    start_run(workflow, {"email": "ann@example.com", "name": "b"}, "evt-2")
    settle(clock)
    assert [d.content["text"] for d in Delivery.objects.order_by("id")] == ["a;", "b;"]


def test_the_first_at_once_option_reads_back_and_is_off_by_default():
    from workflows.steps import get_kind

    kind = get_kind("digest")
    form = kind.form_class(
        {"key": "{{ item.email }}", "window": "fixed", "amount": "2", "unit": "hours", "first_at_once": "on"}
    )
    assert form.is_valid(), form.errors
    assert kind.summary({**form.cleaned_data}) == "per {{ item.email }}, 2 hours, first at once"
    assert "first at once" not in kind.summary({"key": "k", "amount": 1, "unit": "hours"})
    bad = kind.form_class(
        {"key": "k", "window": "fixed", "amount": "1", "unit": "hours", "first_at_once": "maybe"}
    )
    assert not bad.is_valid() and "first_at_once" in bad.errors
