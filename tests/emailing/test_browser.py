"""Headless Chromium: the sender choice in the email step, a provider page after a failed test send, and a
bounced message's timeline. Screenshots: docs/screenshots/email-step-sender.png, email-provider-test.png,
message-bounced.png."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.emailing.conftest import esp_provider, make_provider, make_sender
from tests.emailing.test_tracking import post, postmark_bounce, sent_via
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_choose_the_sender_in_the_email_step(live_server, page, owner, tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"}, name="Postmark")
    make_sender(tenant_a, provider, name="Support", address="support@acme.example")
    billing = make_sender(
        tenant_a,
        provider,
        name="Billing",
        address="billing@acme.example",
        from_name="Acme Billing",
        default=False,
    )
    workflow = build_workflow(
        tenant_a, webhook([email(name="Invoice", subject="Your invoice", text="Attached.")]), publish_it=False
    )
    step = workflow.versions.get().steps.get(kind="send_email")
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")
    page.locator(f"#node-{step.pk} .node-body").click()
    htmx_idle(page)
    picker = page.get_by_label("From", exact=True)
    expect(picker.locator("option").first).to_have_text("Default: Support — support@acme.example")
    saved(page, lambda: picker.select_option(label="Billing — billing@acme.example"))
    page.get_by_label("Reply-To").fill("accounts@acme.example")
    saved(page, lambda: page.get_by_label("Reply-To").blur())
    step.refresh_from_db()
    assert step.config["sender"] == billing.pk
    picker.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "email-step-sender.png")


def test_a_provider_page_after_a_failed_test_send(live_server, page, owner, tenant_a, httpserver):
    httpserver.expect_request("/email").respond_with_json(
        {
            "ErrorCode": 10,
            "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid.",
        },
        status=401,
    )
    provider = esp_provider(tenant_a, "postmark", httpserver)
    provider.name = "Postmark production"
    provider.save()
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Email").click()
    page.get_by_role("link", name="Postmark production").click()
    page.get_by_label("To", exact=True).fill("me@acme.example")
    page.get_by_role("button", name="Send a test email").click()
    status = page.locator("#last-test")
    expect(status).to_contain_text("Postmark refused the credentials (HTTP 401)")
    expect(status).to_contain_text("The Server Token you provided")
    expect(page.get_by_label("Tracking webhook URL")).to_have_value(
        f"{live_server.url.replace('://', '://' + provider.webhook_credentials + '@')}/hooks/email/{provider.webhook_token}/"
    )
    page.goto(f"{live_server.url}/settings/email/providers/{provider.pk}/")  # the top, not the #test anchor
    expect(page.locator("#last-test")).to_contain_text("refused the credentials")
    page.screenshot(path=SCREENSHOTS / "email-provider-test.png", full_page=True)


def test_a_bounced_messages_timeline(live_server, page, owner, tenant_a, sent_message):
    sent_message.provider_id = "883953f4-6105-42a2-a16a-77a8eac79483"
    sent_message.sent_at = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    sent_message.save()
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"}, name="Postmark")
    sent_via(sent_message, provider)
    common = {"MessageID": sent_message.provider_id, "Recipient": "ada@example.com", "Metadata": {}}
    post(
        provider,
        {
            "RecordType": "Delivery",
            "DeliveredAt": "2026-11-26T10:00:02Z",
            "Details": "smtp;250 2.0.0 OK",
            **common,
        },
    )
    transient = postmark_bounce(sent_message.provider_id) | {
        "ID": 1,
        "Type": "SoftBounce",
        "BouncedAt": "2026-11-26T10:00:04Z",
        "Details": "smtp;452 4.2.2 Mailbox full",
        "Description": "The server could not deliver your message for now: the mailbox is full.",
    }
    post(provider, transient)
    post(provider, postmark_bounce(sent_message.provider_id))
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/activity/messages/{sent_message.pk}/")
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li")).to_have_count(4)  # sent, delivered, soft bounce, hard bounce
    expect(timeline.locator("li").nth(3)).to_contain_text("Bounced (hard)")
    expect(timeline.locator("li").nth(3)).to_contain_text(
        "The email account that you tried to reach does not exist."
    )
    page.screenshot(path=SCREENSHOTS / "message-bounced.png", full_page=True)
