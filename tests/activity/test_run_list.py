"""The runs list: columns, filters, search, keyset pages, test runs left out, bad input explained."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from runs.models import Run, StepExecution
from runs.views.paging import decode_cursor, encode_cursor
from tests.activity.conftest import add_delivery, add_execution, build_workflow, make_run, steps_of, webhook

RUNS = reverse("runs:run_list")


def run_ids(response) -> list[int]:
    return [row["run"].pk for row in response.context["rows"]]


def test_runs_list_shows_status_event_version_duration_and_counts(owner_client, onboarding):
    run = make_run(onboarding, "signup-1", status=Run.Status.PARTIAL)
    steps = steps_of(onboarding)
    add_execution(run, steps["Welcome"], "0", status=StepExecution.Status.FAILED, error="550 mailbox unknown")
    add_execution(
        run,
        steps["Tell the team"],
        "0",
        status=StepExecution.Status.PENDING,
        attempts=2,
        error="451 try later",
    )
    page = owner_client.get(RUNS)
    assert page.status_code == 200
    html = page.content.decode()
    assert "signup-1" in html and "Partially failed" in html and "v1" in html and "2.0 s" in html
    counts = dict(page.context["rows"][0]["counts"])
    assert counts == {"succeeded": 1, "failed": 1, "retrying": 1}


def test_filters_by_workflow_status_date_and_retrying(owner_client, tenant_a, onboarding):
    other = build_workflow(tenant_a, webhook(), name="Other")
    old = make_run(onboarding, "old", age=timedelta(days=3))
    failed = make_run(onboarding, "failed", status=Run.Status.FAILED)
    elsewhere = make_run(other, "elsewhere")
    retrying = make_run(onboarding, "retrying", status=Run.Status.RUNNING)
    add_execution(
        retrying, steps_of(onboarding)["Welcome"], "0", status="pending", attempts=1, error="timeout"
    )
    assert run_ids(owner_client.get(RUNS, {"workflow": other.pk})) == [elsewhere.pk]
    assert run_ids(owner_client.get(RUNS, {"status": "failed"})) == [failed.pk]
    assert run_ids(owner_client.get(RUNS, {"status": "retrying"})) == [retrying.pk]
    today = timezone.localdate()
    assert old.pk not in run_ids(owner_client.get(RUNS, {"date_from": today.isoformat()}))
    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert run_ids(owner_client.get(RUNS, {"date_from": three_days_ago, "date_to": three_days_ago})) == [
        old.pk
    ]
    per_workflow = owner_client.get(reverse("runs:workflow_runs", args=[other.pk]))
    assert run_ids(per_workflow) == [elsewhere.pk]


def test_search_by_event_key_or_recipient(owner_client, onboarding):
    by_key = make_run(onboarding, "order-77")
    by_recipient = make_run(onboarding, "order-78")
    welcome = add_execution(by_recipient, steps_of(onboarding)["Welcome"], "0")
    add_delivery(welcome, "zoe@example.com")
    make_run(onboarding, "order-79")
    assert run_ids(owner_client.get(RUNS, {"q": "order-77"})) == [by_key.pk]
    assert run_ids(owner_client.get(RUNS, {"q": "zoe@example.com"})) == [by_recipient.pk]


def test_test_runs_stay_out_of_the_log(owner_client, onboarding):
    live = make_run(onboarding, "live")
    make_run(onboarding, "test", is_test=True)
    assert run_ids(owner_client.get(RUNS)) == [live.pk]


def test_keyset_pages_walk_every_run_once_even_with_equal_timestamps(owner_client, onboarding, settings):
    runs = [make_run(onboarding, f"e{i}") for i in range(120)]
    same = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk__in=[r.pk for r in runs[40:70]]).update(created_at=same)  # ties across a page edge
    seen, query = [], {}
    while True:
        page = owner_client.get(RUNS, query)
        seen += run_ids(page)
        if not page.context["next_query"]:
            break
        query = dict(pair.split("=", 1) for pair in page.context["next_query"].split("&"))
    assert sorted(seen) == sorted(r.pk for r in runs) and len(seen) == 120


def test_cursor_round_trips_microseconds():
    when = timezone.now().replace(microsecond=999_999)
    assert decode_cursor(encode_cursor(when, 7)) == (when, 7)


def test_bad_filters_and_cursor_are_explained_and_the_rest_still_applies(owner_client, onboarding, tenant_b):
    make_run(onboarding, "a")
    foreign = build_workflow(tenant_b, webhook(), name="Theirs")
    page = owner_client.get(RUNS, {"workflow": foreign.pk, "date_from": "yesterday", "after": "garbage"})
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        "Select a valid choice" in html
        and "Enter a valid date" in html
        and "start again from the newest" in html
    )
    assert len(page.context["rows"]) == 1
    swapped = owner_client.get(RUNS, {"date_from": "2026-01-05", "date_to": "2026-01-01"})
    assert "swap the dates" in swapped.content.decode()


def test_the_runs_page_costs_the_same_queries_for_5_or_50_runs(owner_client, onboarding):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(5):
        make_run(onboarding, f"few-{i}")
    with CaptureQueriesContext(connection) as few:
        owner_client.get(RUNS)
    for i in range(45):
        run = make_run(onboarding, f"many-{i}")
        add_delivery(add_execution(run, steps_of(onboarding)["Welcome"], "0"), f"p{i}@example.com")
    with CaptureQueriesContext(connection) as many:
        page = owner_client.get(RUNS)
    assert len(page.context["rows"]) == 50 and len(many) == len(few)
