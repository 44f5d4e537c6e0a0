"""Limits per tenant as data: an operator's value in the admin wins, a blank field falls back to the
setting, and the engine's concurrency and the retention job follow each tenant's own value."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError
from django.urls import reverse

from runs.engine import fairness
from runs.jobs import prune
from runs.models import Run
from tenants import limits
from tenants.limits import limits_for
from tenants.models import Tenant, TenantLimits
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.engine.conftest import build_workflow, email, webhook
from workflows.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERNAME

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_limits():
    limits.forget()
    yield
    limits.forget()


def test_a_tenant_without_limits_gets_every_setting(tenant_a, settings):
    settings.ENGINE_TENANT_CONCURRENCY = 7
    settings.ACTIVITY_RETENTION_DAYS = 90
    settings.TENANT_SEND_RATE_PER_SECOND = 2.5
    values = limits_for(tenant_a)
    assert (values.concurrency, values.activity_retention_days, values.send_rate_per_second) == (7, 90, 2.5)
    assert values == limits.defaults()
    # By id too, as the engine asks.
    assert limits_for(tenant_a.pk) == values


def test_an_operators_value_wins_and_a_blank_one_falls_back(tenant_a, tenant_b, settings):
    settings.ENGINE_TENANT_CONCURRENCY = 4
    TenantLimits.objects.create(tenant=tenant_a, concurrency=1, frequency_budget_messages=3)
    values = limits_for(tenant_a)
    assert values.concurrency == 1
    assert values.frequency_budget_messages == 3
    assert values.frequency_budget_hours == settings.FREQUENCY_BUDGET_HOURS  # blank
    assert limits_for(tenant_b).concurrency == 4  # another tenant is not touched


def test_zero_is_a_value_not_a_blank(tenant_a, settings):
    settings.ENGINE_TENANT_CONCURRENCY = 4
    TenantLimits.objects.create(tenant=tenant_a, concurrency=0)
    assert limits_for(tenant_a).concurrency == 0


def test_the_database_refuses_nonsense(tenant_a):
    with pytest.raises(IntegrityError):
        TenantLimits.objects.create(tenant=tenant_a, send_rate_per_second=-1)


def test_a_change_reaches_a_process_within_the_cache_time(tenant_a, settings):
    settings.LIMITS_CACHE_SECONDS = 0
    assert limits_for(tenant_a).concurrency == settings.ENGINE_TENANT_CONCURRENCY
    TenantLimits.objects.create(tenant=tenant_a, concurrency=9)
    assert limits_for(tenant_a).concurrency == 9


def test_the_engine_uses_the_tenants_own_concurrency(tenant_a, tenant_b, settings, redis_conn):
    settings.ENGINE_TENANT_CONCURRENCY = 4
    TenantLimits.objects.create(tenant=tenant_a, concurrency=1)
    first = fairness.acquire(tenant_a.pk)
    assert first is not None
    assert fairness.acquire(tenant_a.pk) is None  # its own limit of 1
    others = [fairness.acquire(tenant_b.pk) for _ in range(5)]
    assert [token is not None for token in others] == [True] * 4 + [False]  # the default of 4
    fairness.release(tenant_a.pk, first)
    assert fairness.acquire(tenant_a.pk) is not None


def _finished_run(workflow, key: str, days_ago: int) -> Run:
    run = make_run(workflow, key, age=timedelta(days=days_ago))
    execution = add_execution(run, steps_of(workflow)["Welcome"], "0")
    add_delivery(execution, f"{key}@example.com")
    return run


def test_retention_follows_each_tenants_own_days(tenant_a, tenant_b, settings):
    settings.ACTIVITY_RETENTION_DAYS = 30
    short = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="A")
    default = build_workflow(tenant_b, webhook([email(name="Welcome")]), name="B")
    TenantLimits.objects.create(tenant=tenant_a, activity_retention_days=7)
    runs = {
        "a 10 days": _finished_run(short, "a10", 10),
        "a 3 days": _finished_run(short, "a3", 3),
        "b 10 days": _finished_run(default, "b10", 10),
        "b 40 days": _finished_run(default, "b40", 40),
    }
    report = prune()
    left = set(Run.objects.values_list("pk", flat=True))
    assert [name for name, run in runs.items() if run.pk in left] == ["a 3 days", "b 10 days"]
    assert report["runs"] == 2


def test_a_tenant_may_keep_everything_while_the_default_prunes(tenant_a, tenant_b, settings):
    settings.ACTIVITY_RETENTION_DAYS = 30
    keeper = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="A")
    other = build_workflow(tenant_b, webhook([email(name="Welcome")]), name="B")
    TenantLimits.objects.create(tenant=tenant_a, activity_retention_days=0)
    kept = _finished_run(keeper, "a400", 400)
    gone = _finished_run(other, "b40", 40)
    prune()
    assert list(Run.objects.values_list("pk", flat=True)) == [kept.pk]
    assert gone.pk != kept.pk


def test_retention_of_one_tenant_only_runs_while_the_default_is_off(tenant_a, tenant_b, settings, capsys):
    settings.ACTIVITY_RETENTION_DAYS = 0
    short = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="A")
    other = build_workflow(tenant_b, webhook([email(name="Welcome")]), name="B")
    TenantLimits.objects.create(tenant=tenant_a, activity_retention_days=7)
    _finished_run(short, "a10", 10)
    old_other = _finished_run(other, "b400", 400)
    call_command("prune_activity", "--dry-run")
    assert "1 runs finished before " in capsys.readouterr().out
    call_command("prune_activity")
    assert list(Run.objects.values_list("pk", flat=True)) == [old_other.pk]


def test_an_operator_sets_limits_in_the_admin(client, settings):
    call_command("seed_demo")
    client.post(reverse("admin:login"), {"username": DEMO_USERNAME, "password": DEMO_PASSWORD})
    tenant = Tenant.objects.get(slug="demo")
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Limits (blank: the installation" in page.content.decode()
    assert "ENGINE_TENANT_CONCURRENCY" in page.content.decode()  # the help text names the default

    form = _admin_form(page)
    form.update({"limits-0-concurrency": "2", "limits-0-activity_retention_days": "14"})
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert (limits_for(tenant).concurrency, limits_for(tenant).activity_retention_days) == (2, 14)
    assert limits_for(tenant).send_rate_per_second == settings.TENANT_SEND_RATE_PER_SECOND

    form = _admin_form(client.get(url))
    form["limits-0-concurrency"] = "-3"
    response = client.post(url, form)
    assert response.status_code == 200  # the form again, with the error, nothing saved
    assert "Ensure this value is greater than or equal to 0" in response.content.decode()
    assert limits_for(tenant).concurrency == 2


def _admin_form(page) -> dict:
    """The change form's fields as the browser would post them (inputs with their values)."""
    import re

    html = page.content.decode()
    data: dict = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or 'type="submit"' in tag:
            continue
        if 'type="checkbox"' in tag and "checked" not in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    for select in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(2))
        data[select.group(1)] = chosen.group(1) if chosen else ""
    return data
