"""API-key authentication: what a program gets with no key, a wrong one, a revoked one, and what is stored."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tenants.models import ApiKey
from tests.api.conftest import key_client

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/v1/workflows/"
KEYS_PAGE = "http://testserver/settings/api-keys/"


def test_a_valid_key_lists_its_tenants_workflows(api, welcome):
    response = api.get(WORKFLOWS)

    assert response.status_code == 200
    assert [w["name"] for w in response.json()["results"]] == ["Welcome"]


def test_no_key_is_401_saying_what_to_send(welcome):
    response = Client().get(WORKFLOWS)

    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"Missing API key: send `Authorization: Bearer <key>`; create one on the API keys page, {KEYS_PAGE}."
    )
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_unknown_key_is_401(welcome, api_key):
    _api_key, key = api_key

    response = key_client(key[:-1] + ("A" if key[-1] != "A" else "B")).get(WORKFLOWS)

    assert response.status_code == 401
    assert "Unknown API key: check that you copied all of it" in response.json()["detail"]
    assert KEYS_PAGE in response.json()["detail"]


def test_another_scheme_is_401_showing_the_header_to_send(api_key):
    response = Client(headers={"Authorization": f"Token {api_key[1]}"}).get(WORKFLOWS)

    assert response.status_code == 401
    assert "Send the API key as `Authorization: Bearer rb_live_…`" in response.json()["detail"]


def test_a_revoked_key_is_401_saying_when_and_what_to_do(api_key):
    api_key, key = api_key
    assert key_client(key).get(WORKFLOWS).status_code == 200
    api_key.revoke()

    response = key_client(key).get(WORKFLOWS)

    assert response.status_code == 401
    revoked = timezone.localtime(api_key.revoked_at).strftime("%Y-%m-%d %H:%M")
    assert response.json()["detail"] == (
        f"This API key ({api_key.prefix}…, “Billing service”) was revoked on {revoked} UTC; "
        f"create a new one on the API keys page, {KEYS_PAGE}."
    )


def test_a_signed_in_session_is_not_an_api_key(client, owner, welcome):
    client.force_login(owner)

    assert client.get(WORKFLOWS).status_code == 401
    assert (
        client.post(f"/api/v1/workflows/{welcome.pk}/runs/", {"payload": {}}, "application/json").status_code
        == 401
    )


def test_only_the_keys_hash_is_stored(tenant_a, owner):
    api_key, key = ApiKey.issue(tenant_a, "CI", owner)

    assert key.startswith("rb_live_") and len(key) == len("rb_live_") + 43
    assert api_key.prefix == key[:16]
    assert api_key.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert not any(key in str(value) for value in stored.values())
    assert ApiKey.issue(tenant_a, "CI", owner)[1] != key


def test_last_use_is_written_at_most_once_a_minute(api, api_key):
    api_key, _key = api_key
    assert api_key.last_used_at is None

    api.get(WORKFLOWS)
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None

    api.get(WORKFLOWS)
    api_key.refresh_from_db()
    assert api_key.last_used_at == first  # within the minute: no write

    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first - timedelta(minutes=2))
    api.get(WORKFLOWS)
    api_key.refresh_from_db()
    assert api_key.last_used_at > first


def test_a_used_key_costs_no_write_within_the_minute(api, welcome, django_assert_num_queries):
    api.get(WORKFLOWS)  # the first use writes last_used_at

    # The key (with its tenant), the count and the page: no UPDATE of the key.
    with django_assert_num_queries(3):
        assert api.get(WORKFLOWS).status_code == 200
