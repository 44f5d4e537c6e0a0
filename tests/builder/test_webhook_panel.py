"""The webhook trigger's panel in the builder: URL, secret (revealed and rotated by admins only), a curl
example whose signature the real endpoint accepts, and a test event through the endpoint."""

from __future__ import annotations

import html
import os
import re
import subprocess
from urllib.parse import urlsplit

import pytest
from django.test import Client

from integrations.signing import signature_headers
from runs.models import Run
from tests.support import make_user, signed_in
from tests.triggers.conftest import make_workflow
from workflows.publishing import publish
from workflows.steps.webhook_trigger import webhook_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(tenant_a):
    workflow = make_workflow(
        tenant_a, "webhook_trigger", {"sample": {"email": "ada@example.com", "n": "it's"}}
    )
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


def post_hook(workflow, secret: str, body: bytes = b'{"email": "x@example.com"}'):
    headers = signature_headers(secret, body)
    return Client().post(
        webhook_path(workflow.pk), data=body, content_type="application/json", headers=headers
    )


def code_block(page: str, element_id: str) -> str:
    match = re.search(rf'<pre class="sql" id="{element_id}" tabindex="0">(.*?)</pre>', page, re.S)
    return html.unescape(match.group(1))


def test_the_panel_shows_url_and_masked_secret_and_admin_buttons(client, owner, member, hook):
    signed_in(client, owner)
    page = client.get(f"/workflows/{hook.pk}/").content.decode()

    assert f"http://testserver/hooks/{hook.pk}/" in page
    assert hook.webhook_secret not in page
    assert "Reveal" in page and "Rotate…" in page and "Send a test event" in page
    client.logout()
    signed_in(client, member)
    page = client.get(f"/workflows/{hook.pk}/").content.decode()
    assert hook.webhook_secret not in page
    assert "Reveal" not in page and "Rotate…" not in page and "Send a test event" not in page
    assert "Admins and owners can see and rotate the secret." in page


def test_only_admins_reveal_and_rotate_and_other_tenants_get_404(client, owner, member, outsider, hook):
    signed_in(client, member)
    assert client.post(f"/workflows/{hook.pk}/webhook/secret/").status_code == 403
    assert client.post(f"/workflows/{hook.pk}/webhook/rotate/").status_code == 403
    assert client.post(f"/workflows/{hook.pk}/webhook/test/").status_code == 403
    client.logout()
    signed_in(client, outsider)
    for action in ("secret", "rotate", "test"):
        assert client.post(f"/workflows/{hook.pk}/webhook/{action}/").status_code == 404
    assert client.get(f"/workflows/{hook.pk}/webhook/secret/").status_code in (404, 405)
    client.logout()
    signed_in(client, owner)
    revealed = client.post(f"/workflows/{hook.pk}/webhook/secret/").content.decode()
    assert hook.webhook_secret in revealed


def test_after_rotating_the_old_secret_is_refused_and_the_new_one_works(client, owner, hook):
    old = hook.webhook_secret
    signed_in(client, owner)

    answer = client.post(f"/workflows/{hook.pk}/webhook/rotate/").content.decode()

    hook.refresh_from_db()
    assert hook.webhook_secret != old and hook.webhook_secret in answer
    assert "the old one are refused" in answer
    assert post_hook(hook, old).status_code == 401
    assert post_hook(hook, hook.webhook_secret).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_the_curl_example_as_shown_is_accepted_by_the_endpoint(live_server, tenant_a, owner, hook):
    client = Client()
    signed_in(client, owner)
    host = urlsplit(live_server.url).netloc
    page = client.get(f"/workflows/{hook.pk}/", headers={"host": host}).content.decode()
    script = code_block(page, "webhook-curl")
    assert f"curl -sS -X POST {live_server.url}/hooks/{hook.pk}/" in script

    result = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "ROWBELL_WEBHOOK_SECRET": hook.webhook_secret},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert '"run_id"' in result.stdout, (result.stdout, result.stderr)
    run = Run.objects.get(workflow=hook)
    assert run.payload == {"email": "ada@example.com", "n": "it's"}  # the sample, quoted for the shell
    assert run.event_key == "webhook:your-event-id-1"
    wrong = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "ROWBELL_WEBHOOK_SECRET": "not-the-secret"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Bad signature" in wrong.stdout


def test_send_a_test_event_starts_a_run_through_the_endpoint(client, owner, hook, tenant_a):
    signed_in(client, owner)

    answer = client.post(f"/workflows/{hook.pk}/webhook/test/").content.decode()

    run = Run.objects.get(workflow=hook)
    assert f"run #{run.pk}</a> started" in answer
    assert run.payload == {"email": "ada@example.com", "n": "it's"} and run.event_key.startswith(
        "webhook:test-"
    )
    draft_only = make_workflow(tenant_a, "webhook_trigger", {"sample": {}}, name="Draft")
    answer = client.post(f"/workflows/{draft_only.pk}/webhook/test/").content.decode()
    assert "Not published" in answer and not Run.objects.filter(workflow=draft_only).exists()


def test_an_admin_of_the_same_tenant_may_rotate(client, tenant_a, hook):
    admin = make_user("adele", tenant_a, "admin")
    signed_in(client, admin)
    assert client.post(f"/workflows/{hook.pk}/webhook/rotate/").status_code == 200
