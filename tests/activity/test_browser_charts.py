"""Every chart in Chromium at 1366×768: it renders, and its numbers match the rows behind it.

Known rows are written at fixed times before a stopped clock; each test reads the chart's table (the
accessible one, in its <details>), compares it with what was seeded, and checks that the SVG draws the
same numbers (segment values per bar, or points per line, with heights proportional to them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import Page, expect, sync_playwright

from runs.charts.queries import MESSAGE_DAYS
from runs.models import Delivery, Run
from tests.activity.test_charts import message_at, run_at
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import SCREENSHOTS, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def page(live_server, owner, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    monkeypatch.setattr("integrations.clock.now", lambda: NOW)
    client = Client()
    client.force_login(owner)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        connections.close_all()
    connections.close_all()


@pytest.fixture
def workflows(tenant_a, tenant_b):
    onboarding = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Onboarding")
    digest = build_workflow(tenant_a, webhook([email(name="Digest")]), name="Digest")
    theirs = build_workflow(tenant_b, webhook([email(name="Theirs")]), name="Theirs")
    return onboarding, digest, theirs


def read_table(page: Page, chart_id: str) -> dict[str, dict[str, int]]:
    """{row label: {series key: n}} from the chart's table, opened as a person would."""
    chart = page.locator(f"#{chart_id}")
    chart.locator("details.chart-table summary").click()
    keys = chart.locator("thead th[data-series]").evaluate_all("ths => ths.map(th => th.dataset.series)")
    rows = chart.locator("tbody tr").evaluate_all(
        "trs => trs.map(tr => [tr.querySelector('th').textContent.trim(),"
        " Array.from(tr.querySelectorAll('td')).map(td => Number(td.textContent))])"
    )
    return {label: dict(zip(keys, cells, strict=True)) for label, cells in rows}


def read_bars(page: Page, chart_id: str) -> dict[str, dict[str, int]]:
    """{bucket: {series: value}} as drawn, checking that every segment's height is proportional."""
    segments = page.locator(f"#{chart_id} svg g.bar rect").evaluate_all(
        "rects => rects.map(r => [r.parentNode.dataset.bucket, r.dataset.series, Number(r.dataset.value),"
        " Number(r.getAttribute('height'))])"
    )
    drawn: dict[str, dict[str, int]] = {}
    per_unit = {round(height / value, 1) for _bucket, _series, value, height in segments}
    assert max(per_unit) - min(per_unit) <= 0.2, per_unit  # one scale for every segment
    for bucket, series, value, _height in segments:
        drawn.setdefault(bucket, {})[series] = value
    return drawn


def read_lines(page: Page, chart_id: str) -> dict[str, list[int]]:
    return dict(
        page.locator(f"#{chart_id} svg g.line").evaluate_all(
            "gs => gs.map(g => [g.dataset.series,"
            " Array.from(g.querySelectorAll('circle')).map(c => Number(c.dataset.value))])"
        )
    )


def nonzero(table: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {label: {k: n for k, n in row.items() if n} for label, row in table.items() if any(row.values())}


def seed_runs(onboarding, digest, theirs) -> None:
    for n in range(3):
        run_at(onboarding, f"ok-{n}", NOW - 5 * HOUR)
    run_at(onboarding, "failed", NOW - 5 * HOUR, status=Run.Status.FAILED)
    run_at(onboarding, "partial", NOW - 1 * HOUR, status=Run.Status.PARTIAL)
    run_at(onboarding, "open", NOW, status=Run.Status.RUNNING)
    run_at(digest, "digest", NOW, status=Run.Status.SUCCEEDED)
    run_at(digest, "cancelled", NOW - 23 * HOUR, status=Run.Status.CANCELLED)
    run_at(onboarding, "test", NOW, is_test=True)
    run_at(onboarding, "old", NOW - 30 * HOUR)
    run_at(theirs, "theirs", NOW)


ALL_RUNS = {
    "15:00": {},  # (the label of the hour 23 hours before 14:00 is 15:00 of the day before)
    "09:00": {"succeeded": 3, "failed": 1},
    "13:00": {"partial": 1},
    "14:00": {"running": 1, "succeeded": 1},
}


def test_runs_per_hour_on_the_dashboard(live_server, page, workflows):
    seed_runs(*workflows)
    page.goto(f"{live_server.url}/")
    chart = page.locator("#runs-chart")
    expect(chart.locator("h2")).to_have_text("Runs per hour, last 24 hours")
    expect(chart.locator('.chart-legend [data-series="succeeded"] strong')).to_have_text("4")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-runs-chart.png"))
    table = read_table(page, "runs-chart")
    assert len(table) == 24
    expected = {**{k: v for k, v in ALL_RUNS.items() if v}, "15:00": {"cancelled": 1}}
    assert nonzero(table) == expected
    assert read_bars(page, "runs-chart") == expected


def test_runs_per_hour_on_the_activity_pages(live_server, page, workflows):
    onboarding, _digest, _theirs = workflows
    seed_runs(*workflows)
    page.goto(f"{live_server.url}/activity/")
    expect(page.locator("#runs-chart svg")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "activity-runs-chart.png"))
    assert nonzero(read_table(page, "runs-chart")) == {
        **{k: v for k, v in ALL_RUNS.items() if v},
        "15:00": {"cancelled": 1},
    }
    page.goto(f"{live_server.url}/activity/workflows/{onboarding.pk}/")
    expect(page.locator("#runs-chart h2")).to_have_text("Runs of Onboarding per hour, last 24 hours")
    scoped = {"09:00": {"succeeded": 3, "failed": 1}, "13:00": {"partial": 1}, "14:00": {"running": 1}}
    assert nonzero(read_table(page, "runs-chart")) == scoped
    assert read_bars(page, "runs-chart") == scoped


def test_an_empty_chart_says_so(live_server, page, workflows):
    page.goto(f"{live_server.url}/activity/")
    expect(page.locator("#runs-chart .chart-empty")).to_have_text("No run started in the last 24 hours.")
    expect(page.locator("#runs-chart svg")).to_have_count(0)
    assert nonzero(read_table(page, "runs-chart")) == {}


def seed_messages(onboarding, digest, theirs) -> None:
    message_at(onboarding, "a", NOW - 2 * DAY, events=["delivered", "opened", "opened"])
    message_at(onboarding, "b", NOW - 2 * DAY, events=["delivered", "bounced"])
    message_at(onboarding, "c", NOW - 2 * DAY, status=Delivery.Status.SKIPPED)
    message_at(onboarding, "d", NOW, events=["delivered", "complained"])
    message_at(digest, "e", NOW, events=["delivered", "opened"])
    message_at(onboarding, "f", NOW, status=Delivery.Status.CAPTURED, is_test=True)
    message_at(onboarding, "g", NOW - 20 * DAY, events=["delivered"])
    message_at(theirs, "h", NOW, events=["delivered"])


def test_messages_per_day_on_the_messages_pages(live_server, page, workflows):
    onboarding, _digest, _theirs = workflows
    seed_messages(*workflows)
    page.goto(f"{live_server.url}/activity/messages/")
    chart = page.locator("#messages-chart")
    expect(chart.locator("svg g.line")).to_have_count(6)
    page.screenshot(path=str(SCREENSHOTS / "messages-chart.png"))
    table = read_table(page, "messages-chart")
    assert len(table) == MESSAGE_DAYS
    everything = {
        "Dec 5": {"sent": 2, "delivered": 2, "opened": 1, "bounced": 1, "skipped": 1},
        "Dec 7": {"sent": 2, "delivered": 2, "opened": 1, "complained": 1},
    }
    assert nonzero(table) == everything
    lines = read_lines(page, "messages-chart")
    assert {key: values[-3] for key, values in lines.items() if values[-3]} == everything["Dec 5"]
    assert {key: values[-1] for key, values in lines.items() if values[-1]} == everything["Dec 7"]

    page.goto(f"{live_server.url}/activity/workflows/{onboarding.pk}/messages/")
    expect(page.locator("#messages-chart h2")).to_have_text(
        f"Messages of Onboarding per day, last {MESSAGE_DAYS} days"
    )
    page.screenshot(path=str(SCREENSHOTS / "workflow-messages-chart.png"))
    assert nonzero(read_table(page, "messages-chart")) == {
        "Dec 5": everything["Dec 5"],
        "Dec 7": {"sent": 1, "delivered": 1, "complained": 1},
    }
    # The per-step email counts arrive after the page shows, like the chart (a, b and d of the last 7 days).
    counts = page.locator("#tracking-counts table.tracking-counts tbody tr")
    expect(counts).to_have_count(1)
    expect(counts.locator("td")).to_have_text(["Welcome", "3", "3", "1", "1", "1", "0"])
    counts.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "workflow-messages-step-counts.png"))


def test_the_step_counts_say_in_place_when_they_cannot_be_loaded(live_server, page, workflows):
    onboarding, _digest, _theirs = workflows
    seed_messages(*workflows)
    # The server failing on the counts alone (the page and its chart still load).
    page.route("**/messages/counts/", lambda route: route.fulfill(status=500, body="boom"))
    page.goto(f"{live_server.url}/activity/workflows/{onboarding.pk}/messages/")
    expect(page.locator("#tracking-counts .load-error")).to_have_text(
        "Could not load the message counts per step (the server answered 500). Try again, or reload the page."
    )
    expect(page.locator("#messages-chart svg")).to_be_visible()
    # a, b, c, d and g (not the test run)
    expect(page.locator("table.messages tbody tr.message")).to_have_count(5)
