"""The branch step in the builder (paths, "+" per path, inserting, editing paths), the files that carry
it, the publish diff's old → new values, unknown-variable warnings and errors in plain words.

Hostile and real-world cases: a "+" that names a path the branch does not have, or no path at all under
a branch (400, nothing created); inserting a step above a path's first step; a new branch inserted on
a connection takes the steps below onto its first path; removing a path removes the steps on it only;
a file whose step names no path, or a path the branch does not have (refused, naming the step); a
path's rule on a field the item does not have is pointed out while typing.
"""

from __future__ import annotations

import pytest

from tests.builder.test_builder_views import add, save
from tests.builder.test_publish_and_tenancy import webhook_workflow
from workflows.diff import diff_versions
from workflows.files import WorkflowFileError, export_workflow, import_workflow
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish, validate_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(tenant_a, owner):
    return Workflow.objects.create(tenant=tenant_a, name="Follow-up", created_by=owner)


def post_add(client, workflow, **data):
    return client.post(f"/workflows/{workflow.pk}/steps/add/", data)


def branch_tree(client, workflow):
    trigger = add(client, workflow, "webhook_trigger")
    save(client, workflow, trigger, sample='{"email": "a@b.c", "name": "A", "onboarded": true}')
    branch = add(client, workflow, "branch", trigger)
    return trigger, branch


def test_plus_under_a_branch_adds_on_the_named_path_and_refuses_others(owner_client, workflow):
    _trigger, branch = branch_tree(owner_client, workflow)
    page = owner_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert 'data-path="p1"' in page and 'data-path="otherwise"' in page  # both paths drawn, labelled
    assert "Path 1" in page and "Otherwise" in page
    before = Step.objects.count()
    for bad in ({"path": "nope"}, {}):  # a path the branch lacks, or none at all
        response = post_add(owner_client, workflow, kind="send_email", anchor=branch.pk, mode="child", **bad)
        assert response.status_code == 400 and "one of its paths" in response.content.decode()
    assert Step.objects.count() == before
    assert (
        post_add(
            owner_client, workflow, kind="send_email", anchor=branch.pk, mode="child", path="p1"
        ).status_code
        == 200
    )
    first = Step.objects.get(kind="send_email")
    assert (first.parent_id, first.path) == (branch.pk, "p1")
    # "+" at the top of a path that has steps inserts above them; the path moves to the new step.
    assert (
        post_add(owner_client, workflow, kind="wait", anchor=branch.pk, mode="insert", path="p1").status_code
        == 200
    )
    wait = Step.objects.get(kind="wait")
    first.refresh_from_db()
    assert (wait.parent_id, wait.path) == (branch.pk, "p1") and (first.parent_id, first.path) == (wait.pk, "")
    assert not any("path" in errors for errors in validate_version(wait.version).values())


def test_a_branch_inserted_on_a_connection_takes_the_steps_below_onto_its_first_path(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    branch = add(owner_client, workflow, "branch", trigger, mode="insert")
    email.refresh_from_db()
    assert (email.parent_id, email.path) == (branch.pk, "p1")


def test_paths_are_added_moved_and_removed_with_the_steps_on_them(owner_client, workflow):
    _trigger, branch = branch_tree(owner_client, workflow)
    url = f"/workflows/{workflow.pk}/steps/{branch.pk}/paths/"
    assert owner_client.post(url, {"action": "add"}).status_code == 200
    post_add(owner_client, workflow, kind="send_email", anchor=branch.pk, mode="child", path="p2")
    post_add(owner_client, workflow, kind="slack_message", anchor=branch.pk, mode="child", path="p1")
    assert owner_client.post(url, {"action": "up", "path": "p2"}).status_code == 200
    branch.refresh_from_db()
    assert [p["id"] for p in branch.config["paths"]] == ["p2", "p1"]
    assert owner_client.post(url, {"action": "remove", "path": "p2"}).status_code == 200
    assert (
        not Step.objects.filter(kind="send_email").exists()
        and Step.objects.filter(kind="slack_message").exists()
    )
    assert owner_client.post(url, {"action": "remove", "path": "p1"}).status_code == 400  # the last one stays
    assert owner_client.post(url, {"action": "explode"}).status_code == 400
    email = add(owner_client, workflow, "send_email", Step.objects.get(kind="slack_message"))
    assert (
        owner_client.post(f"/workflows/{workflow.pk}/steps/{email.pk}/paths/", {"action": "add"}).status_code
        == 400
    )


def test_the_paths_form_saves_rules_and_expressions_and_warns_of_unknown_fields(owner_client, workflow):
    _trigger, branch = branch_tree(owner_client, workflow)
    rows = {
        "paths-count": "2",
        "paths-0-id": "p1",
        "paths-0-label": "Finished",
        "paths-0-match": "rule",
        "paths-0-field": "onboardd",
        "paths-0-operator": "is_true",
        "paths-0-value": "",
        "paths-1-id": "p2",
        "paths-1-label": "Pro",
        "paths-1-match": "expression",
        "paths-1-expression": "item.plan == 'pro'",
        "otherwise": "on",
        "otherwise_label": "Everyone else",
    }
    response = save(owner_client, workflow, branch, **rows)
    html = response.content.decode()
    branch.refresh_from_db()
    assert [p["label"] for p in branch.config["paths"]] == ["Finished", "Pro"]
    assert branch.config["paths"][1]["expression"] == "item.plan == 'pro'"
    assert branch.config["otherwise_label"] == "Everyone else"
    assert "Path “Finished”: Unknown variable item.onboardd." in html
    assert f"path-name-{branch.pk}-otherwise" in html and "Everyone else" in html  # the tree's label follows
    rows["paths-0-field"] = "onboarded"
    rows["paths-1-expression"] = "item.plan == "
    html = save(owner_client, workflow, branch, **rows).content.decode()
    assert "Unknown variable" not in html
    assert "Path “Pro”: The expression ends too early" in html  # plain words, not Jinja's


def test_unknown_variables_are_flagged_in_templates_and_conditions(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    save(owner_client, workflow, trigger, sample='{"email": "a@b.c", "name": "A"}')
    email = add(owner_client, workflow, "send_email", trigger)
    html = save(
        owner_client, workflow, email, subject="Hi {{ item.nmae }}", text="{{ item['e mail'] }}"
    ).content.decode()
    assert "Unknown variable item.nmae (did you mean item.name?)" in html
    assert "item.e mail" in html
    calls = save(
        owner_client, workflow, email, subject="{{ item.get('nickname', item.name) }}"
    ).content.decode()
    assert 'id="warn-subject" role="status" hx-swap-oob="true"></div>' in calls  # a method call is no field
    # The trigger's run label reads the item the trigger produces.
    html = save(
        owner_client, workflow, trigger, sample='{"email": "a@b.c", "name": "A"}', run_label="{{ item.emal }}"
    )
    assert "Unknown variable item.emal (did you mean item.email?)" in html.content.decode()
    condition = add(owner_client, workflow, "condition", trigger)
    page = owner_client.get(f"/workflows/{workflow.pk}/steps/{condition.pk}/").content.decode()
    assert 'data-expression="item.email"' in page  # chips insert expressions into a condition
    html = save(owner_client, workflow, condition, expression="item.emial == 'x'").content.decode()
    assert "Unknown variable item.emial (did you mean item.email?)" in html
    html = save(owner_client, workflow, condition, expression="item.email x").content.decode()
    assert "chunk after expression" not in html and "Something follows the expression" in html


def test_the_publish_diff_shows_old_and_new_values(tenant_a, owner, owner_client):
    workflow = webhook_workflow(tenant_a)
    v1 = publish(workflow, user=owner)
    draft = get_or_create_draft(workflow)
    email = draft.steps.get(kind="send_email")
    email.config = {**email.config, "subject": "Hello again"}
    email.name = "Greet them"
    email.save()
    diff = diff_versions(v1, draft)
    [change] = diff.changed
    assert [(s.label, s.old, s.new) for s in change.settings] == [
        ("Name", "Tell them", "Greet them"),
        ("Subject", "Hi", "Hello again"),
    ]
    dialog = owner_client.get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "<del>Hi</del> → <ins>Hello again</ins>" in dialog


def test_a_branch_survives_export_and_import_and_bad_paths_are_refused(
    tenant_a, tenant_b, owner_client, workflow
):
    _trigger, branch = branch_tree(owner_client, workflow)
    post_add(owner_client, workflow, kind="send_email", anchor=branch.pk, mode="child", path="otherwise")
    email = Step.objects.get(kind="send_email")
    save(owner_client, workflow, email, subject="Finish onboarding", text="Three steps left.")
    branch.refresh_from_db()
    save(
        owner_client,
        workflow,
        branch,
        **{
            "paths-count": "1",
            "paths-0-id": "p1",
            "paths-0-label": "Done",
            "paths-0-match": "rule",
            "paths-0-field": "onboarded",
            "paths-0-operator": "is_true",
            "otherwise": "on",
        },
    )
    data = export_workflow(workflow)
    [branch_node] = data["trigger"]["children"]
    assert branch_node["kind"] == "branch" and branch_node["children"][0]["path"] == "otherwise"
    copy = import_workflow(data, tenant_b)
    steps = {s.kind: s for s in WorkflowVersion.objects.get(workflow=copy).steps.all()}
    assert steps["send_email"].path == "otherwise" and steps["send_email"].parent_id == steps["branch"].pk
    for bad in ("p9", ""):
        branch_node["children"][0]["path"] = bad
        with pytest.raises(WorkflowFileError) as refused:
            import_workflow(data, tenant_b)
        assert "trigger/0/0" in refused.value.errors and "path" in refused.value.errors["trigger/0/0"]
