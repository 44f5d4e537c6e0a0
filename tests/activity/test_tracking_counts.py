"""The per-step table on a workflow's Messages page: email after the hand-off, counted over the live runs'
messages of the last TRACKING_DAYS (the all-time count took seconds at a million executions), per step key
across versions, each message once per kind, in one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Delivery, DeliveryEvent
from runs.tracking import TRACKING_DAYS, counts_for_workflow
from tests.activity.conftest import add_delivery, add_execution, steps_of
from tests.activity.test_charts import NOW, one_query, run_at
from tests.engine.conftest import build_workflow, email, webhook
from workflows.publishing import get_or_create_draft

pytestmark = pytest.mark.django_db

ZERO = {"sent": 0, "delivered": 0, "bounced": 0, "complained": 0, "opened": 0, "clicked": 0}


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr("integrations.clock.now", lambda: NOW)
    return NOW


@pytest.fixture
def two_emails(tenant_a):
    spec = webhook([email(name="Welcome", children=[email(name="Reminder")])])
    return build_workflow(tenant_a, spec, name="Onboarding")


def message(
    workflow, step_name, key, when, *, status=Delivery.Status.SENT, events=(), is_test=False, step=None
):
    run = run_at(workflow, key, when, is_test=is_test)
    step = step or steps_of(workflow)[step_name]
    delivery = add_delivery(add_execution(run, step, "0"), f"{key}@example.com", status=status)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=when)
    for n, kind in enumerate(events):
        DeliveryEvent.objects.create(
            tenant_id=workflow.tenant_id,
            delivery=delivery,
            kind=kind,
            event_key=f"{kind}-{n}",
            occurred_at=when,
        )
    return delivery


def test_counts_each_message_once_per_kind_per_step_with_a_total(two_emails, fixed_now):
    recent = fixed_now - timedelta(hours=3)
    message(two_emails, "Welcome", "a", recent, events=["delivered", "opened", "opened", "clicked"])
    message(two_emails, "Welcome", "b", recent, events=["bounced"])
    message(two_emails, "Welcome", "c", recent, status=Delivery.Status.SKIPPED)
    message(two_emails, "Reminder", "d", recent, events=["delivered", "complained"])
    rows = one_query(lambda: counts_for_workflow(two_emails.tenant_id, two_emails.pk))
    assert rows == [
        {"step": "Reminder", **ZERO, "sent": 1, "delivered": 1, "complained": 1},
        {"step": "Welcome", **ZERO, "sent": 2, "delivered": 1, "bounced": 1, "opened": 1, "clicked": 1},
        {
            "step": "All steps",
            **ZERO,
            "sent": 3,
            "delivered": 2,
            "bounced": 1,
            "complained": 1,
            "opened": 1,
            "clicked": 1,
        },
    ]


def test_only_this_workflows_live_messages_of_the_window_count(two_emails, tenant_a, tenant_b, fixed_now):
    recent = fixed_now - timedelta(days=TRACKING_DAYS - 1)
    message(two_emails, "Welcome", "in", recent, events=["delivered"])
    message(
        two_emails, "Welcome", "old", fixed_now - timedelta(days=TRACKING_DAYS, hours=1), events=["delivered"]
    )
    message(two_emails, "Welcome", "test", recent, is_test=True, events=["delivered"])
    other = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Other")
    message(other, "Welcome", "other", recent, events=["delivered"])
    elsewhere = build_workflow(tenant_b, webhook([email(name="Welcome")]), name="Theirs")
    message(elsewhere, "Welcome", "theirs", recent, events=["delivered"])
    assert counts_for_workflow(tenant_a.pk, two_emails.pk) == [
        {"step": "Welcome", **ZERO, "sent": 1, "delivered": 1}
    ]
    assert counts_for_workflow(tenant_a.pk, elsewhere.pk) == []  # another tenant's workflow: nothing


def test_a_step_is_counted_across_versions_by_its_key(two_emails, fixed_now):
    welcome = steps_of(two_emails)["Welcome"]
    # The same step in the next version (the draft's copy keeps the key), renamed there.
    copy = get_or_create_draft(two_emails).steps.get(key=welcome.key)
    copy.name = "Welcome (new)"
    copy.save()
    recent = fixed_now - timedelta(hours=1)
    message(two_emails, "Welcome", "a", recent)
    message(two_emails, None, "b", recent, step=copy)
    assert counts_for_workflow(two_emails.tenant_id, two_emails.pk) == [
        {"step": "Welcome (new)", **ZERO, "sent": 2}
    ]


def counting_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "FROM runs_deliveryevent" in q["sql"]]


def test_the_workflows_messages_page_fetches_the_counts_once_it_shows(owner_client, two_emails, fixed_now):
    message(two_emails, "Welcome", "a", fixed_now - timedelta(hours=1), events=["opened"])
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(f"/activity/workflows/{two_emails.pk}/messages/")
    page = response.content.decode()
    assert counting_queries(queries) == []  # the page itself does not count
    assert f'hx-get="/activity/workflows/{two_emails.pk}/messages/counts/"' in page
    assert (
        f"Counting this workflow's messages per step (sent, delivered, opened…) over the last {TRACKING_DAYS}"
        in page
    )
    assert 'data-load-what="the message counts per step"' in page  # names it if the fetch fails
    assert "<td>Welcome</td>" not in page
    # The all-messages page has no per-step table to fetch.
    assert "/counts/" not in owner_client.get("/activity/messages/").content.decode()


def test_the_counts_fragment_shows_the_window_with_one_counting_query(owner_client, two_emails, fixed_now):
    message(two_emails, "Welcome", "a", fixed_now - timedelta(hours=1), events=["opened"])
    owner_client.get(f"/activity/workflows/{two_emails.pk}/messages/counts/")  # warm the session
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(f"/activity/workflows/{two_emails.pk}/messages/counts/")
    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.startswith('<div id="tracking-counts">')  # replaces the placeholder (outerHTML)
    assert f"messages of the last {TRACKING_DAYS} days" in fragment
    assert "<td>Welcome</td><td>1</td><td>0</td><td>0</td><td>0</td><td>1</td><td>0</td>" in fragment
    assert len(counting_queries(queries)) == 1
    # session, user, membership/tenant, the workflow (tenant-scoped), the counts
    assert len(queries) == 5, [q["sql"][:60] for q in queries]


def test_the_counts_fragment_of_a_workflow_without_email_is_empty(owner_client, tenant_a, fixed_now):
    quiet = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Quiet")
    fragment = owner_client.get(f"/activity/workflows/{quiet.pk}/messages/counts/").content.decode()
    assert 'id="tracking-counts"' in fragment and "<table" not in fragment  # the placeholder goes away


def test_an_outsider_gets_404_from_the_counts_fragment(outsider_client, owner_client, two_emails, fixed_now):
    message(two_emails, "Welcome", "a", fixed_now - timedelta(hours=1), events=["opened"])
    url = f"/activity/workflows/{two_emails.pk}/messages/counts/"
    assert outsider_client.get(url).status_code == 404
    assert owner_client.get("/activity/workflows/999999/messages/counts/").status_code == 404
