"""Content-Security-Policy: every main page loads in Chromium with no violation, and still works.

The policy (config/settings.py CONTENT_SECURITY_POLICY) allows no inline script or style. A violation shows
twice, and both are collected: as a console message, and as a `securitypolicyviolation` event, recorded by
a script Playwright adds to every document (also in frames) before the page's own.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from consent.tokens import make_token
from integrations.models import EventEndpoint, Provider, Sender
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.builder.conftest import customer_db, datasource, page, saved  # noqa: F401 (fixtures)
from tests.builder.test_browser import add_step
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import build_workflow, email, webhook
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
                              `at ${event.sourceFile || document.location.href}:${event.lineNumber}`);
});
"""
EMAIL_HTML = '<h1 style="color: #cc0000">Hi {{ item.email }}</h1><p>Welcome aboard.</p>'


class Violations:
    """Everything the browser reported against the policy, from the console and from the DOM event."""

    def __init__(self, page: Page):  # noqa: F811 (a browser page, not the fixture)
        self.page = page
        self.console: list[str] = []
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def collect(self) -> list[str]:
        events = []
        for frame in self.page.frames:
            try:
                events += frame.evaluate("window.__cspViolations || []")
            except Exception:  # a frame that navigated away meanwhile
                continue
        found, self.console = self.console + events, []
        return found


@pytest.fixture
def site(tenant_a, owner, datasource):  # noqa: F811 (the fixture imported above)
    """A tenant with something on every page: a published workflow with an HTML email and its draft, a run
    that sent that email, a data source, an endpoint; the owner is also staff, for the admin."""
    owner.is_staff = owner.is_superuser = True
    owner.save()
    workflow = build_workflow(
        tenant_a, webhook([email(name="Welcome", html=EMAIL_HTML, text="Hi {{ item.email }}")]), name="Signup"
    )
    welcome = steps_of(workflow)["Welcome"]
    run = make_run(workflow, "evt-1")
    html = EMAIL_HTML.replace("{{ item.email }}", "Ann")
    delivery = add_delivery(
        add_execution(run, welcome, "0"),
        "ann@example.com",
        content={"to": "ann@example.com", "subject": "Hi Ann", "text": "Hi Ann", "html": html},
    )
    draft_step = get_or_create_draft(workflow).steps.get(kind="send_email")
    endpoint = EventEndpoint.objects.create(
        tenant=tenant_a, url="https://example.com/hook", events=["run.failed"]
    )
    provider = Provider(tenant=tenant_a, kind="postmark", name="Postmark")
    provider.secret_values = {"server_token": "pm-token"}
    provider.save()
    sender = Sender.objects.create(
        tenant=tenant_a, name="Support", from_address="s@acme.example", provider=provider
    )
    return {
        "provider": provider,
        "sender": sender,
        "workflow": workflow,
        "draft_step": draft_step,
        "run": run,
        "delivery": delivery,
        "datasource": datasource,
        "endpoint": endpoint,
    }


def main_pages(site) -> dict[str, str]:
    workflow, source = site["workflow"], site["datasource"]
    return {
        "dashboard": reverse("workflows:dashboard"),
        "workflow list": reverse("workflows:list"),
        "versions": reverse("workflows:versions", args=[workflow.pk]),
        "data sources": reverse("integrations:datasource_list"),
        "data source": reverse("integrations:datasource_detail", args=[source.pk]),
        "data source edit": reverse("integrations:datasource_edit", args=[source.pk]),
        "new data source": reverse("integrations:datasource_add"),
        "activity": reverse("runs:run_list"),
        "run": reverse("runs:run_detail", args=[site["run"].pk]),
        "messages": reverse("runs:message_list"),
        "workflow activity": reverse("runs:workflow_runs", args=[workflow.pk]),
        "workflow messages": reverse("runs:workflow_messages", args=[workflow.pk]),
        "system": reverse("system"),
        "message": reverse("runs:message_detail", args=[site["delivery"].pk]),
        "test page": reverse("runs:test_workflow", args=[workflow.pk]),
        "members": reverse("tenants:members"),
        "API keys": reverse("tenants:api_keys"),
        "event webhooks": reverse("events:endpoint_list"),
        "new endpoint": reverse("events:endpoint_add"),
        "edit endpoint": reverse("events:endpoint_edit", args=[site["endpoint"].pk]),
        "email topics": reverse("consent:topics"),
        "email layouts": reverse("consent:layouts"),
        "new email layout": reverse("consent:new_layout"),
        "suppression list": reverse("consent:suppressions"),
        "email": reverse("email:settings"),
        "email provider": reverse("email:provider", args=[site["provider"].pk]),
        "new email provider": reverse("email:provider_add") + "?kind=smtp",
        "email sender": reverse("email:sender", args=[site["sender"].pk]),
        "admin": "/admin/",
        "admin runs": "/admin/runs/run/",
        "admin run": f"/admin/runs/run/{site['run'].pk}/change/",
        "admin workflows": "/admin/workflows/workflow/",
        "admin queues": "/admin/rq/",
    }


def test_every_main_page_loads_without_a_policy_violation(live_server, page, owner, site):  # noqa: F811
    violations = Violations(page)
    found = {}
    for name in ("login", "signup", "password_reset"):  # signed out
        page.goto(f"{live_server.url}{reverse(f'tenants:{name}')}", wait_until="networkidle")
        found[name] = violations.collect()
    token = make_token(site["workflow"].tenant_id, "ann@example.com", None)
    for name in ("unsubscribe", "preferences"):  # a recipient's pages, from an email's link
        page.goto(f"{live_server.url}{reverse(f'consent:{name}', args=[token])}", wait_until="networkidle")
        found[name] = violations.collect()
    sign_in(page, live_server, owner)
    for name, path in main_pages(site).items():
        response = page.goto(f"{live_server.url}{path}", wait_until="networkidle")
        assert response.status == 200, f"{name}: {path} answered {response.status}"
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert ("'unsafe-inline'" in policy) == path.startswith("/admin/rq/"), f"{name}: {policy}"
        found[name] = violations.collect()
    assert {name: v for name, v in found.items() if v} == {}


def test_email_html_keeps_its_own_styles_in_its_frame(live_server, page, owner, site):  # noqa: F811
    violations = Violations(page)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}{reverse('runs:message_detail', args=[site['delivery'].pk])}")
    heading = page.frame_locator("iframe.email-html").locator("h1")
    expect(heading).to_have_text("Hi Ann")
    expect(heading).to_have_css("color", "rgb(204, 0, 0)")  # the email's inline style applies in its frame
    assert violations.collect() == []


def test_the_builder_works_under_the_policy(live_server, page, owner, site):  # noqa: F811
    """A step open, autosave, the email preview, adding a step: the builder's scripts are all static files."""
    violations = Violations(page)
    sign_in(page, live_server, owner)
    step = site["draft_step"]
    page.goto(f"{live_server.url}/workflows/{site['workflow'].pk}/?step={step.pk}", wait_until="networkidle")
    saved(page, lambda: page.fill("#f-subject", "Welcome {{ item.email }}"))
    step.refresh_from_db()
    assert step.config["subject"] == "Welcome {{ item.email }}"
    preview = page.frame_locator("#step-preview iframe.mail-body").locator("h1")
    expect(preview).to_have_css("color", "rgb(204, 0, 0)")

    add_step(page, "Add a step below: Welcome", "wait")
    expect(page.locator(".node", has_text=re.compile("Wait"))).to_have_count(1)
    assert violations.collect() == []


def test_confirmations_still_ask_without_inline_handlers(live_server, page, owner, site):  # noqa: F811
    violations = Violations(page)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}{reverse('integrations:datasource_detail', args=[site['datasource'].pk])}")
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    assert asked == [
        "Delete this data source? Rowbell forgets the connection; nothing in your database changes."
    ]
    site["datasource"].refresh_from_db()  # still there: dismissing the question stopped the form
    assert violations.collect() == []
