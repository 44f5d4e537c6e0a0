"""The issue's two stories: onboarding with a 3-day wait, and a comment fanned out to other commenters."""

from __future__ import annotations

from django.test.utils import CaptureQueriesContext

from runs.engine import start_run
from runs.engine.executor import claim
from runs.engine.spawn import Spawner
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (
    build_workflow,
    customer_db,
    data_source,
    email,
    query,
    settle,
    webhook,
    work,
)

USERS = """
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, name text, onboarded_at timestamptz);
INSERT INTO users VALUES (1, 'new@example.com', 'Nia', NULL);
"""


def onboarding(tenant, source):
    return build_workflow(
        tenant,
        webhook(
            [
                email(
                    subject="Welcome {{ item.name }}",
                    text="Welcome aboard",
                    name="welcome",
                    children=[
                        {
                            "kind": "wait",
                            "config": {"mode": "duration", "amount": 3, "unit": "days"},
                            "children": [
                                query(
                                    source,
                                    "SELECT onboarded_at FROM users WHERE id = {{ item.id }}",
                                    mode="first",
                                    children=[
                                        {
                                            "kind": "condition",
                                            "config": {"expression": "item.onboarded_at is none"},
                                            "children": [
                                                email(subject="Finish onboarding", text="Two minutes left"),
                                            ],
                                        },
                                        {
                                            "kind": "condition",
                                            "config": {"expression": "item.onboarded_at is not none"},
                                            "children": [
                                                email(subject="Next steps", text="Now invite your team"),
                                            ],
                                        },
                                    ],
                                ),
                            ],
                        },
                    ],
                ),
            ]
        ),
    )


def test_onboarding_user_who_did_not_finish_gets_the_nudge(clock, smtp, tenant_a, tenant_database):
    customer_db(tenant_database, USERS)
    workflow = onboarding(tenant_a, data_source(tenant_a, tenant_database))
    run = start_run(workflow, {"id": 1, "email": "new@example.com", "name": "Nia"}, "user-1")
    work(clock)
    assert [m["Subject"] for m in smtp.messages] == ["Welcome Nia"]
    wait = StepExecution.objects.get(run=run, step__kind="wait")
    assert wait.status == "pending" and wait.next_attempt_at == clock.now + __import__("datetime").timedelta(
        days=3
    )

    clock.travel(days=2)
    settle(clock, step_seconds=60, rounds=3)
    assert len(smtp.messages) == 1, "nothing may happen before the three days are over"

    clock.travel(days=1, minutes=1)
    settle(clock)
    run.refresh_from_db()
    assert [m["Subject"] for m in smtp.messages] == ["Welcome Nia", "Finish onboarding"]
    assert run.status == Run.Status.SUCCEEDED


def test_onboarding_reads_the_row_after_the_wait(clock, smtp, tenant_a, tenant_database):
    customer_db(tenant_database, USERS)
    workflow = onboarding(tenant_a, data_source(tenant_a, tenant_database))
    run = start_run(workflow, {"id": 1, "email": "new@example.com", "name": "Nia"}, "user-1")
    work(clock)
    # The user finishes onboarding during the wait: the query after the wait must see it.
    customer_db(tenant_database, "UPDATE users SET onboarded_at = now() WHERE id = 1")
    clock.travel(days=3, minutes=1)
    settle(clock)
    run.refresh_from_db()
    assert [m["Subject"] for m in smtp.messages] == ["Welcome Nia", "Next steps"]
    assert run.status == Run.Status.SUCCEEDED


COMMENTS = """
CREATE TABLE commenters (id int PRIMARY KEY, email text NOT NULL, name text);
CREATE TABLE comments (id serial PRIMARY KEY, post_id int NOT NULL, author_id int REFERENCES commenters);
INSERT INTO commenters SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 1001) g;
INSERT INTO comments (post_id, author_id) SELECT 7, g FROM generate_series(1, 1001) g;
INSERT INTO comments (post_id, author_id) SELECT 7, g FROM generate_series(1, 50) g;   -- repeat commenters
INSERT INTO comments (post_id, author_id) VALUES (8, 1001);                            -- another post
"""

FAN_OUT_SQL = """
SELECT DISTINCT u.id, u.email, u.name FROM comments c JOIN commenters u ON u.id = c.author_id
WHERE c.post_id = {{ item.post_id }} AND c.author_id <> {{ item.author_id }}
"""


def test_comment_fans_out_to_every_other_commenter_once(clock, smtp, tenant_a, tenant_database, settings):
    customer_db(tenant_database, COMMENTS)
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    source,
                    FAN_OUT_SQL,
                    children=[email(subject="New comment on post {{ run.payload.post_id }}")],
                ),
            ]
        ),
    )
    run = start_run(workflow, {"post_id": 7, "author_id": 1001, "comment_id": 99}, "comment-99")
    from django.db import connection

    with CaptureQueriesContext(connection) as queries:
        work(clock)
    run.refresh_from_db()
    recipients = smtp.recipients()
    assert run.status == Run.Status.SUCCEEDED
    assert len(recipients) == 1000 and len(set(recipients)) == 1000
    assert "user1001@example.com" not in recipients
    assert Delivery.objects.filter(run=run, status="sent").count() == 1000
    keys = set(
        StepExecution.objects.filter(run=run, step__kind="send_email").values_list("item_key", flat=True)
    )
    assert "0/1" in keys and "0/1000" in keys and len(keys) == 1000
    # The query-count guard of the engine's batch work: a few statements per item, amortised.
    assert len(queries) / 1000 <= 1.5, f"{len(queries)} statements for 1000 items"


def test_a_big_fan_out_is_sent_while_its_rows_are_still_being_read(clock, smtp, tenant_a, settings):
    """Batches start after the first chunk of rows. Lanes that catch up with a slow reader stop; the end
    of the reading queues them again, so the rest does not wait for the sweeper."""
    settings.ENGINE_FANOUT_CHUNK = 100
    settings.ENGINE_BATCH_SIZE = 50
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {}, "slow-reader")
    root = StepExecution.objects.get(run=run, step__parent=None)
    assert claim(run.pk, root.step_id, clock.now, 1) == [root.pk]  # the fan-out step is running
    spawner = Spawner(run, list(root.step.children.all()), clock.now)
    sent_while_reading = []

    def rows():
        for i in range(1, 301):
            if i == 151:
                work(clock)  # the lanes queued after the first chunk run now, and stop when caught up
                sent_while_reading.append(len(smtp.recipients()))
            yield str(i), {"email": f"user{i}@example.com", "name": f"User {i}"}

    spawner.add(root, rows())
    spawner.finish()
    work(clock)
    assert sent_while_reading == [100]
    assert sorted(smtp.recipients()) == sorted(f"user{i}@example.com" for i in range(1, 301))
