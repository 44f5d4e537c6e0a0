"""The database trigger's form: the schema is picked from the data source's, the tables within it; the only
data source is chosen already; steps are labelled in words, not by internal kind names."""

from __future__ import annotations

import re

import pytest

from integrations.models import DataSource
from tests.builder.test_builder_views import add, save
from tests.support import customer_execute
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(tenant_a):
    return Workflow.objects.create(tenant=tenant_a, name="Welcome")


def options(html: str, field: str) -> list[str]:
    select = re.search(rf'<select id="f-{field}".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="([^"]+)"', select)


def test_the_single_data_source_and_its_watched_schema_are_chosen_and_tables_follow(
    owner_client, workflow, datasource, customer_db
):
    customer_execute(customer_db, "CREATE SCHEMA app; CREATE TABLE app.accounts (id int)")
    DataSource.objects.filter(pk=datasource.pk).update(schemas=["app"])

    trigger = add(owner_client, workflow, "database_trigger")

    assert trigger.config["datasource"] == datasource.pk and trigger.config["schema"] == "app"
    page = owner_client.get(f"/workflows/{workflow.pk}/?step={trigger.pk}").content.decode()
    assert options(page, "datasource") == [str(datasource.pk)]
    assert options(page, "schema") == ["app", "public"]  # watched first, then the others it may use
    assert options(page, "table") == ["accounts"]
    html = save(owner_client, workflow, trigger, datasource=datasource.pk, schema="public").content.decode()
    assert options(html, "table") == ["teams", "users"]


def test_with_two_data_sources_none_is_chosen(owner_client, workflow, datasource, tenant_a, customer_db):
    DataSource.objects.create(tenant=tenant_a, name="Other", connection_url=customer_db)

    trigger = add(owner_client, workflow, "database_trigger")

    assert "datasource" not in trigger.config


def test_another_tenants_only_data_source_is_not_chosen(owner_client, workflow, tenant_b, customer_db):
    DataSource.objects.create(tenant=tenant_b, name="Theirs", connection_url=customer_db)

    trigger = add(owner_client, workflow, "database_trigger")

    assert "datasource" not in trigger.config


def test_steps_without_a_name_show_their_kind_in_words(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    type(email).objects.filter(pk__in=[trigger.pk, email.pk]).update(name="")

    page = owner_client.get(f"/workflows/{workflow.pk}/").content.decode()

    assert "send_email" not in re.sub(r'data-kind="[^"]*"|"kind": "[^"]*"', "", page)
    assert "webhook_trigger" not in re.sub(r'data-kind="[^"]*"|"kind": "[^"]*"', "", page)
    assert '<span class="node-name step-name-' in page and ">Send email</span>" in page
