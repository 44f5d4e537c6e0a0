"""Shared fixtures: three people in every test module (owner and member of tenant A, an outsider of B), an
admin of A, and a signed-in client for each of the three."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client

from tenants.models import Role, Tenant
from tests import fast_flush
from tests.fast_hasher import HASHERS
from tests.support import make_user, signed_in
from tests.workers import use_worker_redis

# A test that starts Rowbell's processes or a server must be marked slow (the module says which count).
pytest_plugins = ["tests.slow_marker"]

use_worker_redis(settings)  # before anything connects to Redis: one database per xdist worker
# Speed only, nothing a test checks (the modules say why each keeps what tests rely on).
settings.PASSWORD_HASHERS = HASHERS
fast_flush.install()


# The customer databases tests create share the server with Rowbell's test database (workers the tests
# start inherit this); tests/security/test_datasource_target.py turns it off to test the refusal.
os.environ.setdefault("DATA_SOURCE_ALLOW_ROWBELL_SERVER", "true")
settings.DATA_SOURCE_ALLOW_ROWBELL_SERVER = True  # pytest-django read the settings before this module


@pytest.fixture
def tenant_a(db) -> Tenant:
    return Tenant.objects.create(name="Acme", slug="acme")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return Tenant.objects.create(name="Globex", slug="globex")


@pytest.fixture
def owner(tenant_a):
    return make_user("olivia", tenant_a, Role.OWNER)


@pytest.fixture
def member(tenant_a):
    return make_user("max", tenant_a, Role.MEMBER)


@pytest.fixture
def outsider(tenant_b):
    return make_user("eve", tenant_b, Role.OWNER)


@pytest.fixture
def admin(tenant_a):
    return make_user("ada", tenant_a, Role.ADMIN)


@pytest.fixture
def owner_client(owner) -> Client:
    return signed_in(Client(), owner)


@pytest.fixture
def member_client(member) -> Client:
    return signed_in(Client(), member)


@pytest.fixture
def outsider_client(outsider) -> Client:
    return signed_in(Client(), outsider)


@pytest.fixture
def httpserver(httpserver, settings):
    """pytest-httpserver's local server, with its loopback address allowed for outbound calls.

    Rowbell refuses to call loopback addresses (integrations/outbound.py); tests that talk to a local
    server allow 127.0.0.1 explicitly here. tests/security runs with the default, empty allowlist.
    """
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return httpserver


@pytest.fixture
def redis_conn():
    """A Redis connection to this test worker's own database number, flushed before and after."""
    import django_rq

    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Superuser URL of the PostgreSQL server Rowbell's tests run against (for creating tenant DBs)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = db.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    # A unix-socket directory (the embedded server) goes percent-encoded in the host's place.
    host = quote(host, safe="") if host.startswith("/") else host
    return os.environ.get("PG_ADMIN_URL", f"postgresql://{auth}{host}:{port}/postgres")


@pytest.fixture
def tenant_database(pg_admin_url):
    """A real, empty PostgreSQL database standing in for a customer's; yields its URL, dropped after."""
    from tests.support import scratch_database

    with scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def app_db(tenant_database):
    """A customer database whose tables live in schema `app`, owned by the customer's app role. Roles the
    test appends to `roles` are dropped after it (role names are cluster-wide)."""
    import uuid

    from tests.support import APP_SCHEMA, customer_execute, drop_roles, role_url

    app_role = f"app_{uuid.uuid4().hex[:8]}"
    customer_execute(tenant_database, APP_SCHEMA)
    customer_execute(tenant_database, f'CREATE ROLE "{app_role}" LOGIN')
    customer_execute(tenant_database, f'GRANT USAGE ON SCHEMA app TO "{app_role}"')
    for table in ("app.users", "app.orders"):
        customer_execute(tenant_database, f'ALTER TABLE {table} OWNER TO "{app_role}"')
    roles = [app_role]
    yield {"url": tenant_database, "app_url": role_url(tenant_database, app_role), "roles": roles}
    drop_roles(tenant_database, roles)


@pytest.fixture
def pooler(pg_admin_url):
    """A PgBouncer in transaction mode with its default settings in front of the test server
    (tests/pooler.py); `pooler.url_for(url)` is a database's URL through it, `pooler.allow(role)` lets
    another role in."""
    from tests.pooler import running_pooler

    with running_pooler(pg_admin_url, ["postgres"]) as running:
        yield running


@pytest.fixture(scope="session")
def logical_server():
    """A PostgreSQL of the tests' own with wal_level=logical (the shared one runs with `replica`)."""
    from tests.engine.outage_support import own_postgres

    with own_postgres({"wal_level": "logical", "max_replication_slots": "40"}) as server:
        yield server


def pytest_sessionfinish(session, exitstatus):
    """Drop the customer databases still being dropped, or made ahead, on their thread."""
    from tests.customer_databases import DATABASES

    DATABASES.close()
