"""API test fixtures: an API key for tenant A (and one for the outsider's tenant B), clients that send
them, and workflows: a published webhook → email one, and a draft."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import ApiKey
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.engine.conftest import build_workflow, clock, email, smtp, webhook  # noqa: F401 (fixtures)


def key_client(key: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def api_key(tenant_a, owner) -> tuple[ApiKey, str]:
    return ApiKey.issue(tenant_a, "Billing service", owner)


@pytest.fixture
def api(api_key) -> Client:
    """Tenant A's program."""
    return key_client(api_key[1])


@pytest.fixture
def outsider_api(tenant_b, outsider) -> Client:
    """Tenant B's program: everything of tenant A is a 404 to it."""
    return key_client(ApiKey.issue(tenant_b, "Globex CI", outsider)[1])


@pytest.fixture
def welcome(tenant_a):
    """Published: webhook → welcome email."""
    return build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Welcome")


@pytest.fixture
def draft(tenant_a):
    """Never published: its webhook trigger is in the draft only."""
    return build_workflow(tenant_a, webhook(), name="Draft only", publish_it=False)
