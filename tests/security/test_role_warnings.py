""" "Test connection" and the data source's page say plainly when the role can do more than Rowbell needs.

Read-only transactions do not stop a superuser's functions, and write grants are one bug away from a
write: the least-privilege role of the setup SQL is the real boundary, and the pages say so.
"""

from __future__ import annotations

import html

import psycopg
import pytest

from integrations.datasources import test_connection
from integrations.models import DataSource
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.support import SCREENSHOTS
from tests.triggers.conftest import customer_db  # noqa: F401 (fixture)
from tests.triggers.test_datasources import least_privilege  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def role_fragment(client, source: DataSource) -> str:
    response = client.get(f"/datasources/{source.pk}/role/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_a_superuser_connection_is_named_as_such_with_the_reason(
    owner_client,
    member_client,
    tenant_a,
    customer_db,  # noqa: F811
):
    source = DataSource.objects.create(tenant=tenant_a, name="As postgres", connection_url=customer_db)
    answer = html.unescape(owner_client.post(f"/datasources/{source.pk}/test/").content.decode())
    assert "Connected to PostgreSQL" in answer
    assert "“postgres” is a superuser" in answer
    assert "“postgres” can change rows of your tables (public.orders, public.signups)" in answer
    assert "the real boundary" in answer and "setup SQL" in answer
    detail = owner_client.get(f"/datasources/{source.pk}/").content.decode()
    assert f'hx-get="/datasources/{source.pk}/role/"' in detail
    fragment = role_fragment(member_client, source)
    assert "This connection has more power than Rowbell needs" in fragment and "is a superuser" in fragment


def test_the_setup_sqls_role_gets_no_warning(member_client, tenant_a, least_privilege):  # noqa: F811
    source = DataSource.objects.create(
        tenant=tenant_a, name="Least", connection_url=least_privilege["rowbell_url"]
    )
    check = test_connection(source)
    assert check.ok and check.role_warnings == []
    assert "more power" not in role_fragment(member_client, source)


def test_a_role_with_write_grants_is_told_which_tables(tenant_a, customer_db, least_privilege):  # noqa: F811
    role = least_privilege["rowbell_role"]
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute(f'GRANT UPDATE ON orders TO "{role}"')
        conn.execute(f'GRANT pg_signal_backend TO "{role}"')
    source = DataSource.objects.create(
        tenant=tenant_a, name="Writer", connection_url=least_privilege["rowbell_url"]
    )
    check = test_connection(source)
    assert check.ok
    assert check.role_warnings == [
        f"“{role}” can change rows of your tables (public.orders).",
        f"“{role}” is a member of pg_signal_backend.",
    ]
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute(f'REVOKE pg_signal_backend FROM "{role}"')


def test_an_unreachable_database_shows_no_role_warning(member_client, tenant_a):
    source = DataSource.objects.create(
        tenant=tenant_a, name="Gone", connection_url="postgresql://postgres@127.0.0.1:1/nowhere"
    )
    assert role_fragment(member_client, source).strip() == ""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_data_source_page_shows_the_warning_in_a_browser(live_server, page, owner, tenant_a, customer_db):  # noqa: F811
    """Headless Chromium; screenshot: docs/screenshots/datasource-role-warning.png."""

    from playwright.sync_api import expect

    from tests.builder.test_browser_errors import sign_in

    source = DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=customer_db)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/datasources/{source.pk}/")
    warning = page.locator("#role .role-warning")
    expect(warning).to_contain_text("This connection has more power than Rowbell needs.")
    expect(warning).to_contain_text("“postgres” is a superuser.")
    expect(warning).to_contain_text("the real boundary")
    expect(page.locator("#tables")).to_contain_text("public.orders")
    page.screenshot(path=SCREENSHOTS / "datasource-role-warning.png")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#check")).to_contain_text("Connected to PostgreSQL")
    expect(page.locator(".role-warning")).to_have_count(1)  # the check's answer replaced the block
    expect(warning).to_contain_text("can change rows of your tables")
