"""Search by payload field: the trigger declares searchable fields (`item.account_id`), a run stores their
values when it starts, and the activity list filters by field = value with keyset pages.

Cases: a declared field finds its runs and only those; odd item shapes (missing, null, a list, an object,
a number, a boolean, text of 5,000 characters); a hashed field stores no clear text and the search hashes
what is typed; another tenant's runs with the same value are never found (nor its fields offered); keyset
pages walk a field's runs once each; the other filters still apply; a bad declaration is refused with
what is wrong; a workflow file carries the declaration.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from runs.engine import start_run
from runs.models import Run, RunSearchValue
from runs.search_values import MAX_LIST_VALUES, stored_value, values_at
from tests.engine.conftest import build_workflow
from workflows.steps import ConfigError, get_kind
from workflows.steps.search_fields import SearchField

RUNS = reverse("runs:run_list")
FIELDS = [{"path": "item.account_id"}, {"path": "item.email", "hashed": True}, {"path": "item.tags"}]


def searchable_workflow(tenant, fields=None, name="Searchable"):
    trigger = {"kind": "webhook_trigger", "config": {"search_fields": FIELDS if fields is None else fields}}
    return build_workflow(tenant, trigger, name=name)


def run_ids(response) -> list[int]:
    assert response.status_code == 200
    return [row["run"].pk for row in response.context["rows"]]


def search(client, field: str, value: str, **filters):
    return run_ids(client.get(RUNS, {"field": field, "value": value, **filters}))


def test_runs_are_found_by_a_declared_field_and_only_those(clock, tenant_a, owner_client):
    workflow = searchable_workflow(tenant_a)
    first = start_run(workflow, {"account_id": "acc-1"}, "e1")
    start_run(workflow, {"account_id": "acc-2"}, "e2")
    second = start_run(workflow, {"account_id": "acc-1", "email": "x@example.com"}, "e3")
    assert search(owner_client, "item.account_id", "acc-1") == [second.pk, first.pk]
    assert search(owner_client, "item.account_id", "ACC-1") == []  # exact: case counts
    assert search(owner_client, "item.account_id", "acc") == []  # exact: not a prefix
    page = owner_client.get(RUNS, {"field": "item.account_id", "value": "acc-1"})
    assert b"item.account_id" in page.content and b"item.email (hashed)" in page.content


@pytest.mark.parametrize(
    "item, typed, found",
    [
        ({}, "", False),  # the path is missing: nothing stored
        ({"account_id": None}, "null", False),
        ({"account_id": {"id": 7}}, '{"id": 7}', False),  # an object is not a value one types
        ({"account_id": 42}, "42", True),
        ({"account_id": 1.5}, "1.5", True),
        ({"account_id": True}, "true", True),
        ({"account_id": "x" * 5000}, "x" * 5000, True),  # stored as a digest, found by the whole text
        ({"account_id": "  spaced  "}, "  spaced  ", False),  # the form strips what is typed
        ({"account_id": "ünï ☃"}, "ünï ☃", True),
    ],
)
def test_odd_item_shapes(clock, tenant_a, owner_client, item, typed, found):
    workflow = searchable_workflow(tenant_a)
    run = start_run(workflow, item, "e1")
    stored = list(
        RunSearchValue.objects.filter(run=run, field="item.account_id").values_list("value", flat=True)
    )
    assert all(len(value) <= 200 for value in stored)
    if typed:
        assert search(owner_client, "item.account_id", typed) == ([run.pk] if found else [])
    else:
        assert stored == []


def test_a_list_stores_each_of_its_scalars_once(clock, tenant_a, owner_client):
    workflow = searchable_workflow(tenant_a)
    many = [f"t{n}" for n in range(50)]
    run = start_run(workflow, {"tags": ["vip", "vip", 3, {"nested": 1}, ["deep"], None, *many]}, "e1")
    values = set(RunSearchValue.objects.filter(run=run, field="item.tags").values_list("value", flat=True))
    assert {"vip", "3"} <= values and len(values) == MAX_LIST_VALUES
    assert search(owner_client, "item.tags", "vip") == [run.pk]
    assert search(owner_client, "item.tags", "3") == [run.pk]
    assert search(owner_client, "item.tags", "deep") == []


def test_nested_paths_and_list_positions():
    item = {"customer": {"id": "c-9", "emails": ["a@x.org", "b@x.org"]}}
    assert values_at(item, "item.customer.id") == ["c-9"]
    assert values_at(item, "item.customer.emails.1") == ["b@x.org"]
    assert values_at(item, "item.customer.emails.5") == []
    assert values_at(item, "item.customer.id.deeper") == []
    assert values_at("not an object", "item.customer") == []


def test_a_hashed_field_stores_no_clear_text_and_the_search_hashes_the_query(clock, tenant_a, owner_client):
    workflow = searchable_workflow(tenant_a)
    run = start_run(workflow, {"email": "Ada@Example.com"}, "e1")
    stored = RunSearchValue.objects.get(run=run, field="item.email")
    assert stored.hashed and "Ada" not in stored.value and len(stored.value) == 64
    assert search(owner_client, "hashed:item.email", "Ada@Example.com") == [run.pk]
    assert search(owner_client, "hashed:item.email", "ada@example.com") == []
    # The stored HMAC typed as a value is not a way in: it is hashed again.
    assert search(owner_client, "hashed:item.email", stored.value) == []
    # Not offered as a plain field: the clear value is never looked up.
    assert b"Select a valid choice" in owner_client.get(RUNS, {"field": "item.email", "value": "x"}).content


def test_the_hash_depends_on_the_server_key_and_the_tenant(settings, tenant_a, tenant_b):
    field = SearchField("item.email", hashed=True)
    settings.SEARCH_HASH_KEY = "one"
    first = stored_value(tenant_a.pk, field, "ada@example.com")
    assert first != stored_value(tenant_b.pk, field, "ada@example.com")
    settings.SEARCH_HASH_KEY = "two"
    assert first != stored_value(tenant_a.pk, field, "ada@example.com")


def test_another_tenants_runs_and_fields_stay_out(clock, tenant_a, tenant_b, owner_client, outsider_client):
    mine = searchable_workflow(tenant_a)
    theirs = searchable_workflow(tenant_b, fields=[*FIELDS, {"path": "item.secret_plan"}], name="Theirs")
    own = start_run(mine, {"account_id": "acc-1", "email": "ada@example.com"}, "e1")
    other = start_run(theirs, {"account_id": "acc-1", "email": "ada@example.com", "secret_plan": "p"}, "e1")
    assert search(owner_client, "item.account_id", "acc-1") == [own.pk]
    assert search(owner_client, "hashed:item.email", "ada@example.com") == [own.pk]
    assert search(outsider_client, "item.account_id", "acc-1") == [other.pk]
    page = owner_client.get(RUNS, {"field": "item.secret_plan", "value": "p"})
    assert b'value="item.secret_plan"' not in page.content and b"Select a valid choice" in page.content
    assert run_ids(page) != [other.pk] and other.pk not in run_ids(page)
    # Another tenant's workflow given as the workflow filter is refused, not searched.
    refused = owner_client.get(RUNS, {"field": "item.account_id", "value": "acc-1", "workflow": theirs.pk})
    assert other.pk not in run_ids(refused)


def test_keyset_pages_walk_a_fields_runs_once(clock, tenant_a, owner_client, settings):
    workflow = searchable_workflow(tenant_a)
    runs = [start_run(workflow, {"account_id": "acc-1" if n % 3 else "acc-2"}, f"e{n}") for n in range(130)]
    # Equal start times: the run id breaks the tie.
    Run.objects.update(created_at=runs[0].created_at)
    RunSearchValue.objects.update(created_at=runs[0].created_at)
    expected = sorted((run.pk for n, run in enumerate(runs) if n % 3), reverse=True)
    seen, params = [], {"field": "item.account_id", "value": "acc-1"}
    while True:
        page = owner_client.get(RUNS, params)
        seen += run_ids(page)
        cursor = page.context["page"].next_cursor
        if not cursor:
            break
        params["after"] = cursor
    assert seen == expected
    bad = owner_client.get(RUNS, {"field": "item.account_id", "value": "acc-1", "after": "nonsense"})
    assert b"not a page position" in bad.content and len(run_ids(bad)) == 50


def test_the_other_filters_still_apply(clock, tenant_a, owner_client):
    workflow = searchable_workflow(tenant_a)
    other = searchable_workflow(tenant_a, name="Other")
    failed = start_run(workflow, {"account_id": "acc-1"}, "e1")
    Run.objects.filter(pk=failed.pk).update(status=Run.Status.FAILED)
    ok = start_run(workflow, {"account_id": "acc-1", "email": "zed@example.com"}, "e2")
    elsewhere = start_run(other, {"account_id": "acc-1"}, "e3")
    assert search(owner_client, "item.account_id", "acc-1", status="failed") == [failed.pk]
    assert search(owner_client, "item.account_id", "acc-1", workflow=other.pk) == [elsewhere.pk]
    assert search(owner_client, "item.account_id", "acc-1", q="zed@") == [ok.pk]
    per_workflow = reverse("runs:workflow_runs", args=[other.pk])
    assert run_ids(owner_client.get(per_workflow, {"field": "item.account_id", "value": "acc-1"})) == [
        elsewhere.pk
    ]
    missing_value = owner_client.get(RUNS, {"field": "item.account_id"})
    assert b"Type the value the field must equal" in missing_value.content


def test_test_runs_store_no_search_values(clock, tenant_a):
    workflow = searchable_workflow(tenant_a)
    start_run(workflow, {"account_id": "acc-1"}, "t1", is_test=True)
    assert not RunSearchValue.objects.exists()


def test_starting_the_same_event_twice_stores_its_values_once(clock, tenant_a):
    workflow = searchable_workflow(tenant_a)
    start_run(workflow, {"account_id": "acc-1"}, "e1")
    start_run(workflow, {"account_id": "acc-1"}, "e1")
    assert RunSearchValue.objects.count() == 1


@pytest.mark.parametrize(
    "declared, message",
    [
        ("account_id", "not a path into the item"),
        ("item.a.b.c.d.e.f", "not a path into the item"),
        ("item.email secret", "one path a line"),
        ("item.a\nitem.a", "declared twice"),
        ("\n".join(f"item.f{n}" for n in range(6)), "At most 5"),
        ([{"path": "item.a", "hashed": "yes"}], "true or false"),
        ([{"path": "item.a", "salt": 1}], "only path and hashed"),
        ({"path": "item.a"}, "a list of paths"),
        ("item.a'; DROP TABLE x", "one path a line"),
    ],
)
def test_a_bad_declaration_is_refused_with_what_is_wrong(declared, message):
    with pytest.raises(ConfigError) as refused:
        get_kind("webhook_trigger").validate({"sample": {}, "search_fields": declared})
    assert message in str(refused.value.errors["search_fields"])


def test_the_panels_text_and_a_files_list_store_the_same(tenant_a):
    kind = get_kind("webhook_trigger")
    from_text = kind.validate({"sample": {}, "search_fields": "item.account_id\n\n  item.email HASHED \n"})
    from_file = kind.validate(
        {"sample": {}, "search_fields": ["item.account_id", {"path": "item.email", "hashed": True}]}
    )
    assert (
        from_text["search_fields"]
        == from_file["search_fields"]
        == [
            {"path": "item.account_id"},
            {"path": "item.email", "hashed": True},
        ]
    )
    assert "search_fields" not in kind.validate({"sample": {}, "search_fields": ""})


def test_the_trigger_panel_edits_the_fields_one_a_line(tenant_a, owner_client):
    trigger = {"kind": "webhook_trigger", "config": {"search_fields": FIELDS}}
    workflow = build_workflow(tenant_a, trigger, name="Draft", publish_it=False)
    draft = workflow.versions.get(state="draft")
    root = draft.steps.get(parent=None)
    panel = owner_client.get(reverse("workflows:step_panel", args=[workflow.pk, root.pk]))
    body = panel.content.decode()
    assert "Searchable fields" in body and "item.account_id\nitem.email hashed\nitem.tags</textarea>" in body
    saved = owner_client.post(
        reverse("workflows:save_step", args=[workflow.pk, root.pk]),
        {
            "config-sample": "{}",
            "config-search_fields": "item.plan\nitem.phone hashed",
            "revision": draft.revision,
        },
    )
    assert saved.status_code == 200
    root.refresh_from_db()
    assert root.config["search_fields"] == [{"path": "item.plan"}, {"path": "item.phone", "hashed": True}]
    refused = owner_client.post(
        reverse("workflows:save_step", args=[workflow.pk, root.pk]),
        {"config-sample": "{}", "config-search_fields": "plan", "revision": draft.revision + 1},
    )
    assert "not a path into the item" in refused.content.decode()


def test_without_a_searchable_field_the_filter_is_not_offered(tenant_a, owner_client):
    build_workflow(tenant_a, {"kind": "webhook_trigger", "config": {}}, name="Plain")
    page = owner_client.get(RUNS, {"field": "item.account_id", "value": "acc-1"})
    assert page.status_code == 200 and b'name="field"' not in page.content


def test_a_workflow_file_carries_the_declaration_and_refuses_a_bad_one(tenant_a, tenant_b):
    from workflows.files import WorkflowFileError, export_workflow, import_workflow

    data = export_workflow(searchable_workflow(tenant_a))
    assert data["trigger"]["config"]["search_fields"] == FIELDS
    copy = import_workflow(data, tenant_b, publish_it=True)
    copy.refresh_from_db()
    assert copy.published_version.root_step().config["search_fields"] == FIELDS
    data["trigger"]["config"]["search_fields"] = [{"path": "email"}]
    with pytest.raises(WorkflowFileError) as refused:
        import_workflow(data, tenant_b)
    assert "not a path into the item" in str(refused.value.errors)
