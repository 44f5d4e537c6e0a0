"""Consent tests use the engine's fixtures: a real SMTP server, a patchable clock, burst workers."""

from __future__ import annotations

import pytest

from consent.models import Topic
from tests.api.conftest import api, api_key, outsider_api  # noqa: F401 (fixtures)
from tests.engine.conftest import clock, smtp  # noqa: F401 (fixtures)


@pytest.fixture
def tips(tenant_a) -> Topic:
    return Topic.objects.create(tenant=tenant_a, name="Tips", description="Getting more out of Acme")


@pytest.fixture
def updates(tenant_a) -> Topic:
    return Topic.objects.create(tenant=tenant_a, name="Product updates")
