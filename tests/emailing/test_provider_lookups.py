"""Found from outside, providers: an ESP's permanent "inactive recipient" answer suppresses the address;
messages carry an opaque key, no internal id; and a message a SIGKILLed worker left `sending` is looked
up at the providers that can answer (Postmark's outbound message search by metadata, Mailgun's events
API by custom variable) — marked sent when the provider has it, sent once when it has not — while
the others (plain SMTP) leave it uncertain as before.

Each ESP is a local server speaking its API (pytest-httpserver, threaded): it accepts a message the moment
its request arrives (remembering the key Rowbell put in its metadata), answers after 30 ms, and answers
the lookups from what it accepted.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from urllib.parse import parse_qs

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from consent.models import Suppression
from integrations.message_keys import PATTERN, message_key
from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import Delivery, Run, StepExecution
from tests.emailing.conftest import esp_provider, make_sender
from tests.engine.conftest import build_workflow, data_source, email, query, settle, webhook
from tests.engine.test_liveness import LEASE, process_env, wait_for, worker
from tests.engine.test_recovery import real_clock, recipients_table

INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: "
    "ann@example.com. Inactive recipients are ones that have generated a hard bounce or a spam complaint. "
)


def test_postmark_inactive_recipient_is_suppressed_like_an_smtp_550(clock, tenant_a, httpserver, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 406, "Message": INACTIVE}, status=422
    )
    make_sender(tenant_a, esp_provider(tenant_a, "postmark", httpserver))
    run = start_run(
        build_workflow(tenant_a, webhook([email()])), {"email": "ann@example.com", "name": "Ann"}, "e1"
    )
    settle(clock)
    execution = StepExecution.objects.get(run=run, step__kind="send_email")
    assert execution.status == "failed" and execution.attempts == 1, "permanent: not retried"
    suppression = Suppression.objects.get(tenant=tenant_a, address="ann@example.com")
    assert suppression.reason == Suppression.Reason.REJECTED and "inactive" in suppression.detail
    again = start_run(run.workflow, {"email": "ann@example.com", "name": "Ann"}, "e2")
    settle(clock)
    assert StepExecution.objects.get(run=again, step__kind="send_email").status == "skipped"
    assert len(httpserver.log) == 1, "never tried again"


def test_an_invalid_address_is_refused_but_not_suppressed(clock, tenant_a, httpserver, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ann@example.com'."}, status=422
    )
    make_sender(tenant_a, esp_provider(tenant_a, "postmark", httpserver))
    run = start_run(
        build_workflow(tenant_a, webhook([email()])), {"email": "ann@example.com", "name": "A"}, "e1"
    )
    settle(clock)
    assert StepExecution.objects.get(run=run, step__kind="send_email").status == "failed"
    assert not Suppression.objects.filter(tenant=tenant_a).exists()


def test_messages_carry_an_opaque_key_and_no_internal_id(clock, tenant_a, smtp):
    run = start_run(
        build_workflow(tenant_a, webhook([email()])), {"email": "ann@example.com", "name": "A"}, "e"
    )
    settle(clock)
    execution = StepExecution.objects.get(run=run, step__kind="send_email")
    key = smtp.messages[0]["X-Rowbell-Key"]
    assert PATTERN.fullmatch(key) and key == message_key(execution.pk), "ours to recompute"
    assert "exec" not in key and message_key(execution.pk + 1) != key


class Esp:
    """A Postmark or Mailgun API: accepts on arrival, answers after `delay`, answers lookups."""

    def __init__(self, server: HTTPServer, kind: str):
        self.kind = kind
        self.lock = threading.Lock()
        self.accepted: list[str] = []  # keys, in arrival order (one per accepted message)
        self.lookups = 0
        self.delay = 0.03
        if kind == "postmark":
            server.expect_request("/email", method="POST").respond_with_handler(self.send)
            server.expect_request("/messages/outbound", method="GET").respond_with_handler(self.search)
        else:
            server.expect_request(re.compile(r"/v3/[^/]+/messages"), method="POST").respond_with_handler(
                self.send
            )
            server.expect_request(re.compile(r"/v3/[^/]+/events"), method="GET").respond_with_handler(
                self.search
            )

    def send(self, request: Request) -> Response:
        if self.kind == "postmark":
            key = (json.loads(request.get_data()).get("Metadata") or {}).get("rowbell_key", "")
        else:
            key = request.form.get("v:rowbell_key", "")
        assert PATTERN.fullmatch(key), "Rowbell sets the metadata before sending"
        with self.lock:
            self.accepted.append(key)
        time.sleep(self.delay)
        if self.kind == "postmark":
            return Response(json.dumps({"MessageID": f"pm-{key}", "ErrorCode": 0, "Message": "OK"}),
                            content_type="application/json")  # fmt: skip
        return Response(json.dumps({"id": f"<{key}@mg>", "message": "Queued. Thank you."}),
                        content_type="application/json")  # fmt: skip

    def search(self, request: Request) -> Response:
        query = parse_qs(request.query_string.decode())
        if self.kind == "postmark":
            key = query["metadata_rowbell_key"][0]
        else:
            assert query["event"] == ["accepted"]
            key = json.loads(query["user-variables"][0])["rowbell_key"]
        with self.lock:
            self.lookups += 1
            found = key in self.accepted
        if self.kind == "postmark":
            body = {"TotalCount": int(found), "Messages": [{"MessageID": f"pm-{key}"}] if found else []}
        else:
            body = {"items": [{"event": "accepted", "user-variables": {"rowbell_key": key}}] if found else [],
                    "paging": {}}  # fmt: skip
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def esp_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["postmark", "mailgun"])
def test_a_sigkilled_worker_leaves_nothing_uncertain_that_the_provider_can_account_for(
    kind, redis_conn, tenant_a, tenant_database, esp_server, monkeypatch, settings, tmp_path
):
    settings.WORKER_LEASE_SECONDS = LEASE
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PROVIDER_LOOKUP_SETTLE_SECONDS = 0
    clock = real_clock(monkeypatch)
    esp = Esp(esp_server, kind)
    provider = esp_provider(tenant_a, kind, esp_server)
    make_sender(tenant_a, provider, address="support@acme.example")
    recipients_table(tenant_database, 200)
    source = data_source(tenant_a, tenant_database)
    send = email(subject="hi", text="x")
    workflow = build_workflow(tenant_a, webhook([query(source, "SELECT id, email FROM r", children=[send])]))
    run = start_run(workflow, {}, f"evt-kill-{kind}")
    env = process_env(25, ENGINE_SEND_CONCURRENCY="8", OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
                      PROVIDER_LOOKUP_SETTLE_SECONDS="0")  # fmt: skip
    workers = [worker(env, tmp_path / f"w{i}.log") for i in range(2)]
    wait_for(lambda: len(esp.accepted) >= 40, 60, "the first messages")
    for process in workers:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert len(esp.accepted) < 200
    left_sending = Delivery.objects.filter(run=run, status="sending").count()

    killed_at = time.monotonic()
    while StepExecution.objects.filter(run=run, status="running").exists():
        assert time.monotonic() - killed_at < LEASE + 10, "the claims of the dead workers were not reclaimed"
        clock.now = timezone.now()
        sweep()
        time.sleep(0.25)
    restarted = worker(env, tmp_path / "w-restart.log")
    restarted.wait(timeout=180)
    settle(clock, step_seconds=60)

    counts = Counter(esp.accepted)
    assert len(counts) == 200 and max(counts.values()) == 1, "every message once, none twice"
    statuses = Counter(Delivery.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == {"sent": 200}, f"nothing uncertain: {statuses} ({left_sending} were left sending)"
    assert esp.lookups >= left_sending > 0, "the messages left sending were looked up"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_only_postmark_and_mailgun_can_be_asked():
    """Plain SMTP keeps today's behaviour: see tests/engine/test_uncertain_and_attempts.py; here, the
    kind says it cannot tell, so nothing is decided on a guess."""
    from integrations.email_providers import EMAIL_KINDS

    can = {kind.key: kind.can_look_up for kind in EMAIL_KINDS}
    assert can == {
        "amazon_ses": False,
        "brevo": False,
        "mailgun": True,
        "postmark": True,
        "resend": False,
        "sendgrid": False,
        "smtp": False,
    }
