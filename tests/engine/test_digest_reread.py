"""The digest's "read the rows again at release", against a real customer database: items whose row was
deleted, or no longer matches, are left out before the message is built, with the count and reason on
the release and on the item rows; an empty digest sends nothing and ends `filtered`; the rows are read
in one batched SELECT; an item that is the trigger's row goes on as the row is now."""

from __future__ import annotations

import pytest

from runs.engine import start_run
from runs.models import Delivery, DigestBucket, DigestItem, StepExecution
from tests.engine.conftest import build_workflow, customer_db, data_source, email, settle, work
from workflows.steps import ConfigError, get_kind

COMMENTS = """
CREATE TABLE comments (post_id int, id int, author text, body text, status text, PRIMARY KEY (post_id, id));
INSERT INTO comments
SELECT 7, n, 'user' || n, 'comment ' || n, 'open' FROM generate_series(1, 6) AS n;
"""


def row(n: int) -> dict:
    return {"post_id": 7, "id": n, "author": f"user{n}", "body": f"comment {n}", "status": "open"}


def comment_digest(tenant, source, **reread) -> object:
    trigger = {
        "kind": "database_trigger",
        "config": {"datasource": source.pk, "table": "comments", "operations": ["insert"]},
        "children": [
            {
                "kind": "digest",
                "config": {
                    "key": "post {{ item.post_id }}",
                    "window": "fixed",
                    "amount": 1,
                    "unit": "hours",
                    **reread,
                },
                "children": [
                    email(
                        to="owner@example.com",
                        subject="{{ item.digest.count }} new comments",
                        text="{% for c in item.digest['items'] %}{{ c.body }};{% endfor %}",
                    )
                ],
            }
        ],
    }
    return build_workflow(tenant, trigger, name="Comment digest")


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, COMMENTS)
    return data_source(tenant_a, tenant_database)


def release_of(bucket: DigestBucket) -> StepExecution:
    return StepExecution.objects.get(item_key=f"digest/{bucket.pk}", step__kind="digest")


def test_deleted_and_no_longer_matching_rows_are_left_out_and_counted(
    clock, smtp, tenant_a, tenant_database, source
):
    workflow = comment_digest(tenant_a, source, reread=True, still_matches="row.status != 'hidden'")
    for n in range(1, 7):
        start_run(workflow, row(n), f"db:{n}")
    work(clock)
    customer_db(
        tenant_database,
        "DELETE FROM comments WHERE id IN (2, 5); UPDATE comments SET status = 'hidden' WHERE id = 3",
    )
    customer_db(tenant_database, "UPDATE comments SET body = 'edited 4' WHERE id = 4")
    settle(clock)

    delivery = Delivery.objects.get()
    assert delivery.content["subject"] == "3 new comments"
    # The item that is the trigger's row goes on as the row is now.
    assert "comment 1;edited 4;comment 6;" in smtp.messages[0].get_payload()
    bucket = DigestBucket.objects.get()
    reasons = sorted(
        DigestItem.objects.filter(bucket=bucket).exclude(dropped="").values_list("dropped", flat=True)
    )
    assert reasons == ["row deleted", "row deleted", "row no longer matches: row.status != 'hidden'"]
    released = release_of(bucket)
    assert released.status == "succeeded"
    assert released.output["digest"]["dropped"] == {
        "count": 3,
        "reasons": {"row deleted": 2, "row no longer matches: row.status != 'hidden'": 1},
    }


def test_a_digest_whose_rows_are_all_gone_sends_nothing_and_says_so(
    clock, smtp, tenant_a, tenant_database, source
):
    workflow = comment_digest(tenant_a, source, reread=True)
    for n in (1, 2, 3):
        start_run(workflow, row(n), f"db:{n}")
    work(clock)
    customer_db(tenant_database, "DELETE FROM comments WHERE post_id = 7")
    settle(clock)

    assert smtp.messages == [] and not Delivery.objects.exists()
    released = release_of(DigestBucket.objects.get())
    assert released.status == "filtered"
    assert released.output["filtered"] == "empty digest, nothing sent (3 dropped at release: 3 row deleted)"
    assert not StepExecution.objects.filter(status__in=StepExecution.OPEN).exists()


def test_the_rows_are_read_in_one_batched_select(clock, smtp, tenant_a, tenant_database, source):
    """Six items, one read of the table (the wait's re-read, one per item, would make six)."""
    workflow = comment_digest(tenant_a, source, reread=True)
    for n in range(1, 7):
        start_run(workflow, row(n), f"db:{n}")
    work(clock)
    before = table_reads(tenant_database)
    settle(clock)
    assert Delivery.objects.get().content["subject"] == "6 new comments"
    assert table_reads(tenant_database, more_than=before) - before == 1


def table_reads(url: str, more_than: int | None = None) -> int:
    """Scans of `comments` so far. The worker's backend reports them when its connection closes (the
    batch's end), a moment after: with `more_than`, wait (up to 10 s) until they are in."""
    import time

    import psycopg

    sql = "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'comments'"
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            conn.execute("SELECT pg_stat_clear_snapshot()")
            reads = conn.execute(sql).fetchone()[0]
            if more_than is None or reads > more_than:
                return reads
            time.sleep(0.1)
    return reads


def test_without_the_option_nothing_is_read_again(clock, smtp, tenant_a, tenant_database, source):
    workflow = comment_digest(tenant_a, source)
    for n in (1, 2):
        start_run(workflow, row(n), f"db:{n}")
    work(clock)
    customer_db(tenant_database, "DELETE FROM comments")
    settle(clock)
    assert Delivery.objects.get().content["subject"] == "2 new comments"
    assert "dropped" not in release_of(DigestBucket.objects.get()).output["digest"]


def test_reread_needs_a_database_trigger(clock, smtp, tenant_a):
    from tests.engine.conftest import webhook

    digest = {
        "kind": "digest",
        "config": {
            "key": "{{ item.email }}",
            "window": "fixed",
            "amount": 1,
            "unit": "hours",
            "reread": True,
        },
        "children": [email(subject="x", text="x")],
    }
    workflow = build_workflow(tenant_a, webhook([digest]))
    start_run(workflow, {"email": "ann@example.com"}, "evt-1")
    settle(clock)
    released = StepExecution.objects.get(item_key__startswith="digest/", step__kind="digest")
    assert released.status == "failed"
    assert "needs a database trigger" in released.error
    assert not Delivery.objects.exists()


def test_the_form_keeps_the_option_and_refuses_a_condition_without_it():
    kind = get_kind("digest")
    base = {"key": "{{ item.post_id }}", "window": "fixed", "amount": 1, "unit": "hours"}
    config = kind.validate({**base, "reread": True, "still_matches": "item.status != 'done'"})
    assert config["reread"] is True and config["still_matches"] == "item.status != 'done'"
    assert kind.summary(config) == "per {{ item.post_id }}, 1 hour, rows read again at release"
    assert "reread" not in kind.validate(base)
    with pytest.raises(ConfigError) as missing:
        kind.validate({**base, "still_matches": "item.status != 'done'"})
    assert "Read the rows again" in str(missing.value.errors)
    with pytest.raises(ConfigError):
        kind.validate({**base, "reread": True, "still_matches": "item.status =="})


def test_the_run_page_says_how_many_were_dropped_and_why(
    clock, smtp, owner_client, tenant_a, tenant_database, source
):
    from django.urls import reverse

    workflow = comment_digest(tenant_a, source, reread=True)
    runs = [start_run(workflow, row(n), f"db:{n}") for n in (1, 2, 3)]
    work(clock)
    customer_db(tenant_database, "DELETE FROM comments WHERE id IN (1, 3)")
    settle(clock)
    said = " ".join(owner_client.get(reverse("runs:run_detail", args=[runs[1].pk])).content.decode().split())
    assert "released at" in said and "with 1 item." in said
    assert (
        '<span class="digest-dropped" data-testid="digest-dropped">2 dropped at release: 2 row deleted.</span>'
        in said
    )
