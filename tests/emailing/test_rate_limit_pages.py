"""The limit on the pages: a provider page's limit line ("14/s · 3,200 queued · about 4 min") and its
Limit and Burst fields (browser, screenshot docs/screenshots/provider-limit.png); a run page whose step
waits for its provider's limit says so."""

from __future__ import annotations

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from integrations import ratelimit
from runs.engine import start_run
from runs.engine.context import BatchResources, StepContext
from runs.engine.executor import run_batch
from runs.engine.pacing import Pacer
from runs.models import StepExecution
from tests.builder.test_browser_errors import sign_in
from tests.emailing.conftest import esp_provider, make_sender
from tests.engine.conftest import build_workflow, data_source, email, query, webhook
from tests.engine.test_recovery import recipients_table
from tests.support import SCREENSHOTS
from workflows.steps import get_kind


def queue_sends(tenant, url: str, n: int):
    """A fan-out of `n` emails whose sends are queued, not sent: the trigger and the query run, the
    send step's executions wait (pending)."""
    recipients_table(url, n)
    source = data_source(tenant, url)
    send = email(subject="Your receipt", text="Thanks", name="Receipt")
    workflow = build_workflow(tenant, webhook([query(source, "SELECT id, email FROM r", children=[send])]))
    run = start_run(workflow, {}, f"evt-queued-{n}")
    steps = workflow.published_version.steps
    with override_settings(ENGINE_FOLLOW_MAX_STEPS=0):
        run_batch(run.pk, steps.get(parent=None).pk)
        run_batch(run.pk, steps.get(kind="data_query").pk)
    return run


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_provider_page_shows_its_limit_and_what_waits_for_it(
    live_server, page, owner, tenant_a, tenant_database, httpserver, redis_conn
):
    provider = esp_provider(tenant_a, "amazon_ses", httpserver)  # SES: 14/s unless set
    provider.name = "SES production"
    provider.save()
    make_sender(tenant_a, provider)
    run = queue_sends(tenant_a, tenant_database, 3200)
    assert StepExecution.objects.filter(run=run, step__kind="send_email", status="pending").count() == 3200

    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/settings/email/providers/{provider.pk}/")
    line = page.locator("#limit-line")
    expect(line).to_have_text("14/s · 3,200 queued · about 4 min")
    page.screenshot(path=SCREENSHOTS / "provider-limit.png")

    page.get_by_label("Limit (recipients a second)").fill("40")
    page.get_by_label("Burst").fill("80")
    page.get_by_role("button", name="Save").click()
    expect(line).to_have_text("40/s · 3,200 queued · about 1 min")
    provider.refresh_from_db()
    assert (provider.rate_per_second, provider.rate_burst) == (40, 80)
    page.get_by_label("Limit (recipients a second)").fill("-3")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_label("Limit (recipients a second)").evaluate("e => e.validity.valid") is False
    provider.refresh_from_db()
    assert provider.rate_per_second == 40, "a bad limit changes nothing"
    page.get_by_label("Limit (recipients a second)").fill("40")
    page.locator("#limit-line").scroll_into_view_if_needed()
    page.get_by_label("Burst").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "provider-limit-fields.png")


@pytest.mark.django_db(transaction=True)
def test_the_limit_line_says_when_throttling_slowed_it_down(tenant_a, httpserver, redis_conn):
    provider = esp_provider(tenant_a, "postmark", httpserver)
    assert ratelimit.limit_line(provider.rate_limit, 0) == "No limit"
    assert ratelimit.limit_line(provider.rate_limit, 12) == "No limit · 12 queued"
    provider.rate_per_second, provider.rate_burst = 10, 10
    provider.save()
    ratelimit.throttled(provider.rate_limit)
    assert ratelimit.limit_line(provider.rate_limit, 0).startswith("5.0/s (slowed down from 10/s")


@pytest.mark.django_db(transaction=True)
def test_a_run_page_says_its_messages_wait_for_the_providers_limit(
    owner_client, tenant_a, tenant_database, httpserver, redis_conn
):
    provider = esp_provider(tenant_a, "postmark", httpserver)
    provider.rate_per_second, provider.rate_burst = 2, 1
    provider.save()
    make_sender(tenant_a, provider)
    run = queue_sends(tenant_a, tenant_database, 5)
    page = owner_client.get(f"/activity/runs/{run.pk}/").content.decode()
    assert "waiting for the provider's limit" not in page
    step = run.version.steps.get(kind="send_email")
    ctx = StepContext(run=run, step=step, now=run.created_at, resources=BatchResources())
    pacer = Pacer(ctx, get_kind("send_email"))
    waits = [pacer.reserve({"to": "a@example.com"}) for _ in range(3)]  # what a batch does, 2/s
    assert waits[-1] >= 1.0
    page = owner_client.get(f"/activity/runs/{run.pk}/").content.decode()
    assert "“Receipt”: waiting for the provider's limit (2/s)" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("rate", "burst", "error"),
    [
        ("-3", "", "greater than or equal to 0.01"),
        ("0", "", "greater than or equal to 0.01"),
        ("abc", "", "Enter a number."),
        ("1e9", "", "less than or equal to 100000"),
        ("10", "0", "greater than or equal to 1"),
        ("10", "2.5", "Enter a whole number."),
    ],
)
def test_a_bad_limit_is_refused_in_words_and_changes_nothing(
    owner_client, tenant_a, httpserver, rate, burst, error
):
    provider = esp_provider(tenant_a, "postmark", httpserver)
    answer = owner_client.post(
        f"/settings/email/providers/{provider.pk}/",
        {"name": provider.name, "api_url": "", "rate_per_second": rate, "rate_burst": burst},
    )
    assert answer.status_code == 200 and error in answer.content.decode()
    provider.refresh_from_db()
    assert provider.rate_per_second is None and provider.rate_burst is None
