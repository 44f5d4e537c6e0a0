"""/settings/api-keys/: everyone in the tenant sees the keys; admins and owners create (the key shown on
that one answer, only its hash kept) and revoke; the outsider gets 404; and the operators' admin."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import ApiKey
from tests.api.conftest import key_client
from tests.support import signed_in

pytestmark = pytest.mark.django_db

PAGE = "/settings/api-keys/"


def test_empty_page_says_what_a_key_is_for_with_a_curl_example(owner):
    page = signed_in(Client(), owner).get(PAGE).content.decode()

    assert "No API key yet" in page
    assert "start workflows and follow their runs without signing in" in page
    assert 'curl -H "Authorization: Bearer rb_live_…" http://testserver/api/v1/workflows/' in page
    assert "Create key" in page


def test_an_admin_creates_a_key_shown_once_and_only_its_hash_is_kept(admin):
    client = signed_in(Client(), admin)

    response = client.post(PAGE, {"name": "Billing service", "scopes": ["read", "trigger", "manage"]})

    assert response.status_code == 200
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["read", "trigger", "manage"]
    page = response.content.decode()
    key = page.split('id="new-key" class="mono" readonly value="')[1].split('"')[0]
    assert key.startswith(api_key.prefix) and len(key) == 51
    assert "Copy your new key now" in page and "only time Rowbell shows it" in page
    assert f'curl -H "Authorization: Bearer {key}"' in page
    assert "no-store" in response["Cache-Control"]
    assert (api_key.name, api_key.created_by, api_key.tenant_id) == (
        "Billing service",
        admin,
        admin.memberships.get().tenant_id,
    )
    assert api_key.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    # Shown once: the list names the key by its prefix only.
    again = client.get(PAGE).content.decode()
    assert key not in again
    assert f"{api_key.prefix}…" in again and "Billing service" in again and "ada" in again
    assert key_client(key).get("/api/v1/workflows/").status_code == 200


def test_a_key_gets_only_the_scopes_ticked_and_the_list_shows_them(owner):
    client = signed_in(Client(), owner)
    form = client.get(PAGE).content.decode()
    # Every scope is ticked at first: a key does what keys did before scopes unless someone unticks.
    assert form.count('name="scopes"') == 3 and form.count("checked") >= 3

    response = client.post(PAGE, {"name": "Reporting", "scopes": ["read"]})
    key = response.content.decode().split('id="new-key" class="mono" readonly value="')[1].split('"')[0]

    assert ApiKey.objects.get().scopes == ["read"]
    assert key_client(key).get("/api/v1/workflows/").status_code == 200
    assert ">read<" in client.get(PAGE).content.decode().replace("<td>read</td>", ">read<")


def test_a_key_needs_a_scope(owner):
    response = signed_in(Client(), owner).post(PAGE, {"name": "Nothing", "scopes": []})

    assert "Tick at least one scope: read, trigger or manage." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_key_needs_a_name(owner):
    response = signed_in(Client(), owner).post(PAGE, {"name": ""})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_member_sees_the_keys_but_cannot_create_or_revoke(member, api_key):
    api_key, _key = api_key
    client = signed_in(Client(), member)

    page = client.get(PAGE).content.decode()
    assert "Billing service" in page and f"{api_key.prefix}…" in page
    assert "Create key" not in page and "Revoke" not in page
    assert "Only admins and owners create and revoke keys." in page

    assert client.post(PAGE, {"name": "Mine"}).status_code == 403
    assert client.post(reverse("tenants:revoke_api_key", args=[api_key.pk])).status_code == 403
    assert ApiKey.objects.count() == 1
    api_key.refresh_from_db()
    assert not api_key.is_revoked


def test_an_owner_revokes_a_key_and_programs_are_refused_at_once(owner, api_key):
    api_key, key = api_key
    client = signed_in(Client(), owner)

    response = client.post(reverse("tenants:revoke_api_key", args=[api_key.pk]), follow=True)

    assert "Revoked “Billing service”: requests with it are now refused." in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.is_revoked
    assert key_client(key).get("/api/v1/workflows/").status_code == 401
    page = client.get(PAGE).content.decode()
    assert "Revoked " in page and "Revoke</button>" not in page
    # A second revoke changes nothing.
    revoked_at = api_key.revoked_at
    client.post(reverse("tenants:revoke_api_key", args=[api_key.pk]))
    api_key.refresh_from_db()
    assert api_key.revoked_at == revoked_at


def test_the_outsider_neither_sees_nor_revokes_another_tenants_keys(outsider, api_key):
    api_key, _key = api_key
    client = signed_in(Client(), outsider)

    assert "Billing service" not in client.get(PAGE).content.decode()
    assert client.post(reverse("tenants:revoke_api_key", args=[api_key.pk])).status_code == 404
    api_key.refresh_from_db()
    assert not api_key.is_revoked


def test_signed_out_visitors_are_sent_to_sign_in(db):
    response = Client().get(PAGE)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_nav_links_to_the_page(member):
    assert f'href="{PAGE}">API keys</a>' in signed_in(Client(), member).get("/").content.decode()


def test_admin_shows_the_hash_read_only_and_revokes(admin_client, api_key):
    api_key, _key = api_key

    change = admin_client.get(reverse("admin:tenants_apikey_change", args=[api_key.pk])).content.decode()
    assert api_key.secret_hash in change
    assert 'name="secret_hash"' not in change
    assert admin_client.get(reverse("admin:tenants_apikey_add")).status_code == 403

    changelist = reverse("admin:tenants_apikey_changelist")
    admin_client.post(changelist, {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.is_revoked
    assert "Billing service" not in admin_client.get(changelist, {"revoked": "no"}).content.decode()
    assert "Billing service" in admin_client.get(changelist, {"revoked": "yes"}).content.decode()
