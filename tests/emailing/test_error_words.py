"""Delivery errors in plain words (#21): "Nothing answers at 127.0.0.1:9 (connection refused)", with the
library's raw text one click away on the run page and the message page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.channels.base import ChannelError
from integrations.channels.http import HttpChannel
from runs.engine import start_run
from runs.models import Delivery, StepExecution
from tests.engine.conftest import build_workflow, webhook, work
from tests.support import free_port


def test_a_refused_http_call_says_nothing_answers_at_the_address(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    port = free_port()
    with pytest.raises(ChannelError) as error:
        HttpChannel().send(
            {"method": "POST", "url": f"http://127.0.0.1:{port}/hook", "headers": {}, "body": "{}"}
        )
    words, _, raw = error.value.message.partition("\nDetails: ")
    assert words == f"Nothing answers at 127.0.0.1:{port} (connection refused)."
    assert "could not be reached" in raw and "Connection refused" in raw


def test_a_refused_mail_server_says_so_in_words_with_the_raw_text_behind_details(
    clock, settings, tenant_a, owner_client
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    send = {
        "kind": "send_email",
        "name": "Welcome",
        "config": {"to": "{{ item.email }}", "subject": "Hi", "text": "Hi", "max_attempts": 1},
    }
    run = start_run(build_workflow(tenant_a, webhook([send])), {"email": "ada@example.com"}, "e1")
    work(clock)
    execution = StepExecution.objects.get(run=run, step__name="Welcome")
    assert execution.status == "failed", execution.error
    address = f"127.0.0.1:{settings.EMAIL_PORT}"
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk]), {"step": execution.step_id})
    html = page.content.decode()
    assert f'<div class="error exec-error">Nothing answers at {address} (connection refused).' in html
    assert (
        '<details class="raw-error"><summary>Raw error</summary><pre>The mail server could not be reached'
        in html
    )
    delivery = Delivery.objects.filter(step_execution=execution).first()
    if delivery is not None and delivery.error:
        detail = owner_client.get(reverse("runs:message_detail", args=[delivery.pk])).content.decode()
        assert f"Nothing answers at {address}" in detail and "Raw error" in detail
