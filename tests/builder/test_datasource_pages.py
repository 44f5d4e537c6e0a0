"""Data-source pages: add one pointing at a real database, test it, setup SQL, browse tables and columns."""

from __future__ import annotations

import pytest

from integrations.models import DataSource
from tests.support import signed_in

pytestmark = pytest.mark.django_db


def test_add_test_and_browse_a_data_source(client, owner, tenant_a, customer_db):
    signed_in(client, owner)
    response = client.post("/datasources/new/", {"name": "App DB", "connection_url": customer_db})
    source = DataSource.objects.get(tenant=tenant_a)
    assert response["Location"] == f"/datasources/{source.pk}/"
    source.refresh_from_db()
    assert source.status == DataSource.Status.OK
    page = client.get(f"/datasources/{source.pk}/").content.decode()
    assert "CREATE ROLE" in page and "GRANT SELECT, TRIGGER" in page
    check = client.post(f"/datasources/{source.pk}/test/").content.decode()
    assert 'class="ok"' in check
    tables = client.get(f"/datasources/{source.pk}/tables/").content.decode()
    assert "public.users" in tables and "public.teams" in tables
    columns = client.get(
        f"/datasources/{source.pk}/columns/", {"schema": "public", "table": "users"}
    ).content.decode()
    assert "<code>email</code>" in columns and "key</span>" in columns


def test_a_bad_url_is_refused_and_an_unreachable_one_says_why(client, owner, tenant_a):
    signed_in(client, owner)
    refused = client.post(
        "/datasources/new/", {"name": "Oops", "connection_url": "mysql://x/y"}
    ).content.decode()
    assert "Enter a PostgreSQL URL" in refused and 'value="Oops"' in refused
    client.post(
        "/datasources/new/", {"name": "Down", "connection_url": "postgresql://u:p@127.0.0.1:1/nothing"}
    )
    source = DataSource.objects.get(tenant=tenant_a, name="Down")
    assert source.status == DataSource.Status.ERROR
    assert source.last_error in client.get(f"/datasources/{source.pk}/").content.decode()


def test_members_see_but_do_not_manage_and_outsiders_get_404(client, member, outsider, datasource):
    signed_in(client, member)
    assert client.get(f"/datasources/{datasource.pk}/").status_code == 200
    assert (
        client.post("/datasources/new/", {"name": "x", "connection_url": "postgresql://a/b"}).status_code
        == 403
    )
    assert client.post(f"/datasources/{datasource.pk}/delete/").status_code == 403
    assert client.get(f"/datasources/{datasource.pk}/edit/").status_code == 403
    edit = {"name": "Taken over", "connection_url": "postgresql://evil@example.com/x", "notify_enabled": "on"}
    assert client.post(f"/datasources/{datasource.pk}/edit/", edit).status_code == 403
    client.logout()
    signed_in(client, outsider)
    for method, url in [
        ("get", f"/datasources/{datasource.pk}/"),
        ("get", f"/datasources/{datasource.pk}/edit/"),
        ("post", f"/datasources/{datasource.pk}/edit/"),
        ("post", f"/datasources/{datasource.pk}/test/"),
        ("get", f"/datasources/{datasource.pk}/tables/"),
        ("get", f"/datasources/{datasource.pk}/columns/?schema=public&table=users"),
        ("post", f"/datasources/{datasource.pk}/delete/"),
    ]:
        assert getattr(client, method)(url).status_code == 404, url
    assert "App DB" not in client.get("/datasources/").content.decode()
    assert DataSource.objects.filter(pk=datasource.pk).exists()
    datasource.refresh_from_db()
    assert (datasource.name, datasource.notify_enabled) == ("App DB", False)
