"""Digests on the run page and in the step preview (#23): an open bucket says its key, its items so far,
its first items and when it releases; a released one says when and with how many items."""

from __future__ import annotations

import json

from django.urls import reverse

from runs.engine import start_run
from runs.models import Delivery, DigestBucket
from tests.activity.conftest import steps_of
from tests.engine.conftest import build_workflow, email, settle, webhook, work


def digest(children=None, **config) -> dict:
    base = {"key": "post {{ item.post }}", "window": "fixed", "amount": 1, "unit": "hours"}
    return {"kind": "digest", "name": "Comments", "config": {**base, **config}, "children": children or []}


def commented() -> dict:
    return email(
        to="{{ item.digest.first.email }}",
        subject="{{ item.digest.count }} new comments",
        text="{% for c in item.digest['items'] %}{{ c.name }};{% endfor %}",
    )


def page(client, run, **params) -> str:
    answer = client.get(reverse("runs:run_detail", args=[run.pk]), params)
    assert answer.status_code == 200
    return " ".join(answer.content.decode().split())


def digests_of(html: str) -> str:
    """The page's digest section only (the trigger event further down shows the whole payload)."""
    start = html.index('<section class="run-digests"')
    return html[start : html.index("</section>", start)]


def test_an_open_bucket_says_its_key_items_so_far_first_items_and_release(
    clock, smtp, owner_client, tenant_a
):
    workflow = build_workflow(tenant_a, webhook([digest([commented()])]))
    runs = [
        start_run(workflow, {"email": "ann@x.org", "post": 42, "name": f"comment {n}"}, f"e{n}")
        for n in range(4)
    ]
    other = start_run(workflow, {"email": "bob@x.org", "post": 7, "name": "elsewhere"}, "o")
    work(clock)
    clock.travel(minutes=5)  # the page is read later than the items joined

    opener = page(owner_client, runs[0])
    assert (
        "Opened the digest for <strong>post 42</strong> (“Comments”): 4 items so far, releases at 10:00 (in 55 min)."
        in opener
    )
    joiner = page(owner_client, runs[2])
    opener_link = f'<a href="/activity/runs/{runs[0].pk}/">run #{runs[0].pk}</a>'
    assert (
        f"Joined the digest of {opener_link} for <strong>post 42</strong> (“Comments”): 4 items so far,"
        " releases at 10:00" in joiner
    )
    # The joining run is done but its item is not: the head says where the item waits, not "Succeeded".
    assert 'data-testid="run-status">In a digest</span>' in joiner
    assert f"Its item joined the digest of {opener_link}, releases at 10:00 (in 55 min)" in joiner
    assert 'data-state="skipped">1 joined a digest</span>' in joiner
    assert "In a digest" not in opener and "Its item joined" not in opener
    assert "First 3 of 4 items" in joiner
    for n in range(3):
        assert f"comment {n}" in joiner
    assert "comment 3" not in joiner  # only the first items are listed
    assert "post 7" not in joiner and "elsewhere" not in joiner  # another key's bucket is not this run's
    alone = page(owner_client, other)
    assert "Opened the digest for <strong>post 7</strong> (“Comments”): 1 item so far" in alone


def test_a_released_bucket_says_when_and_how_many(clock, smtp, owner_client, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([commented()])]))
    runs = [
        start_run(workflow, {"email": "ann@x.org", "post": 42, "name": f"c{n}"}, f"e{n}") for n in range(2)
    ]
    settle(clock)
    bucket = DigestBucket.objects.get()
    assert bucket.released_at is not None
    said = page(owner_client, runs[1])
    released = bucket.released_at.strftime("%H:%M")
    assert (
        f"Joined the digest for <strong>post 42</strong> (“Comments”): released at {released} with 2 items."
        in said
    )
    assert "so far" not in said and "In a digest" not in said and "dropped" not in said
    assert [d.content["text"] for d in Delivery.objects.all()] == ["c0;c1;"]


def test_a_hostile_key_and_item_are_escaped_and_a_run_without_digest_shows_none(
    clock, smtp, owner_client, tenant_a
):
    workflow = build_workflow(tenant_a, webhook([digest([commented()], key="{{ item.post }}")]))
    run = start_run(
        workflow, {"email": "a@x.org", "post": "<script>alert(1)</script>", "name": "x" * 500}, "h"
    )
    work(clock)
    said = digests_of(page(owner_client, run))
    assert "<script>alert(1)</script>" not in said
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in said
    assert "x" * 500 not in said and "…" in said  # a long item is cut to one line
    plain = build_workflow(tenant_a, webhook([email()]), name="Plain")
    assert 'data-testid="digest-bucket"' not in page(
        owner_client, start_run(plain, {"email": "a@x.org"}, "p")
    )


def test_the_polled_page_redraws_when_another_run_joins_its_bucket(clock, smtp, owner_client, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([commented()])]))
    first = start_run(workflow, {"email": "ann@x.org", "post": 42, "name": "a"}, "e1")
    work(clock)
    url = reverse("runs:run_detail", args=[first.pk])
    drawn = owner_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    seen = drawn.content.decode().split("seen=")[1].split("&")[0].split('"')[0]
    assert (
        owner_client.get(url, {"seen": seen}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live").status_code
        == 204
    )
    start_run(workflow, {"email": "ann@x.org", "post": 42, "name": "b"}, "e2")
    work(clock)
    again = owner_client.get(url, {"seen": seen}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-live")
    assert again.status_code == 200 and "2 items so far" in " ".join(again.content.decode().split())


def test_the_step_preview_says_which_digest_the_item_would_join(clock, smtp, owner_client, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([commented()])]))
    step = steps_of(workflow)["Comments"]
    item = {"email": "ann@x.org", "post": 42, "name": "first"}

    def preview() -> str:
        answer = owner_client.get(reverse("runs:step_preview", args=[step.pk]), {"item": json.dumps(item)})
        assert answer.status_code == 200
        return " ".join(answer.content.decode().split())

    assert (
        "The item <strong>joins the digest for post 42: 1 item so far, releases at 2026-03-02 10:00 UTC</strong>"
        in preview()
    )
    for n in range(2):
        start_run(workflow, {**item, "name": f"c{n}"}, f"e{n}")
    work(clock)
    assert "joins the digest for post 42: 3 items so far, releases at 2026-03-02 10:00 UTC" in preview()
    assert not DigestBucket.objects.filter(items__item__name="first").exists()  # previewing joins nothing
    item = {"email": "ann@x.org"}  # no `post`: a clear error, not a digest for "post "
    assert "Digest key: The item has no field “post”. Use a field the item has" in preview()


def test_send_the_first_at_once_on_the_run_page_and_in_the_preview(clock, smtp, owner_client, tenant_a):
    workflow = build_workflow(tenant_a, webhook([digest([commented()], first_at_once=True)]))
    step = steps_of(workflow)["Comments"]
    item = {"email": "ann@x.org", "post": 42, "name": "first"}
    answer = owner_client.get(reverse("runs:step_preview", args=[step.pk]), {"item": json.dumps(item)})
    said = " ".join(answer.content.decode().split())
    assert (
        "goes on at once, the first for post 42 in this window; later items join the digest, released at 2026-03-02 10:00 UTC"
        in said
    )
    first = start_run(workflow, item, "e0")
    later = start_run(workflow, {**item, "name": "second"}, "e1")
    work(clock)
    assert (
        "Sent its item at once, the first for <strong>post 42</strong> (“Comments”); the digest of the rest has 1 item so far, releases at 10:00"
        in page(owner_client, first)
    )
    joined = digests_of(page(owner_client, later))
    assert f"run #{first.pk}</a> for <strong>post 42</strong> (“Comments”): 1 item so far" in joined
    assert "second" in joined and "first" not in joined.replace(
        "First 1 of", ""
    )  # the passed item is not in the digest
    answer = owner_client.get(reverse("runs:step_preview", args=[step.pk]), {"item": json.dumps(item)})
    assert "joins the digest for post 42: 2 items so far" in " ".join(answer.content.decode().split())


def test_a_test_run_joins_no_digest_says_what_would_happen_and_shows_the_message(
    clock, smtp, owner_client, tenant_a
):
    workflow = build_workflow(tenant_a, webhook([digest([commented()])]))
    start_run(workflow, {"email": "ann@x.org", "post": 42, "name": "real"}, "r")
    work(clock)
    test = start_run(workflow, {"email": "ann@x.org", "post": 42, "name": "tried"}, "t", is_test=True)
    work(clock)
    assert DigestBucket.objects.get().items.count() == 1  # the real item only
    step = steps_of(workflow)["Comments"]
    said = page(owner_client, test, step=step.pk)
    assert (
        "in a real run, the item joins the digest for post 42: 2 items so far, releases at 2026-03-02 10:00 UTC"
        in said
    )
    assert 'data-testid="digest-bucket"' not in said  # the test run is in no bucket
    # The tester sees the message at once, as a digest of one.
    assert [(d.content["subject"], d.content["text"]) for d in Delivery.objects.filter(run=test)] == [
        ("1 new comments", "tried;")
    ]
    assert "1 new comments" in said
