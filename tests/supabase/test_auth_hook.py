"""Supabase's Send Email hook: signed requests (Standard Webhooks) start the starter workflow's run, the
right email goes out once, and bad signatures, old timestamps, replays and odd bodies are refused with
the documented answers (runs/supabase_hooks.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import requests
from django.test import Client
from django.urls import reverse

from integrations.supabase_hook import ACTIONS, as_json, hook_secret, sample_body, sign
from runs.models import Delivery, Run
from tests.engine.conftest import settle, work
from workflows.publishing import publish
from workflows.starters import create_auth_email_starter


@pytest.fixture
def auth_workflow(clock, tenant_a):
    workflow = create_auth_email_starter(tenant_a)
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


def request_body(action: str = "signup", email: str = "ada@example.com", **data) -> bytes:
    body = sample_body()
    body["user"]["email"] = email
    body["email_data"].update(email_action_type=action, **data)
    return as_json(body)


def signed(workflow, body: bytes, *, webhook_id: str | None = None, at: int | None = None) -> dict[str, str]:
    secret = hook_secret(workflow.webhook_secret)
    return sign(secret, body, webhook_id or f"msg_{uuid.uuid4().hex}", at or int(time.time()))


def post(workflow, body: bytes, headers: dict[str, str]):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return Client().post(f"/hooks/supabase/{workflow.pk}/", body, content_type="application/json", **extra)


def test_a_signed_signup_request_sends_the_confirmation_once(clock, smtp, auth_workflow):
    body = request_body("signup", "ada@example.com")
    headers = signed(auth_workflow, body)
    answer = post(auth_workflow, body, headers)
    assert answer.status_code == 200, answer.content
    assert smtp.messages == []  # the answer did not wait for the send
    work(clock)
    assert [(m["To"], m["Subject"]) for m in smtp.messages] == [("ada@example.com", "Confirm your sign-up")]
    html = smtp.messages[0].get_payload()[1].get_payload(decode=True).decode()
    link = "https://project-ref.supabase.co/auth/v1/verify?token=7d5b7b1964cf5d388340a7f04f1dbb5eeb6c7b52ef8270e1737a58d0&amp;type=signup&amp;redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome"
    assert link in html and "305805" in html
    run = Run.objects.get(workflow=auth_workflow)
    assert run.payload["action"] == "signup" and run.payload["user"]["id"] == sample_body()["user"]["id"]
    assert run.event_key == f"supabase:{headers['webhook-id']}"

    replay = post(auth_workflow, body, headers)  # the same request again, within its 5 minutes
    assert replay.status_code == 409
    assert "already accepted" in replay.json()["error"]["message"]
    work(clock)
    assert len(smtp.messages) == 1 and Run.objects.count() == 1


def test_each_action_gets_its_own_email(clock, smtp, auth_workflow):
    for action in ACTIONS:
        body = request_body(action, f"{action}@example.com")
        assert post(auth_workflow, body, signed(auth_workflow, body)).status_code == 200
    work(clock)
    assert sorted((m["To"], m["Subject"]) for m in smtp.messages) == sorted(
        (f"{action}@example.com", subject) for action, subject in ACTIONS.items()
    )
    code = next(m for m in smtp.messages if m["To"] == "reauthentication@example.com")
    assert "305805" in code.get_payload()[1].get_payload(decode=True).decode()


def html_of(message) -> str:
    return message.get_payload()[1].get_payload(decode=True).decode()


def test_an_email_change_confirms_the_new_address_and_with_secure_change_the_current_one(
    clock, smtp, auth_workflow
):
    """Supabase's historical naming: token_hash goes with the new address (and token_new), token_hash_new
    with the current one (and token)."""
    secure = dict(
        token="111111", token_hash="hash-for-new", token_new="222222", token_hash_new="hash-for-current"
    )
    body = sample_body()
    body["user"].update(email="old@example.com", new_email="new@example.com")
    body["email_data"].update(email_action_type="email_change", **secure)
    raw = as_json(body)
    assert post(auth_workflow, raw, signed(auth_workflow, raw)).status_code == 200
    work(clock)
    sent = {m["To"]: html_of(m) for m in smtp.messages}
    assert sorted(sent) == ["new@example.com", "old@example.com"]
    assert (
        "token=hash-for-new&amp;type=email_change" in sent["new@example.com"]
        and "222222" in sent["new@example.com"]
    )
    assert "token=hash-for-current&amp;type=email_change" in sent["old@example.com"]
    assert "111111" in sent["old@example.com"]

    # Secure email change off: one code and one hash, for the new address only.
    smtp.messages.clear()
    body["email_data"].update(token="333333", token_hash="only-hash", token_new="", token_hash_new="")
    raw = as_json(body)
    assert post(auth_workflow, raw, signed(auth_workflow, raw)).status_code == 200
    work(clock)
    assert [m["To"] for m in smtp.messages] == ["new@example.com"]
    assert "token=only-hash" in html_of(smtp.messages[0]) and "333333" in html_of(smtp.messages[0])


def test_a_notification_action_matches_no_path_and_sends_nothing(clock, smtp, auth_workflow):
    body = request_body("password_changed_notification")
    assert post(auth_workflow, body, signed(auth_workflow, body)).status_code == 200
    work(clock)
    assert smtp.messages == [] and Run.objects.get().status == "succeeded"


def test_bad_signature_old_timestamp_and_missing_headers_are_refused(clock, smtp, auth_workflow):
    body = request_body()
    forged = dict(signed(auth_workflow, body), **{"webhook-signature": "v1,bm90IHRoZSBzaWduYXR1cmU="})
    answer = post(auth_workflow, body, forged)
    assert answer.status_code == 401 and "does not match" in answer.json()["detail"]

    other_secret = sign("v1,whsec_" + "QUJD" * 8, body, "msg_1", int(time.time()))
    assert post(auth_workflow, body, other_secret).status_code == 401

    tampered = signed(auth_workflow, body)
    assert post(auth_workflow, request_body(email="eve@example.com"), tampered).status_code == 401

    old = signed(auth_workflow, body, at=int(time.time()) - 6 * 60)
    answer = post(auth_workflow, body, old)
    assert answer.status_code == 401 and "more than 5 minutes" in answer.json()["detail"]
    future = signed(auth_workflow, body, at=int(time.time()) + 6 * 60)
    assert post(auth_workflow, body, future).status_code == 401

    for odd in (
        {},
        {"webhook-id": "x"},
        {"webhook-id": "x", "webhook-timestamp": "soon", "webhook-signature": "v1,x"},
    ):
        assert post(auth_workflow, body, odd).status_code == 401, odd
    garbled = dict(signed(auth_workflow, body), **{"webhook-signature": "no-comma-here"})
    assert post(auth_workflow, body, garbled).status_code == 401
    assert (
        post(auth_workflow, body, dict(signed(auth_workflow, body), **{"webhook-id": "x" * 500})).status_code
        == 401
    )
    work(clock)
    assert smtp.messages == [] and not Run.objects.exists()


def test_odd_bodies_and_unknown_workflows_get_clear_answers(clock, auth_workflow, tenant_a):
    for body, status in (
        (b"[1, 2]", 400),
        (b"{not json", 400),
        (json.dumps({"user": {"email": "a@b.c"}}).encode(), 400),
        (json.dumps({"user": "x", "email_data": {}}).encode(), 400),
        (json.dumps({"user": {}, "email_data": {"email_action_type": 7}}).encode(), 400),
        (
            json.dumps(
                {"user": {}, "email_data": {"email_action_type": "signup", "token": "\u0000"}}
            ).encode(),
            400,
        ),
    ):
        answer = post(auth_workflow, body, signed(auth_workflow, body))
        assert answer.status_code == status, (body, answer.content)
        assert answer.json()["error"]["http_code"] == status
    body = request_body()
    assert post(type(auth_workflow)(pk=999_999, webhook_secret="x"), body, {}).status_code == 404
    assert Client().get(f"/hooks/supabase/{auth_workflow.pk}/").status_code == 405
    unpublished = create_auth_email_starter(tenant_a)
    assert post(unpublished, body, signed(unpublished, body)).status_code == 404
    assert not Run.objects.exists()


def test_fifty_concurrent_requests_are_answered_while_the_sends_are_held_then_each_sends_once(
    clock,
    smtp,
    auth_workflow,
    live_server,
    monkeypatch,
):
    """The answers cannot wait for the sends: the SMTP server accepts nothing until all 50 answers are
    in, while this thread already works the queue (its first send waits at the closed gate). Then each
    address gets exactly one message. How fast the answers are is measured by benchmarks/supabase_hook.py."""
    gate = threading.Event()
    accept = smtp.handle_DATA

    async def held(server, session, envelope):
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 60)
        return await accept(server, session, envelope)

    monkeypatch.setattr(smtp, "handle_DATA", held)
    url = f"{live_server.url}/hooks/supabase/{auth_workflow.pk}/"

    def call(n: int) -> int:
        body = request_body("magiclink", f"user{n}@example.com")
        return requests.post(url, data=body, headers=signed(auth_workflow, body), timeout=30).status_code

    sent_before_answers: list[int] = []
    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(call, n) for n in range(50)]

        def open_gate_once_answered() -> None:
            wait(futures, timeout=60)
            sent_before_answers.append(len(smtp.messages))
            gate.set()

        opener = threading.Thread(target=open_gate_once_answered)
        opener.start()
        deadline = time.monotonic() + 120
        while len(smtp.messages) < 50 and time.monotonic() < deadline:
            work(clock)
        opener.join()
        statuses = [future.result() for future in futures]
    assert statuses == [200] * 50
    assert sent_before_answers == [0]
    assert sorted(m["To"] for m in smtp.messages) == sorted(f"user{n}@example.com" for n in range(50))
    assert Delivery.objects.filter(status="sent").count() == 50
    assert Run.objects.filter(workflow=auth_workflow).count() == 50


def test_the_builders_test_page_sends_the_starters_email_to_the_tester(
    clock, smtp, owner, owner_client, tenant_a
):
    """Before publishing: the Test page starts from the trigger's sample (a sign-up) and, with "send to me",
    delivers the sign-up email to the tester only."""
    workflow = create_auth_email_starter(tenant_a)
    url = reverse("runs:test_workflow", args=[workflow.pk])
    sample = json.loads(owner_client.get(url).context["form"].initial["item"])
    assert sample["action"] == "signup" and sample["confirmation_url"].startswith(
        "https://project-ref.supabase.co/"
    )
    owner_client.post(url, {"item": json.dumps({**sample, "action": "recovery"}), "send_to_me": "on"})
    settle(clock, step_seconds=1)
    assert [(m["To"], m["Subject"]) for m in smtp.messages] == [(owner.email, "Reset your password")]
