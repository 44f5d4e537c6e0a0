"""A run says whom it is about: the trigger's run label template, its default, search, and waiting runs.

Cases: the default takes the item's email, else its name, else nothing; a custom template renders per
run; a template that fails on an item (unknown variable) falls back to the default instead of failing
the run; a label with markup is shown escaped; search finds a run by the start of its label in any case
and treats LIKE's wildcards as text; a run that only waits reads "Waiting until …", not "Running".
"""

from __future__ import annotations

from django.urls import reverse

from runs.engine import start_run
from runs.models import Run
from tests.engine.conftest import build_workflow, email, work

RUNS = reverse("runs:run_list")


def labelled_workflow(tenant, template: str = "", children=None):
    trigger = {"kind": "webhook_trigger", "config": {"run_label": template}, "children": children or []}
    return build_workflow(tenant, trigger, name="Labelled")


def test_the_default_label_is_the_items_email_else_its_name(clock, tenant_a):
    workflow = labelled_workflow(tenant_a)
    by_email = start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "e1")
    by_name = start_run(workflow, {"name": "Grace Hopper"}, "e2")
    neither = start_run(workflow, {"id": 7}, "e3")
    full_name = start_run(workflow, {"id": 8, "email": None, "full_name": "Ada Lovelace"}, "e4")
    odd = start_run(workflow, {"name": {"first": "Ann"}, "email": True}, "e5")  # not text: no label
    labels = (by_email.label, by_name.label, neither.label, full_name.label, odd.label)
    assert labels == ("ada@example.com", "Grace Hopper", "", "Ada Lovelace", "")


def test_a_custom_label_renders_and_a_failing_one_falls_back(clock, tenant_a):
    workflow = labelled_workflow(tenant_a, "{{ item.first }} {{ item.last }} (#{{ item.id }})")
    run = start_run(workflow, {"first": "Ada", "last": "Lovelace", "id": 42, "email": "a@x.org"}, "e1")
    assert run.label == "Ada Lovelace (#42)"
    missing = start_run(workflow, {"email": "b@x.org"}, "e2")  # no first/last/id: unknown variables
    assert missing.label == "b@x.org"


def test_a_broken_label_template_is_refused_when_saved():
    from workflows.steps import ConfigError, get_kind

    try:
        get_kind("webhook_trigger").validate({"sample": {}, "run_label": "{{ item.email "})
    except ConfigError as exc:
        assert "run_label" in exc.errors
    else:
        raise AssertionError("an unclosed template was accepted")


def test_the_activity_list_shows_the_label_escaped_and_finds_runs_by_its_start(clock, tenant_a, owner_client):
    workflow = labelled_workflow(tenant_a, "{{ item.name }}")
    ada = start_run(workflow, {"name": "Ada <b>Lovelace</b>"}, "e1")
    grace = start_run(workflow, {"name": "Grace Hopper"}, "e2")
    percent = start_run(workflow, {"name": "100% Ada"}, "e3")
    work(clock)
    page = owner_client.get(RUNS).content.decode()
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in page and "Grace Hopper" in page

    def found(query):
        return [row["run"].pk for row in owner_client.get(RUNS, {"q": query}).context["rows"]]

    assert found("ada") == [ada.pk]  # the start, in any case
    assert found("GRACE h") == [grace.pk]
    assert found("Hopper") == []  # a prefix search, not a substring one
    assert found("100%") == [percent.pk] and found("%") == []  # wildcards are text


def test_a_run_that_only_waits_reads_waiting_until(clock, tenant_a, owner_client):
    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email()],
    }
    workflow = labelled_workflow(tenant_a, children=[wait])
    run = start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "e1")
    work(clock)
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    row = owner_client.get(RUNS).context["rows"][0]
    assert row["state"].startswith("Waiting until") and row["duration"] == ""
    assert dict(row["counts"]) == {"succeeded": 1, "waiting": 1}
