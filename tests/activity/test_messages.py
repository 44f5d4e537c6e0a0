"""The messages list and a message's page: recipient, channel, status, time, rendered content."""

from __future__ import annotations

import re

from django.urls import reverse

from runs.models import Delivery
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of

MESSAGES = reverse("runs:message_list")


def test_messages_list_filters_and_searches(owner_client, onboarding):
    run = make_run(onboarding, "m")
    steps = steps_of(onboarding)
    held = add_delivery(
        add_execution(run, steps["Welcome"], "0"), "ann@example.com", status=Delivery.Status.HELD
    )
    sent = add_delivery(add_execution(run, steps["Tell the team"], "0"), "team@example.com")
    test_run = make_run(onboarding, "t", is_test=True)
    add_delivery(add_execution(test_run, steps["Welcome"], "0"), "cap@example.com", status="captured")
    page = owner_client.get(MESSAGES)
    assert [d.pk for d in page.context["page"].items] == [sent.pk, held.pk]
    html = page.content.decode()
    assert "Welcome ann@example.com" in html and "Held (sandbox)" in html and "cap@example.com" not in html
    assert page.context["held_count"] == 1
    assert [d.pk for d in owner_client.get(MESSAGES, {"status": "held"}).context["page"].items] == [held.pk]
    assert [d.pk for d in owner_client.get(MESSAGES, {"q": "team@example.com"}).context["page"].items] == [
        sent.pk
    ]
    assert owner_client.get(MESSAGES, {"channel": "slack"}).context["page"].items == []


def test_email_html_renders_in_a_sandboxed_iframe_from_its_own_url(
    owner_client, onboarding, client, outsider
):
    run = make_run(onboarding, "h")
    content = {
        "to": "ann@example.com",
        "subject": "Hi",
        "text": "plain",
        "html": '<p style="color: red">Hi "Ann"</p><script>x()</script>',
    }
    delivery = add_delivery(
        add_execution(run, steps_of(onboarding)["Welcome"], "0"), "ann@example.com", content=content
    )
    html = owner_client.get(reverse("runs:message_detail", args=[delivery.pk])).content.decode()
    src = re.search(r'<iframe class="email-html" title="Email HTML body" sandbox src="([^"]+)"', html).group(
        1
    )
    assert "<script>x()" not in html and "plain" in html
    body = owner_client.get(src)
    assert body.content.decode() == content["html"]
    assert body["Content-Security-Policy"].startswith(
        "sandbox; default-src 'none'; style-src 'unsafe-inline'"
    )
    assert body["X-Frame-Options"] == "SAMEORIGIN"
    client.force_login(outsider)  # another tenant's member cannot read it, even with the URL
    assert client.get(src).status_code == 404


def test_the_messages_page_costs_the_same_queries_for_2_or_40_messages(owner_client, onboarding):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n):
        run = make_run(onboarding, f"m{n}")
        add_delivery(add_execution(run, steps_of(onboarding)["Welcome"], "0"), f"p{n}@example.com")

    for n in range(2):
        add(n)
    with CaptureQueriesContext(connection) as few:
        owner_client.get(MESSAGES)
    for n in range(2, 40):
        add(n)
    with CaptureQueriesContext(connection) as many:
        page = owner_client.get(MESSAGES)
    assert len(page.context["page"].items) == 40 and len(many) == len(few)
