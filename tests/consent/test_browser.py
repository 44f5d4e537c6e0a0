"""Headless Chromium at 1366x768: a recipient's unsubscribe and preference pages (no sign-in, no
JavaScript), an admin's suppression list, and the topic and layout choice in the email step.
Screenshots: docs/screenshots/unsubscribe-page.png, email-preferences.png, suppression-list.png,
email-step-consent.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from consent.models import EmailLayout, Suppression, Topic, Unsubscribe
from consent.suppression import suppress_address
from consent.tokens import make_token
from runs.models import Run
from tests.builder import conftest as builder
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
page = builder.page  # fixture


def fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_recipient_unsubscribes_from_a_topic_and_switches_it_back_on(live_server, page, tenant_a):
    page.set_viewport_size({"width": 1366, "height": 768})
    tips = Topic.objects.create(
        tenant=tenant_a, name="Tips & onboarding", description="How to get more out of Acme"
    )
    Topic.objects.create(tenant=tenant_a, name="Product updates", description="What is new, once a month")
    token = make_token(tenant_a.pk, "ada@example.com", tips.pk)
    page.route("**/*.js", lambda route: route.abort())  # the pages must work without JavaScript
    page.goto(f"{live_server.url}/email/unsubscribe/{token}/")
    expect(page.get_by_role("heading", name="Unsubscribe from “Tips & onboarding”?")).to_be_visible()
    expect(page.locator(".public-sender")).to_have_text("Acme")
    expect(page.get_by_text("Rowbell")).to_have_count(0)
    assert not Unsubscribe.objects.exists(), "opening the page changes nothing"
    assert fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / "unsubscribe-page.png", full_page=True)

    page.get_by_role("button", name="Unsubscribe from Tips & onboarding").click()
    expect(page.get_by_text("You are unsubscribed.")).to_be_visible()
    assert Unsubscribe.objects.get().topic == tips
    row = page.locator(".pref-row", has_text="Tips & onboarding")
    expect(row.get_by_text("Off", exact=True)).to_be_visible()
    expect(
        page.locator(".pref-row", has_text="Product updates").get_by_text("On", exact=True)
    ).to_be_visible()
    assert fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / "email-preferences.png", full_page=True)

    row.get_by_role("button", name="Switch back on").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    assert not Unsubscribe.objects.exists()


def test_a_tampered_link_shows_a_clear_page(live_server, page, tenant_a):
    page.goto(f"{live_server.url}/email/unsubscribe/WzEsImFkYUBleGFtcGxlLmNvbSIsMV0:1xWWKd:forged/")
    expect(page.get_by_role("heading", name="This link is not valid")).to_be_visible()


def test_the_suppression_list(live_server, page, tenant_a, owner):
    page.set_viewport_size({"width": 1366, "height": 768})
    suppress_address(
        tenant_a, "bounced@example.com", Suppression.Reason.HARD_BOUNCE, detail="550 5.1.1 user unknown"
    )
    suppress_address(tenant_a, "angry@example.com", Suppression.Reason.COMPLAINT, detail="abuse report (ARF)")
    suppress_address(
        tenant_a,
        "gone@old-domain.example",
        Suppression.Reason.REJECTED,
        source="smtp",
        detail="550 5.1.1 <gone@old-domain.example>: Recipient address rejected",
    )
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Email").click()
    page.get_by_role("navigation", name="Email settings").get_by_role("link", name="Suppression list").click()
    page.get_by_label("Address", exact=True).fill("asked-by-phone@example.com")
    page.get_by_label("Note").fill("Asked us by phone")
    page.get_by_role("button", name="Suppress", exact=True).click()
    expect(page.get_by_text("asked-by-phone@example.com is suppressed")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(4)
    assert fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / "suppression-list.png", full_page=True)

    page.get_by_label("Search addresses").fill("bounced")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tbody tr").get_by_role("button", name="Remove").click()
    expect(page.get_by_text("bounced@example.com can receive email again.")).to_be_visible()
    assert not Suppression.objects.filter(address="bounced@example.com").exists()


def test_topic_and_layout_choice_in_the_email_step(live_server, page, tenant_a, owner):
    page.set_viewport_size({"width": 1366, "height": 768})
    tips = Topic.objects.create(tenant=tenant_a, name="Tips & onboarding")
    Topic.objects.create(tenant=tenant_a, name="Product updates")
    EmailLayout.objects.create(
        tenant=tenant_a, name="Acme brand", html="{% block content %}{% endblock %}", is_default=True
    )
    workflow = build_workflow(
        tenant_a,
        webhook(
            [email(name="Weekly tip", subject="Your weekly tip", text="", html="<p>Hi {{ item.name }}</p>")]
        ),
        publish_it=False,
    )
    # The preview's item is the latest run's payload: a recipient who unsubscribed from the topic.
    Run.objects.create(
        tenant=tenant_a,
        workflow=workflow,
        version=workflow.versions.get(),
        event_key="sample",
        is_test=True,
        payload={"email": "ada@example.com", "name": "Ada"},
    )
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=tips)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")
    page.locator(".node-body", has_text="Weekly tip").click()
    builder.htmx_idle(page)
    builder.saved(page, lambda: page.get_by_label("Allow unsubscribe").check())
    builder.saved(page, lambda: page.get_by_label("Topic").select_option(label="Tips & onboarding"))
    expect(page.get_by_label("Layout")).to_contain_text("Acme brand (default)")
    html = page.get_by_label("HTML body")
    builder.saved(
        page,
        lambda: html.fill(
            '<p>Hi {{ item.name }}</p>\n<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
        ),
    )
    step = workflow.versions.get().steps.get(kind="send_email")
    assert step.config["allow_unsubscribe"] is True and step.config["topic"] == tips.pk
    expect(page.locator(".skipped-note")).to_have_text(
        "Would be skipped: unsubscribed from Tips & onboarding"
    )
    page.locator("#f-topic").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "email-step-consent.png")

    builder.saved(page, lambda: page.get_by_label("Allow unsubscribe").uncheck())
    expect(page.locator("#err-html")).to_contain_text("does not allow unsubscribe")
