"""Headless Chromium at 1366×768: a send email step's panel shows its priority and what happens over the
recipient's frequency budget, and a change is saved; the topics page says which topics are exempt.
Screenshots: docs/screenshots/budget-send-step-1366.png, budget-topics-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from consent.models import Topic
from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}


def test_the_send_step_panel_sets_priority_and_the_over_budget_policy(live_server, page, owner, tenant_a):
    news = Topic.objects.create(tenant=tenant_a, name="Product news")
    Topic.objects.create(tenant=tenant_a, name="Receipts", transactional=True)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Comment fan-out")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="webhook_trigger",
        name="New comment",
        config={"sample": {"email": "ada@example.com", "post_id": 42}},
    )
    send = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=trigger,
        kind="send_email",
        name="Tell the commenters",
        config={"to": "{{ item.email }}", "subject": "New comment", "text": "Hi", "topic": news.pk},
    )
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={send.pk}")
    htmx_idle(page)

    priority, policy = page.locator("#f-priority"), page.locator("#f-over_budget")
    expect(priority).to_have_value("normal")
    expect(policy).to_have_value("drop")
    saved(page, lambda: priority.select_option("low"))
    saved(page, lambda: policy.select_option("defer"))
    policy.scroll_into_view_if_needed()
    expect(priority.locator("xpath=..")).to_contain_text("frequency budget")
    page.screenshot(path=SCREENSHOTS / "budget-send-step-1366.png")
    send.refresh_from_db()
    assert (send.config.get("priority"), send.config.get("over_budget")) == ("low", "defer")

    page.goto(f"{live_server.url}/settings/email/topics/")
    expect(page.locator("table")).to_contain_text("exempt (transactional)")
    expect(page.locator("#id_transactional")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "budget-topics-1366.png")


def test_the_tenant_admin_sets_the_frequency_budget(live_server, page, tenant_a):
    from django.contrib.auth import get_user_model

    from tenants import limits
    from tenants.models import TenantLimits

    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "x")
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, operator)
    page.goto(f"{live_server.url}/admin/tenants/tenant/{tenant_a.pk}/change/")
    messages = page.locator("#id_limits-0-frequency_budget_messages")
    messages.fill("3")
    page.locator("#id_limits-0-frequency_budget_hours").fill("24")
    messages.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.screenshot(path=SCREENSHOTS / "budget-tenant-admin-1366.png")
    page.locator("input[name='_continue']").click()
    expect(page.locator(".messagelist")).to_be_visible()
    row = TenantLimits.objects.get(tenant=tenant_a)
    assert (row.frequency_budget_messages, row.frequency_budget_hours) == (3, 24)
    limits.forget()
    assert limits.limits_for(tenant_a).frequency_budget_messages == 3
