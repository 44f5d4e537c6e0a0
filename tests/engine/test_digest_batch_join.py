"""A fan-out's items join their digests a batch at a time: a handful of statements per batch of items,
not per item (the digest's `prepare_batch`), with the same guarantees as one by one: one bucket per key,
every item once, a retried batch adds nothing, "send the first at once" passes one item per key."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.engine import start_run
from runs.engine.context import BatchResources, StepContext
from runs.engine.digest import JoinRequest, join_buckets
from runs.models import Delivery, DigestBucket, DigestItem, StepExecution
from tests.engine.conftest import build_workflow, customer_db, data_source, query, settle, webhook, work
from tests.engine.test_digest import digest, digest_email

EVENTS = """
CREATE TABLE events (id int PRIMARY KEY, email text, post_id int, name text);
INSERT INTO events SELECT n, 'user' || (n % 3) || '@example.com', n % 3, 'c' || n FROM generate_series(1, 450) AS n;
"""


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, EVENTS)
    return data_source(tenant_a, tenant_database)


def fanned_digest(tenant, source, **config):
    step = digest([digest_email()], key="post {{ item.post_id }}", **config)
    return build_workflow(
        tenant, webhook([query(source, "SELECT * FROM events ORDER BY id", children=[step])])
    )


def digest_statements(queries) -> int:
    return sum("runs_digest" in q["sql"] for q in queries.captured_queries)


def test_450_items_join_three_digests_in_a_few_statements_per_batch(clock, smtp, tenant_a, source):
    run = start_run(fanned_digest(tenant_a, source), {}, "evt-1")
    with CaptureQueriesContext(connection) as joins:
        work(clock)
    assert DigestItem.objects.count() == 450 and DigestBucket.objects.count() == 3
    # 450 items in batches of ENGINE_BATCH_SIZE (200): three batches, each one lookup, one upsert and
    # one insert-and-count of the items (plus the new buckets' releases once); one by one it was 2,700.
    assert digest_statements(joins) <= 3 * 3 + 1, [q["sql"][:80] for q in joins.captured_queries]
    joined = StepExecution.objects.filter(run=run, step__kind="digest", output__has_key="joined_digest")
    assert joined.count() == 450
    assert {e.output["items_so_far"] for e in joined} <= set(range(1, 151))
    settle(clock)
    subjects = Counter(d.content["subject"] for d in Delivery.objects.all())
    assert subjects == Counter({"150 new comments": 3})
    texts = sorted(sorted(d.content["text"].split(";")[:-1]) for d in Delivery.objects.all())
    assert sorted(name for text in texts for name in text) == sorted(f"c{n}" for n in range(1, 451))


def test_first_at_once_passes_one_item_per_key_of_a_batch(clock, smtp, tenant_a, source):
    start_run(fanned_digest(tenant_a, source, first_at_once=True), {}, "evt-1")
    settle(clock)
    subjects = Counter(d.content["subject"] for d in Delivery.objects.all())
    assert subjects == Counter({"1 new comments": 3, "149 new comments": 3})
    assert DigestItem.objects.filter(passed=True).count() == 3


def test_a_batch_joined_again_adds_nothing(clock, smtp, tenant_a, source):
    """A batch whose worker died after its joins committed runs again: every item finds its earlier join."""
    run = start_run(fanned_digest(tenant_a, source), {}, "evt-1")
    work(clock)
    executions = list(StepExecution.objects.filter(run=run, step__kind="digest").order_by("id")[:200])
    step = executions[0].step
    ctx = StepContext(run=run, step=step, now=clock.now, resources=BatchResources())
    requests = [ctx.digest_join_request(e, f"post {e.input['post_id']}") for e in executions]
    again = join_buckets(run.tenant_id, step, requests, clock.now)
    assert len(again) == 200 and not any(j.added or j.opened for j in again.values())
    assert {j.count for j in again.values()} == {150}
    assert DigestItem.objects.count() == 450


def test_keys_that_released_meanwhile_open_their_next_window_in_the_same_batch(clock, smtp, tenant_a, source):
    run = start_run(fanned_digest(tenant_a, source), {}, "evt-1")
    settle(clock)
    step = DigestBucket.objects.first().step
    requests = [JoinRequest(f"late/{n}", f"post {n % 3}", {"name": f"late{n}"}, run.pk) for n in range(6)]
    joined = join_buckets(run.tenant_id, step, requests, clock.now)
    assert {j.opened for j in joined.values()} == {True, False}
    assert Counter(b.generation for b in DigestBucket.objects.all()) == Counter({1: 3, 2: 3})
    assert {j.count for j in joined.values()} == {2}
