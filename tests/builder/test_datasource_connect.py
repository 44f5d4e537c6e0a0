"""The guided connect page's parts, before anything is saved: the setup SQL for the typed URL and schemas,
the server's schemas, the check of the typed connection, and who may use them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import pytest

from integrations.models import DataSource
from tests.support import customer_execute, signed_in

pytestmark = pytest.mark.django_db


def with_user(url: str, auth: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=auth + parts.netloc.rpartition("@")[2]))


def test_setup_sql_is_made_for_the_typed_role_password_database_and_schemas(client, owner):
    signed_in(client, owner)
    url = "postgresql://rowbell_ux:s%40cret%27pw@db.example.com:5432/shop"

    html = client.post(
        "/datasources/setup/sql/", {"connection_url": url, "schemas_typed": "app, Sales-EU"}
    ).content.decode()

    assert "CREATE ROLE &quot;rowbell_ux&quot; LOGIN PASSWORD &#x27;s@cret&#x27;&#x27;pw&#x27;" in html
    assert "GRANT CONNECT ON DATABASE &quot;shop&quot;" in html
    assert "GRANT USAGE ON SCHEMA &quot;app&quot;" in html and "ON SCHEMA &quot;Sales-EU&quot;" in html
    assert "public" not in html
    assert 'data-copy="#setup-sql-text"' in html


def test_a_url_without_user_or_password_gets_a_proposal_that_stays_the_same(client, owner):
    signed_in(client, owner)
    url = "postgresql://db.example.com:5432/shop"

    first = client.post("/datasources/setup/sql/", {"connection_url": url}).content.decode()
    password = re.search(r'name="proposed_password" value="([^"]+)"', first).group(1)
    again = client.post(
        "/datasources/setup/sql/",
        {"connection_url": url, "proposed_password": password, "schemas_typed": "app"},
    ).content.decode()

    assert "the role <code>rowbell_acme</code> and a new password" in first
    assert f"postgresql://rowbell_acme:{password}@db.example.com:5432/shop" in again
    assert f"LOGIN PASSWORD &#x27;{password}&#x27;" in again


def test_the_edit_page_never_shows_the_saved_password(client, owner, tenant_a):
    source = DataSource.objects.create(
        tenant=tenant_a,
        name="App",
        connection_url="postgresql://rowbell_ux:TopSecret@db/shop",
        schemas=["app"],
    )
    signed_in(client, owner)

    panel = client.post(f"/datasources/setup/sql/?source={source.pk}", {"connection_url": ""}).content
    detail = client.get(f"/datasources/{source.pk}/").content

    for html in (panel.decode(), detail.decode()):
        assert "TopSecret" not in html
        assert "the-password-in-your-connection-url" in html and "&quot;rowbell_ux&quot;" in html
        assert "GRANT USAGE ON SCHEMA &quot;app&quot;" in html


def test_schemas_are_listed_from_the_server_with_those_holding_tables_ticked(client, owner, tenant_database):
    customer_execute(
        tenant_database, "CREATE SCHEMA app; CREATE TABLE app.users (id int); CREATE SCHEMA empty"
    )
    signed_in(client, owner)

    response = client.post("/datasources/setup/schemas/", {"connection_url": tenant_database})
    html = response.content.decode()

    assert response["HX-Trigger-After-Settle"] == "schemas-listed"  # the SQL panel redraws for the ticks
    assert re.search(r'value="app" checked> <code>app</code> <span class="muted small">1 table', html)
    assert re.search(r'value="empty"> <code>empty</code>', html)
    assert 'value="public">' in html  # no tables: offered, not ticked
    assert "rowbell" not in re.findall(r'value="([^"]*)"', html)


def test_schemas_of_a_role_that_does_not_exist_yet_are_typed(client, owner, tenant_database):
    signed_in(client, owner)
    url = with_user(tenant_database, "rowbell_nobody:pw@")

    html = client.post("/datasources/setup/schemas/", {"connection_url": url}).content.decode()

    assert 'name="schemas_typed" type="text" value=""' in html  # asked, not guessed as `public`
    assert "Where are your tables?" in html and "SELECT table_schema, count(*)" in html
    assert "expected before the setup SQL has run" in html


def test_the_connect_page_asks_where_the_tables_are_instead_of_assuming_public(
    client, owner, tenant_database
):
    """A server whose schemas hold no table yet: nothing is ticked, and neither the setup SQL nor the check
    goes on with `public` behind the person's back; Save comes after the Test step."""
    customer_execute(tenant_database, "CREATE SCHEMA empty")
    signed_in(client, owner)

    picker = client.post("/datasources/setup/schemas/", {"connection_url": tenant_database}).content.decode()
    assert " checked" not in picker and "Where are your tables?" in picker
    assert "information_schema.tables" in picker  # the one-line query that says where the tables are
    sql = client.post("/datasources/setup/sql/", {"connection_url": tenant_database}).content.decode()
    assert "Say where your tables are" in sql and "GRANT" not in sql
    check = client.post("/datasources/setup/check/", {"connection_url": tenant_database}).content.decode()
    assert "Say where your tables are first" in check
    page = client.get("/datasources/new/").content.decode()
    assert page.index("Test connection") < page.index("Save and test")


def test_checking_the_typed_connection_lists_what_is_missing(client, owner, tenant_database):
    signed_in(client, owner)

    html = client.post(
        "/datasources/setup/check/", {"connection_url": tenant_database, "schemas_typed": "app"}
    ).content.decode()

    assert "There is no schema “app” in this database" in html
    assert not DataSource.objects.exists()  # nothing saved


def test_adding_saves_the_chosen_schemas(client, owner, tenant_database):
    customer_execute(tenant_database, "CREATE SCHEMA app")
    signed_in(client, owner)

    response = client.post(
        "/datasources/new/",
        {"name": "App", "connection_url": tenant_database, "schemas": ["app"], "schemas_shown": "1"},
    )

    source = DataSource.objects.get()
    assert response.status_code == 302 and source.schemas == ["app"]
    refused = client.post(
        "/datasources/new/", {"name": "B", "connection_url": tenant_database, "schemas_shown": "1"}
    )
    assert "Choose at least one schema" in refused.content.decode()


@pytest.mark.parametrize(
    "path", ["/datasources/setup/sql/", "/datasources/setup/schemas/", "/datasources/setup/check/"]
)
def test_members_cannot_use_the_setup_helpers_and_other_tenants_sources_are_404(
    client, member, outsider, tenant_b, path
):
    signed_in(client, member)
    assert client.post(path, {"connection_url": "postgresql://x@h/db"}).status_code == 403
    foreign = DataSource.objects.create(
        tenant=tenant_b, name="Theirs", connection_url="postgresql://x:y@h/db"
    )
    client.logout()
    signed_in(client, outsider)
    assert client.post(f"{path}?source={foreign.pk}", {}).status_code == 200
    from tests.support import make_user

    intruder = make_user("ivan", member.memberships.first().tenant, "admin")
    client.logout()
    signed_in(client, intruder)
    assert client.post(f"{path}?source={foreign.pk}", {}).status_code == 404


def test_the_edit_page_changes_the_schemas_and_a_post_without_the_picker_keeps_them(
    client, owner, tenant_a, tenant_database
):
    source = DataSource.objects.create(tenant=tenant_a, name="App", connection_url=tenant_database)
    signed_in(client, owner)
    edit = f"/datasources/{source.pk}/edit/"

    client.post(
        edit, {"name": "App", "connection_url": "", "schemas": ["app", "sales"], "schemas_shown": "1"}
    )
    source.refresh_from_db()
    assert source.schemas == ["app", "sales"] and source.connection_url == tenant_database

    client.post(edit, {"name": "Renamed", "connection_url": ""})
    source.refresh_from_db()
    assert source.name == "Renamed" and source.schemas == ["app", "sales"]
    too_long = client.post(edit, {"name": "App", "schemas_typed": "x" * 64, "schemas_shown": "1"})
    assert "longer than PostgreSQL" in too_long.content.decode()
