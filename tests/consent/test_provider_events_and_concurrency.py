"""Consent meets the email providers: an ESP's hard bounce or complaint (its real webhook payload, POSTed to
the provider's tracking URL) suppresses the address on every topic, so the next run skips it; a soft bounce
does not. Sends through an ESP's HTTP API (the concurrent path) skip suppressed and unsubscribed recipients
too, with one suppression check per batch."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.models import Suppression, Unsubscribe
from runs.engine import start_run
from runs.models import Delivery, Run
from tests.emailing.conftest import make_provider, make_sender
from tests.emailing.test_tracking import CASES, post, postmark_bounce, provider_for, sent_via
from tests.engine.conftest import build_workflow, data_source, email, query, settle, webhook, work
from tests.engine.test_concurrent_sends import provider  # noqa: F401 (fixture)
from tests.engine.test_recovery import recipients_table

ADA = {"email": "Ada@Example.com", "name": "Ada"}


def tips_workflow(tenant, topic):
    step = email(
        subject="Tip", html="<p>Hello {{ item.name }}</p>", text="", allow_unsubscribe=True, topic=topic.pk
    )
    return build_workflow(tenant, webhook([step]), name="Tips")


def receipts_workflow(tenant):
    """Transactional (no unsubscribe): unsubscribes do not stop it, suppressions do."""
    return build_workflow(tenant, webhook([email(subject="Receipt")]), name="Receipts")


def sent_to_ada(clock, tenant, topic) -> Delivery:
    run = start_run(tips_workflow(tenant, topic), ADA, "first")
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "sent" and delivery.provider_id
    return delivery


def test_a_postmark_hard_bounce_suppresses_the_address_and_later_runs_skip_it(
    clock, smtp, tenant_a, tips, updates
):
    delivery = sent_to_ada(clock, tenant_a, tips)
    postmark = provider_for(tenant_a, "postmark")
    sent_via(delivery, postmark)  # as if Postmark had carried it (only its sender's webhook reports)
    response = post(postmark, postmark_bounce(delivery.provider_id))
    assert response.status_code == 200, response.content

    entry = Suppression.objects.get(tenant=tenant_a, address="ada@example.com")
    assert (entry.reason, entry.source, entry.delivery_id) == ("hard_bounce", "event", delivery.pk)
    assert "550 5.1.1" in entry.detail  # the provider's own words
    assert not Suppression.objects.exclude(tenant=tenant_a).exists()

    # Every topic, and a transactional step that ignores unsubscribes: all skipped, nothing sent.
    runs = [
        start_run(tips_workflow(tenant_a, tips), ADA, "second"),
        start_run(tips_workflow(tenant_a, updates), ADA, "third"),
        start_run(receipts_workflow(tenant_a), ADA, "fourth"),
    ]
    work(clock)
    assert len(smtp.messages) == 1
    for run in runs:
        run.refresh_from_db()
        skipped = Delivery.objects.get(run=run)
        assert skipped.status == "skipped" and skipped.error == "Skipped: suppressed (hard bounce)"
        assert run.status == Run.Status.SUCCEEDED

    # The ESP retrying the same webhook changes nothing (the first entry is kept).
    assert post(postmark, postmark_bounce(delivery.provider_id)).status_code == 200
    assert Suppression.objects.filter(tenant=tenant_a).count() == 1


def test_a_spam_complaint_suppresses_as_complaint(clock, smtp, tenant_a, tips):
    delivery = sent_to_ada(clock, tenant_a, tips)
    postmark = provider_for(tenant_a, "postmark")
    sent_via(delivery, postmark)
    complaint = {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "MessageID": delivery.provider_id,
        "ServerID": 23,
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "Test spam complaint details",
        "Email": "ada@example.com",
        "BouncedAt": "2026-11-26T10:00:05Z",
        "Subject": "Tip",
    }
    assert post(postmark, complaint).status_code == 200
    entry = Suppression.objects.get(tenant=tenant_a, address="ada@example.com")
    assert (entry.reason, entry.source, entry.delivery_id) == ("complaint", "event", delivery.pk)

    run = start_run(tips_workflow(tenant_a, tips), ADA, "again")
    work(clock)
    assert Delivery.objects.get(run=run).error == "Skipped: suppressed (spam complaint)"


def test_a_soft_bounce_suppresses_nothing(clock, smtp, tenant_a, tips):
    delivery = sent_to_ada(clock, tenant_a, tips)
    _provider_id, payload, _kind, bounce = CASES["brevo"]
    assert bounce == "soft"
    brevo = provider_for(tenant_a, "brevo")
    sent_via(delivery, brevo)
    body, headers = payload(delivery.provider_id)
    assert post(brevo, body, **headers).json()["stored"] == 1
    assert not Suppression.objects.exists()


def test_concurrent_esp_sends_skip_suppressed_and_unsubscribed_with_one_check_per_batch(
    clock,
    tenant_a,
    tips,
    tenant_database,
    provider,  # noqa: F811 (fixture)
    settings,
):
    settings.ENGINE_SEND_CONCURRENCY = 8
    settings.ENGINE_BATCH_SIZE = 10
    postmark = make_provider(tenant_a, "postmark", {"api_url": provider.url("/")}, {"server_token": "t"})
    make_sender(tenant_a, postmark)
    recipients_table(tenant_database, 20)
    Suppression.objects.create(tenant=tenant_a, address="r3@example.com", reason="hard_bounce")
    Unsubscribe.objects.create(tenant=tenant_a, address="r7@example.com", topic=tips)
    Unsubscribe.objects.create(tenant=tenant_a, address="r15@example.com", topic=None)
    step = email(subject="Tip", text="x", allow_unsubscribe=True, topic=tips.pk)
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(tenant_a, webhook([query(source, "SELECT id, email FROM r", children=[step])]))
    email_step = workflow.published_version.steps.get(kind="send_email")
    run = start_run(workflow, {}, "evt-concurrent-skips")
    with CaptureQueriesContext(connection) as queries:
        settle(clock, step_seconds=60)

    assert provider.max_in_flight > 1, "the ESP's requests were sent one at a time: not the concurrent path"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    deliveries = Delivery.objects.filter(run=run)
    skipped = dict(deliveries.filter(status="skipped").values_list("recipient", "error"))
    assert skipped == {
        "r3@example.com": "Skipped: suppressed (hard bounce)",
        "r7@example.com": "Skipped: unsubscribed from Tips",
        "r15@example.com": "Skipped: unsubscribed from everything",
    }
    assert deliveries.filter(status="sent").count() == 17
    assert len(provider.received) == 17  # no request for a skipped recipient
    checks = [q for q in queries if "consent_suppression" in q["sql"]]
    claims = [
        q
        for q in queries
        if "WITH claimable AS MATERIALIZED" in q["sql"] and f"step_id = {email_step.pk}" in q["sql"]
    ]
    assert 2 <= len(checks) <= len(claims), (len(checks), len(claims))
