"""The branch step on real RQ burst workers, and the states that say what happened to an item.

Hostile and real-world cases written down first:
- two paths whose conditions both hold: only the first in order runs (never both);
- no path holds: the otherwise path runs; without one, the item ends as filtered (not failed);
- a path whose condition cannot be evaluated (a field the item lacks, a comparison of text with a
  number): that item fails with the path's name and no path runs; other items of the same batch go on;
- a false condition and a query with no rows are "filtered", not "succeeded";
- a wait skipped by a test run is "skipped"; a live wait is pending until its time;
- the new states keep a run "succeeded" (a path that ends on purpose is no failure).
"""

from __future__ import annotations

from datetime import timedelta

from runs.engine import start_run, start_runs
from runs.models import Run, StepExecution
from tests.engine.conftest import (
    branch,
    build_workflow,
    customer_db,
    data_source,
    email,
    on_path,
    query,
    settle,
    webhook,
    work,
)

FINISHED = {"id": "done", "label": "Finished onboarding", "field": "onboarded", "operator": "is_true"}
PRO = {"id": "pro", "label": "Pro plan", "expression": "item.plan == 'pro'"}


SUBJECTS = {"done": "Next steps", "pro": "Pro tips", "big": "Big spender perks", "x": "Trial ending"}


def routed_workflow(tenant, otherwise: bool = True, paths=(FINISHED, PRO)):
    children = [on_path(path["id"], email(subject=SUBJECTS[path["id"]], name=path["id"])) for path in paths]
    if otherwise:
        children.append(on_path("otherwise", email(subject="Finish onboarding", name="otherwise")))
    return build_workflow(tenant, webhook([branch(list(paths), children, otherwise=otherwise)]))


def subjects_by_recipient(smtp) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in smtp.messages:
        found.setdefault(message["To"], []).append(message["Subject"])
    return found


def test_each_item_takes_exactly_one_path_the_first_that_matches(clock, smtp, tenant_a):
    workflow = routed_workflow(tenant_a)
    events = [
        ({"email": "both@example.com", "name": "B", "onboarded": True, "plan": "pro"}, "e1"),
        ({"email": "pro@example.com", "name": "P", "onboarded": False, "plan": "pro"}, "e2"),
        ({"email": "none@example.com", "name": "N", "onboarded": False, "plan": "free"}, "e3"),
    ]
    runs = start_runs(workflow, events)
    work(clock)
    assert subjects_by_recipient(smtp) == {
        "both@example.com": ["Next steps"],  # both paths hold; the first in order wins
        "pro@example.com": ["Pro tips"],
        "none@example.com": ["Finish onboarding"],  # no path holds: otherwise
    }
    branch_exec = StepExecution.objects.get(run=runs[0], step__kind="branch")
    assert branch_exec.status == "succeeded" and branch_exec.output == {
        "path": "Finished onboarding",
        "why": "onboarded is true",
    }
    # Only the chosen path's step got an execution: the others are "not reached", not filtered.
    assert StepExecution.objects.filter(run=runs[0]).count() == 3
    assert {r.status for r in Run.objects.all()} == {Run.Status.SUCCEEDED}


def test_no_path_and_no_otherwise_ends_the_item_as_filtered(clock, smtp, tenant_a):
    workflow = routed_workflow(tenant_a, otherwise=False)
    run = start_run(workflow, {"email": "n@example.com", "name": "N", "onboarded": False, "plan": "x"}, "e1")
    work(clock)
    run.refresh_from_db()
    execution = StepExecution.objects.get(run=run, step__kind="branch")
    assert execution.status == StepExecution.Status.FILTERED
    assert "no path matched" in execution.output["reason"]
    assert smtp.messages == []
    assert run.status == Run.Status.SUCCEEDED
    assert not StepExecution.objects.filter(run=run, step__kind="send_email").exists()


def test_an_error_in_one_paths_condition_fails_that_item_only(clock, smtp, tenant_a):
    numeric = {
        "id": "big",
        "label": "Big spender",
        "field": "spent",
        "operator": "greater_than",
        "value": "100",
    }
    workflow = routed_workflow(tenant_a, paths=(numeric, PRO))
    events = [
        # No "spent" field: the first path cannot be evaluated, so no path runs for this item.
        ({"email": "a@example.com", "name": "A", "plan": "pro"}, "e1"),
        ({"email": "b@example.com", "name": "B", "plan": "pro", "spent": 5}, "e2"),
    ]
    first, second = start_runs(workflow, events)
    work(clock)
    failed = StepExecution.objects.get(run=first, step__kind="branch")
    assert failed.status == "failed"
    assert "Branch, path “Big spender”" in failed.error and "no field “spent”" in failed.error
    assert subjects_by_recipient(smtp) == {"b@example.com": ["Pro tips"]}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Run.Status.FAILED and second.status == Run.Status.SUCCEEDED


def test_a_broken_expression_at_run_time_names_its_path(clock, smtp, tenant_a):
    broken = {"id": "x", "label": "Trial ending", "expression": "item.trial.days < 3"}
    workflow = routed_workflow(tenant_a, paths=(broken, PRO))
    run = start_run(workflow, {"email": "a@example.com", "name": "A", "plan": "pro"}, "e1")
    work(clock)
    failed = StepExecution.objects.get(run=run, step__kind="branch")
    assert failed.status == "failed" and "Branch, path “Trial ending”" in failed.error
    assert smtp.messages == []


def test_a_false_condition_is_filtered_and_the_run_succeeds(clock, smtp, tenant_a):
    condition = {"kind": "condition", "config": {"expression": "item.plan == 'pro'"}, "children": [email()]}
    workflow = build_workflow(tenant_a, webhook([condition]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A", "plan": "free"}, "e1")
    work(clock)
    run.refresh_from_db()
    assert StepExecution.objects.get(run=run, step__kind="condition").status == "filtered"
    assert run.status == Run.Status.SUCCEEDED and smtp.messages == []


def test_a_query_with_no_rows_is_filtered_in_every_mode(clock, smtp, tenant_a, tenant_database):
    customer_db(tenant_database, "CREATE TABLE users (id int primary key, email text)")
    source = data_source(tenant_a, tenant_database)
    steps = [
        query(source, "SELECT id, email FROM users", mode=mode, children=[email()])
        for mode in ("fanout", "first")
    ]
    workflow = build_workflow(tenant_a, webhook(steps))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "e1")
    work(clock)
    statuses = list(
        StepExecution.objects.filter(run=run, step__kind="data_query").values_list("status", flat=True)
    )
    assert statuses == ["filtered", "filtered"]
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_a_wait_skipped_in_a_test_run_reads_skipped(clock, smtp, tenant_a):
    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email()],
    }
    workflow = build_workflow(tenant_a, webhook([wait]))
    run = start_run(
        workflow,
        {"email": "a@example.com", "name": "A"},
        "test-1",
        is_test=True,
        options={"skip_waits": True},
    )
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="wait")
    assert execution.status == "skipped"
    assert execution.output["would_wait_until"].startswith((clock.now + timedelta(days=3)).date().isoformat())
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_a_live_wait_is_pending_until_its_time_then_succeeds(clock, smtp, tenant_a):
    from runs.views.presenting import execution_state

    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email()],
    }
    workflow = build_workflow(tenant_a, webhook([wait]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "e1")
    work(clock)
    waiting = StepExecution.objects.select_related("step").get(run=run, step__kind="wait")
    assert waiting.status == "pending"
    assert execution_state(waiting, clock.now).startswith("waiting until")
    settle(clock, step_seconds=86400)
    waiting.refresh_from_db()
    assert waiting.status == "succeeded" and smtp.recipients() == ["a@example.com"]


def test_a_branch_run_costs_the_same_statements_per_item_as_a_condition(clock, smtp, tenant_a, settings):
    """The branch adds no query: a batch of items costs what a condition's batch costs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from runs.engine.executor import run_batch

    condition = {"kind": "condition", "config": {"expression": "true"}, "children": [email()]}
    plain = build_workflow(tenant_a, webhook([condition]), name="plain")
    routed = build_workflow(
        tenant_a, webhook([branch([PRO], [on_path("pro", email())], otherwise=False)]), name="routed"
    )
    costs = []
    for workflow in (plain, routed):
        run = start_run(workflow, {"email": "a@example.com", "name": "A", "plan": "pro"}, f"e-{workflow.pk}")
        root = workflow.published_version.root_step()
        step = root.children.get()
        run_batch(run.pk, root.pk)  # the trigger (follows into the step below with few items)
        StepExecution.objects.filter(run=run).exclude(step=root).delete()
        StepExecution.objects.create(
            tenant=tenant_a, run=run, step=step, item_key="0", input=run.payload, next_attempt_at=clock.now
        )
        settings.ENGINE_FOLLOW_MAX_STEPS = 0
        with CaptureQueriesContext(connection) as captured:
            run_batch(run.pk, step.pk)
        costs.append(len(captured))
        settings.ENGINE_FOLLOW_MAX_STEPS = 20
    assert costs[0] == costs[1]


def test_branch_settings_are_checked_before_anything_runs():
    from workflows.steps import ConfigError, get_kind

    kind = get_kind("branch")
    bad = [
        ({"paths": []}, "at least one path"),
        ({"paths": "p1"}, "at least one path"),
        (
            {"paths": [{"id": 'a b"', "label": "X", "match": "rule", "field": "f", "operator": "is_true"}]},
            "id of",
        ),
        (
            {
                "paths": [
                    {"id": "otherwise", "label": "X", "match": "rule", "field": "f", "operator": "is_true"}
                ]
            },
            "id of its own",
        ),
        ({"paths": [FINISHED, FINISHED]}, "id of its own"),
        (
            {"paths": [{"id": "a", "label": "X", "match": "rule", "field": "", "operator": "is_true"}]},
            "choose the field",
        ),
        (
            {"paths": [{"id": "a", "label": "X", "match": "rule", "field": "f", "operator": "rm -rf"}]},
            "how to compare",
        ),
        (
            {"paths": [{"id": "a", "label": "X", "match": "expression", "expression": "item.a =="}]},
            "ends too early",
        ),
        ({"paths": [{"id": "a", "label": "X", "match": "magic"}]}, "a field"),
        ({"paths": [dict(FINISHED, id=f"p{n}") for n in range(21)]}, "at most 20"),
    ]
    for config, message in bad:
        try:
            kind.validate(config)
        except ConfigError as exc:
            assert message in exc.errors["paths"], (config, exc.errors)
        else:
            raise AssertionError(f"accepted {config}")
    cleaned = kind.validate({"paths": [{**FINISHED, "match": "rule"}], "otherwise": "on"})
    assert cleaned["otherwise"] is True and kind.paths(cleaned) == [
        ("done", "Finished onboarding"),
        ("otherwise", "Otherwise"),
    ]


def test_rules_compare_numbers_times_text_and_lists():
    from workflows.steps.branch import ConditionError, matches

    def rule(operator, value="", field="v"):
        return {"match": "rule", "field": field, "operator": operator, "value": value}

    assert matches(rule("greater_than", "5"), {"v": 9}, {}) and not matches(
        rule("greater_than", "10"), {"v": 9}, {}
    )
    assert matches(rule("less_than", "2026-03-01"), {"v": "2026-02-01T10:00:00+00:00"}, {})
    assert matches(rule("equals", "pro"), {"v": "pro"}, {}) and matches(rule("equals", "3"), {"v": 3.0}, {})
    assert matches(rule("contains", "ADM"), {"v": "an admin"}, {}) and matches(
        rule("contains", "b"), {"v": ["a", "b"]}, {}
    )
    assert matches(rule("is_false"), {"v": "false"}, {}) and matches(rule("is_true"), {"v": "yes"}, {})
    assert matches(rule("is_empty"), {}, {}) and not matches(rule("is_not_empty"), {"v": []}, {})
    assert matches(rule("equals", "x", field="profile.plan"), {"profile": {"plan": "x"}}, {})
    for hostile in ({"v": "abc"}, {"w": 1}):
        try:
            matches(rule("greater_than", "5"), hostile, {})
        except ConditionError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"compared {hostile}")
