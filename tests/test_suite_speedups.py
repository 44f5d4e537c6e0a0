"""The suite's speed-ups (tests/fast_flush.py, tests/fast_hasher.py) keep what tests rely on: a
transactional test still ends with every table empty, and a password hashed in a test is checked
correctly by Django's default hashers, the ones Rowbell and the processes the tests start run with.
The `slow` marker's guard (tests/slow_marker.py) tells Rowbell's processes and servers from short tools."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import global_settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import check_password, identify_hasher
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import TransactionTestCase, override_settings

from config import settings as rowbell_settings
from tenants.models import Role, Tenant
from tests import fast_flush, slow_marker
from tests.support import PASSWORD, make_user


def row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.django_table_names(only_existing=True, include_views=False):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_the_flush_after_a_transactional_test_empties_every_table_but_content_types_and_permissions(owner):
    from tests.engine.conftest import build_workflow, email, webhook

    build_workflow(Tenant.objects.get(), webhook([email()]))  # rows in tenants and workflows
    content_types, permissions = ContentType.objects.count(), Permission.objects.count()
    assert content_types and permissions
    filled = {table for table, count in row_counts().items() if count}
    assert {
        "auth_user",
        "tenants_tenant",
        "tenants_membership",
        "workflows_workflow",
        "workflows_step",
    } <= filled

    fast_flush.flush()

    left = {table: count for table, count in row_counts().items() if count}
    assert left == {"django_content_type": content_types, "auth_permission": permissions}


@pytest.mark.django_db(transaction=True)
def test_a_table_referenced_by_a_not_deferrable_foreign_key_is_emptied_after_the_table_referring_to_it():
    order = fast_flush._deletion_order("default")
    assert set(order) == set(connection.introspection.django_table_names(only_existing=True)) - {
        "django_content_type",
        "auth_permission",
    }
    assert order.index("tenants_membership") < order.index("tenants_tenant")
    assert order.index("tenants_membership") < order.index("auth_user")
    assert order.index("workflows_step") < order.index("workflows_workflowversion")


def test_transactional_tests_use_the_fast_flush_unless_they_ask_for_django_s_options():
    assert TransactionTestCase._fixture_teardown is fast_flush._fixture_teardown
    for option in ("reset_sequences", "serialized_rollback"):
        case = type("Case", (TransactionTestCase,), {option: True, "runTest": lambda self: None})()
        called = []
        original, fast_flush._django_fixture_teardown = fast_flush._django_fixture_teardown, called.append
        try:
            case._fixture_teardown()
        finally:
            fast_flush._django_fixture_teardown = original
        assert called == [case], option


@pytest.mark.django_db
def test_a_password_hashed_in_a_test_is_checked_by_django_s_default_hashers(tenant_a):
    user = make_user("hash", tenant_a, Role.MEMBER)
    assert identify_hasher(user.password).algorithm == "pbkdf2_sha256"
    assert not hasattr(rowbell_settings, "PASSWORD_HASHERS")  # Rowbell runs with Django's default list
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        assert check_password(PASSWORD, user.password)
        assert not check_password(PASSWORD + "x", user.password)
        assert authenticate(username="hash", password=PASSWORD) == user


@pytest.mark.django_db
def test_a_password_hashed_with_django_s_full_iterations_still_signs_in_here():
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        user = get_user_model().objects.create_user("full", "full@example.com", PASSWORD)
    assert authenticate(username="full", password=PASSWORD) == user


@pytest.mark.parametrize(
    ("command", "slow"),
    [
        ([sys.executable, "manage.py", "rqworker"], True),
        (["/usr/bin/python3", "-m", "gunicorn"], True),
        ([".venv/bin/gunicorn", "config.wsgi"], True),
        (["/usr/lib/postgresql/15/bin/initdb", "-D", "x"], True),
        (["/usr/lib/postgresql/15/bin/pg_ctl", "start"], True),
        (["redis-server", "--port", "1"], True),
        ([".venv/bin/honcho", "start"], True),
        ("python -c pass", True),
        (["psql", "postgres://x"], False),
        (["curl", "-s", "http://127.0.0.1/"], False),
        (["git", "status"], False),
        ([], False),
    ],
)
def test_the_slow_marker_counts_rowbell_s_processes_and_servers_not_short_tools(command, slow):
    assert slow_marker.is_slow_program(command) is slow


def test_the_slow_marker_guard_is_installed():
    assert subprocess.Popen.__init__ is slow_marker._recording_init
