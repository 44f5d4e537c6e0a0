"""Headless Chromium: a bad template shows its error under the field as soon as it is saved, publishing
is refused naming the step, and a second tab editing the same draft is told its copy was stale."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from tests.builder.conftest import preview_finished, saved
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def draft_email(tenant_a):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Signup hook")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant_a, version=draft, kind="webhook_trigger", name="Hook", config={})
    email = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=root,
        kind="send_email",
        name="Say hi",
        config={"to": "{{ item.email }}", "subject": "Hi", "text": "Hello"},
    )
    return workflow, email


def sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )


def test_template_error_under_the_field_and_publish_refused(live_server, page, owner, draft_email):
    workflow, email = draft_email
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={email.pk}")
    saved(page, lambda: page.fill("#f-text", "Hello {{ item.name }}\n{% for x in %}"))
    expect(page.locator("#err-text")).to_contain_text("line 2")
    expect(page.locator(f"#node-warn-{email.pk}")).to_have_text("needs fixing")
    email.refresh_from_db()
    assert email.config["text"] == "Hello {{ item.name }}\n{% for x in %}"

    page.get_by_role("button", name="Publish…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be published yet")
    expect(dialog.get_by_role("link", name="Say hi")).to_be_visible()
    expect(dialog.get_by_role("button", name="Publish version 1")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    saved(page, lambda: page.fill("#f-text", "Hello {{ item.name }}"))
    expect(page.locator("#err-text")).to_be_empty()
    expect(page.locator(f"#node-warn-{email.pk}")).to_be_empty()
    page.get_by_role("button", name="Publish…").click()
    preview_finished(page)
    page.get_by_role("dialog").get_by_role("button", name="Publish version 1").click()
    expect(page.locator("h1 .badge-ok")).to_have_text("Live v1")
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1


def test_second_tab_is_told_its_copy_was_stale(live_server, page, owner, draft_email):
    workflow, email = draft_email
    sign_in(page, live_server, owner)
    url = f"{live_server.url}/workflows/{workflow.pk}/?step={email.pk}"
    page.goto(url)
    other = page.context.new_page()
    other.goto(url)
    saved(other, lambda: other.fill("#f-subject", "Subject from the other tab"))
    expect(other.locator("#save-status")).to_contain_text("Saved")

    saved(page, lambda: page.fill("#step-name", "Named in the first tab"))
    expect(page.locator("#save-status")).to_contain_text("changed in another tab")
    email.refresh_from_db()
    # Each tab's own edit is kept: the stale tab saved only the field it changed.
    assert email.name == "Named in the first tab" and email.config["subject"] == "Subject from the other tab"
    # ...and its panel now shows the merged draft.
    expect(page.locator("#f-subject")).to_have_value("Subject from the other tab")
    # Having been told, the first tab is current again: its next save is not flagged.
    saved(page, lambda: page.fill("#step-name", "Renamed again"))
    expect(page.locator("#save-status")).not_to_contain_text("another tab")
