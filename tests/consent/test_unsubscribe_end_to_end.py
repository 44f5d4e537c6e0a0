"""Issue #15 end to end through a real SMTP server: headers, one-click POST, the next run skips, a GET
changes nothing, a refused recipient and a hard bounce suppress the address on every topic, bad links."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from consent.models import EmailLayout, Suppression, Unsubscribe
from consent.suppression import suppress_address
from consent.tokens import make_token
from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, email, webhook, work

ADA = {"email": "Ada@Example.com", "name": "Ada"}


def tips_workflow(tenant, topic, **extra):
    step = email(
        subject="Tip for {{ item.name }}",
        text="",
        html='<p class="tip">Hello {{ item.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        allow_unsubscribe=True,
        topic=topic.pk,
        **extra,
    )
    return build_workflow(tenant, webhook([step]), name="Tips")


def header_url(message) -> str:
    value = "".join(message["List-Unsubscribe"].split())  # a long header is folded over two lines
    assert value.startswith("<") and value.endswith(">"), value
    return value[1:-1]


def one_click(url: str):
    """What Gmail does (RFC 8058): a POST with that exact body, no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True).post(
        urlsplit(url).path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )


def test_email_carries_both_headers_with_an_absolute_signed_url(clock, smtp, tenant_a, tips, settings):
    settings.PUBLIC_BASE_URL = "https://notify.acme.test"
    start_run(tips_workflow(tenant_a, tips), ADA, "e1")
    work(clock)
    [message] = smtp.messages
    url = header_url(message)
    assert url.startswith("https://notify.acme.test/email/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert url.encode() in html  # {{ unsubscribe_url }} in the body is the same link
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"Hello Ada" in text and url.encode() in text  # made from the HTML, link written out


def test_a_step_without_unsubscribe_sends_no_headers(clock, smtp, tenant_a):
    start_run(build_workflow(tenant_a, webhook([email()])), ADA, "e1")
    work(clock)
    [message] = smtp.messages
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


def test_one_click_post_unsubscribes_and_the_next_run_skips_with_the_reason(clock, smtp, tenant_a, tips):
    workflow = tips_workflow(tenant_a, tips)
    start_run(workflow, ADA, "e1")
    work(clock)
    response = one_click(header_url(smtp.messages[0]))
    assert response.status_code == 200
    assert Unsubscribe.objects.filter(tenant=tenant_a, address="ada@example.com", topic=tips).exists()

    run = start_run(workflow, ADA, "e2")
    work(clock)
    assert len(smtp.messages) == 1, "the unsubscribed recipient must not get the second email"
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == Delivery.Status.SKIPPED
    assert delivery.error == "Skipped: unsubscribed from Tips"
    assert delivery.recipient == "Ada@Example.com"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, "a skipped message is not a failure"
    assert StepExecution.objects.get(run=run, step__kind="send_email").status == "skipped"


def test_a_second_one_click_is_harmless(clock, smtp, tenant_a, tips):
    start_run(tips_workflow(tenant_a, tips), ADA, "e1")
    work(clock)
    url = header_url(smtp.messages[0])
    assert one_click(url).status_code == 200
    assert one_click(url).status_code == 200
    assert Unsubscribe.objects.filter(tenant=tenant_a).count() == 1


def test_a_get_of_the_link_never_unsubscribes(clock, smtp, tenant_a, tips):
    start_run(tips_workflow(tenant_a, tips), ADA, "e1")
    work(clock)
    path = urlsplit(header_url(smtp.messages[0])).path
    for _ in range(3):  # link scanners fetch links, sometimes several times
        response = Client().get(path)
        assert response.status_code == 200
    body = response.content.decode()
    assert "Acme" in body and "Tips" in body and "Rowbell" not in body
    assert response["Referrer-Policy"] == "no-referrer"
    assert not Unsubscribe.objects.exists()
    assert Client().head(path).status_code == 405 or not Unsubscribe.objects.exists()


def test_the_page_buttons_unsubscribe_from_the_topic_or_from_everything(clock, tenant_a, tips, updates):
    client = Client(enforce_csrf_checks=True)
    path = urlsplit(make_url(tenant_a, "ada@example.com", tips)).path
    response = client.post(path, {"action": "unsubscribe"})
    assert response.status_code == 302 and "/email/preferences/" in response["Location"]
    assert set(Unsubscribe.objects.values_list("topic__name", flat=True)) == {"Tips"}
    client.post(path, {"action": "unsubscribe_all"})
    assert set(Unsubscribe.objects.values_list("topic__name", flat=True)) == {"Tips", None}
    page = client.get(response["Location"])
    assert "unsubscribed from everything" in page.content.decode()


def make_url(tenant, address, topic):
    from consent.tokens import unsubscribe_url

    return unsubscribe_url(tenant.pk, address, topic.pk if topic else None)


def test_preferences_switch_a_topic_back_on(clock, tenant_a, tips, updates):
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=tips)
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=None)
    token = make_token(tenant_a.pk, "ada@example.com", tips.pk)
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"/email/preferences/{token}/").content.decode()
    assert "Switch back on" in page and "Product updates" in page
    client.post(f"/email/preferences/{token}/", {"action": "subscribe", "topic": tips.pk})
    client.post(f"/email/preferences/{token}/", {"action": "subscribe"})
    assert not Unsubscribe.objects.exists()


def test_a_topic_of_another_tenant_cannot_be_switched_from_a_link(clock, tenant_a, tenant_b, tips):
    from consent.models import Topic

    foreign = Topic.objects.create(tenant=tenant_b, name="Globex news")
    token = make_token(tenant_a.pk, "ada@example.com", tips.pk)
    response = Client().post(f"/email/preferences/{token}/", {"action": "unsubscribe", "topic": foreign.pk})
    assert response.status_code == 400
    assert not Unsubscribe.objects.exists()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature changed
        lambda t: t[:20],  # truncated by a mail client
        lambda t: "x" + t,
        lambda t: "not-a-token",
        lambda t: "..:::",
    ],
)
def test_a_tampered_link_gets_a_clear_page_not_a_500(clock, tenant_a, tips, mangle):
    token = mangle(make_token(tenant_a.pk, "ada@example.com", tips.pk))
    for method in ("get", "post"):
        for base in ("/email/unsubscribe/", "/email/preferences/"):
            response = getattr(Client(), method)(f"{base}{token}/", {"action": "unsubscribe_all"})
            assert response.status_code == 400, (method, base, token)
            assert "This link is not valid" in response.content.decode()
    one = Client().post(
        f"/email/unsubscribe/{token}/",
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one.status_code == 400
    assert not Unsubscribe.objects.exists()


def test_a_link_signed_for_another_address_cannot_be_edited_into_one_for_mine(clock, tenant_a, tips):
    import base64

    token = make_token(tenant_a.pk, "ada@example.com", tips.pk)
    _payload, _, signature = token.partition(":")
    other = f'[{tenant_a.pk},"bob@example.com",{tips.pk}]'.encode()
    forged = base64.urlsafe_b64encode(other).decode().rstrip("=") + ":" + signature
    assert Client().get(f"/email/unsubscribe/{forged}/").status_code == 400


def test_a_hard_bounce_event_suppresses_the_address_across_topics(clock, smtp, tenant_a, tips, updates):
    """Written against consent.suppression.suppress_address, which the providers' tracking webhook
    (issue #14's delivery events) calls for a hard bounce: the address is then skipped on every topic and
    by transactional steps too."""
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                email(subject="Tip", allow_unsubscribe=True, topic=tips.pk),
                email(subject="Update", allow_unsubscribe=True, topic=updates.pk),
                email(subject="Receipt"),  # transactional: no unsubscribe, no topic
            ]
        ),
    )
    first = start_run(workflow, ADA, "e1")
    work(clock)
    assert len(smtp.messages) == 3
    bounced = Delivery.objects.filter(run=first).first()
    suppress_address(
        tenant_a,
        "ada@example.com",
        Suppression.Reason.HARD_BOUNCE,
        delivery=bounced,
        source=Suppression.Source.EVENT,
        detail="550 5.1.1 mailbox does not exist",
    )
    run = start_run(workflow, ADA, "e2")
    work(clock)
    assert len(smtp.messages) == 3
    errors = sorted(Delivery.objects.filter(run=run).values_list("status", "error"))
    assert errors == [("skipped", "Skipped: suppressed (hard bounce)")] * 3
    entry = Suppression.objects.get(tenant=tenant_a)
    assert entry.delivery_id == bounced.pk and entry.source == "event"


def test_suppress_address_keeps_the_first_entry(clock, tenant_a):
    first = suppress_address(tenant_a, " Ada@Example.com ", Suppression.Reason.COMPLAINT, source="event")
    again = suppress_address(tenant_a.pk, "ada@example.com", Suppression.Reason.HARD_BOUNCE, source="event")
    assert again.pk == first.pk and again.reason == "complaint"
    assert suppress_address(tenant_a, "  ", Suppression.Reason.MANUAL) is None


def test_a_5xx_at_rcpt_fails_the_message_and_suppresses_the_address(clock, smtp, tenant_a, tips):
    smtp.refuse["gone@example.com"] = "550 5.1.1 <gone@example.com>: Recipient address rejected"
    workflow = tips_workflow(tenant_a, tips)
    run = start_run(workflow, {"email": "gone@example.com", "name": "Gone"}, "e1")
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == Delivery.Status.FAILED and "550" in delivery.error
    entry = Suppression.objects.get(tenant=tenant_a, address="gone@example.com")
    assert entry.reason == Suppression.Reason.REJECTED and entry.source == "smtp"
    assert entry.delivery_id == delivery.pk and "Recipient address rejected" in entry.detail

    run = start_run(workflow, {"email": "gone@example.com", "name": "Gone"}, "e2")
    work(clock)
    assert Delivery.objects.get(run=run).status == Delivery.Status.SKIPPED


def test_a_4xx_at_rcpt_suppresses_nothing(clock, smtp, tenant_a, tips):
    smtp.refuse["busy@example.com"] = "450 4.2.1 Mailbox busy, try later"
    start_run(tips_workflow(tenant_a, tips, max_attempts=1), {"email": "busy@example.com", "name": "B"}, "e1")
    work(clock)
    assert not Suppression.objects.exists()


def test_transactional_steps_ignore_unsubscribes_unless_the_operator_says_otherwise(
    clock, smtp, tenant_a, tips, settings
):
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=None)
    workflow = build_workflow(tenant_a, webhook([email(subject="Receipt", topic=tips.pk)]))
    start_run(workflow, ADA, "e1")
    work(clock)
    assert [m["Subject"] for m in smtp.messages] == ["Receipt"]
    settings.CONSENT_TRANSACTIONAL_IGNORES_UNSUBSCRIBES = False
    run = start_run(workflow, ADA, "e2")
    work(clock)
    assert Delivery.objects.get(run=run).error == "Skipped: unsubscribed from everything"


def test_an_empty_recipient_is_skipped_and_the_path_goes_on_only_if_the_step_says_so(clock, smtp, tenant_a):
    wait_child = {"kind": "condition", "config": {"expression": "true"}}
    stops = email(to="{{ item.email }}", children=[wait_child])
    goes_on = email(to="{{ item.email }}", continue_when_skipped=True, children=[dict(wait_child)])
    workflow = build_workflow(tenant_a, webhook([stops, goes_on]))
    run = start_run(workflow, {"email": "", "name": "Nobody"}, "e1")
    work(clock)
    assert smtp.messages == []
    assert set(Delivery.objects.filter(run=run).values_list("status", "error")) == {
        ("skipped", "Skipped: no recipient address")
    }
    conditions = StepExecution.objects.filter(run=run, step__kind="condition")
    assert conditions.count() == 1, "only the step with 'go on' continues"
    sends = StepExecution.objects.filter(run=run, step__kind="send_email")
    assert set(sends.values_list("status", flat=True)) == {"skipped"}
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_a_test_run_says_would_be_skipped(clock, smtp, tenant_a, tips):
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=tips)
    workflow = tips_workflow(tenant_a, tips)
    run = start_run(workflow, ADA, "t1", is_test=True, options={"override_recipient": "me@acme.test"})
    work(clock)
    assert smtp.messages == []
    assert Delivery.objects.get(run=run).error == "Would be skipped: unsubscribed from Tips"


def test_a_layout_wraps_the_body_and_its_css_is_inlined(clock, smtp, tenant_a, tips):
    EmailLayout.objects.create(
        tenant=tenant_a,
        name="Brand",
        is_default=True,
        html=(
            "<html><head><style>.footer { color: #777777; } .tip { font-weight: bold; }</style></head><body>"
            "{% block content %}{% endblock %}"
            '<div class="footer">Acme, 1 Road, Town {% if unsubscribe_url %}<a href="{{ unsubscribe_url }}">Unsubscribe</a>{% endif %}</div>'
            "</body></html>"
        ),
    )
    start_run(tips_workflow(tenant_a, tips), ADA, "e1")
    start_run(build_workflow(tenant_a, webhook([email(text="", html="<p>Receipt</p>")])), ADA, "e2")
    work(clock)
    htmls = [
        next(p for p in m.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
        for m in smtp.messages
    ]
    [receipt] = [h for h in htmls if "Receipt" in h]
    [tip] = [h for h in htmls if "Hello Ada" in h]
    assert '<div class="footer" style="color: #777777;">Acme, 1 Road, Town' in tip
    assert '<p class="tip" style="font-weight: bold;">Hello Ada</p>' in tip
    assert "<style" not in tip
    # The receipt chose no layout, so it gets the default one, without the link (no unsubscribe allowed).
    assert "<p>Receipt</p>" in receipt and "Acme, 1 Road" in receipt and "Unsubscribe" not in receipt


def test_a_held_message_released_after_the_recipient_unsubscribed_is_skipped(clock, smtp, tenant_a, tips):
    from runs.engine import release_delivery

    workflow = build_workflow(
        tenant_a, webhook([email(allow_unsubscribe=True, topic=tips.pk)]), sandbox=True, name="Sandbox"
    )
    run = start_run(workflow, ADA, "e1")
    work(clock)
    held = Delivery.objects.get(run=run)
    assert held.status == Delivery.Status.HELD
    Unsubscribe.objects.create(tenant=tenant_a, address="ada@example.com", topic=tips)
    assert release_delivery(held.pk) is False
    held.refresh_from_db()
    assert (held.status, held.error) == ("skipped", "Skipped: unsubscribed from Tips")
    assert smtp.messages == []
