"""Frequency budget per recipient across workflows (#23 item 4): a tenant's budget of 3 a day; 5 messages
to one recipient from 2 workflows send 3 and drop or defer 2, each with its reason; transactional topics
and exempt steps count nothing; a retried execution is not counted twice; priority decides who wins;
test runs and previews take nothing and say what would happen."""

from __future__ import annotations

import pytest

from consent.models import Topic
from runs.engine import start_run
from runs.models import Delivery, StepExecution
from runs.preview import preview_step
from tenants import limits
from tenants.models import TenantLimits
from tests.engine.conftest import build_workflow, email, settle, webhook, work
from tests.engine.test_concurrent_sends import provider  # noqa: F401 (fixture)
from workflows.models import BudgetCount
from workflows.steps import budget

ADDRESS = "Ann@Example.com"


@pytest.fixture
def budget_of_3(tenant_a):
    TenantLimits.objects.create(tenant=tenant_a, frequency_budget_messages=3, frequency_budget_hours=24)
    limits.forget()
    yield
    limits.forget()


def mail_workflow(tenant, name: str, **step):
    return build_workflow(tenant, webhook([email(subject=f"{name} {{{{ item.n }}}}", **step)]), name=name)


def fire(workflow, n: int, address: str = ADDRESS):
    return start_run(workflow, {"email": address, "name": "Ann", "n": n}, f"{workflow.name}-{n}")


def send_executions(**filters):
    return StepExecution.objects.filter(step__kind="send_email", **filters)


def test_five_messages_from_two_workflows_send_3_and_drop_2_with_the_reason(
    clock, smtp, tenant_a, budget_of_3
):
    comments, digest = mail_workflow(tenant_a, "Comments"), mail_workflow(tenant_a, "Weekly")
    for n in range(3):
        fire(comments, n)
    work(clock)
    for n in range(2):
        fire(digest, n, address="  ann@example.COM ")  # the same recipient, written differently
    work(clock)
    assert len(smtp.messages) == 3
    skipped = Delivery.objects.filter(status="skipped")
    assert skipped.count() == 2
    for delivery in skipped:
        assert delivery.error == "Skipped: over the recipient's budget: 3 of 3 in 24 h"
    assert send_executions(status="skipped").count() == 2
    assert BudgetCount.objects.filter(recipient="ann@example.com").count() == 3
    # Another recipient has a budget of their own.
    fire(digest, 9, address="bob@example.com")
    work(clock)
    assert len(smtp.messages) == 4


def test_defer_holds_the_overflow_until_the_oldest_counted_message_leaves_the_window(
    clock, smtp, tenant_a, budget_of_3
):
    workflow = mail_workflow(tenant_a, "Comments", over_budget="defer")
    first_at = clock.now
    for n in range(3):
        fire(workflow, n)
    work(clock)
    clock.travel(seconds=3600)
    for n in range(3, 5):
        fire(workflow, n)
    work(clock)
    assert len(smtp.messages) == 3
    held = list(send_executions(status="pending"))
    assert len(held) == 2
    for execution in held:
        assert execution.next_attempt_at == first_at + budget.timedelta(hours=24)
        assert "over the recipient's budget: 3 of 3 in 24 h; deferred to" in execution.output["budget"]
    assert not Delivery.objects.filter(status="skipped").exists()
    settle(clock, step_seconds=3600 * 6)
    assert len(smtp.messages) == 5
    assert BudgetCount.objects.count() == 5


def test_a_transactional_topic_and_an_exempt_step_are_not_counted(clock, smtp, tenant_a, budget_of_3):
    receipts = Topic.objects.create(tenant=tenant_a, name="Receipts", transactional=True)
    news = Topic.objects.create(tenant=tenant_a, name="News")
    marketing = mail_workflow(tenant_a, "News", topic=news.pk)
    receipt = mail_workflow(tenant_a, "Receipt", topic=receipts.pk)
    reset = mail_workflow(tenant_a, "Reset", over_budget="exempt")
    for n in range(3):
        fire(marketing, n)
    work(clock)
    for n in range(2):
        fire(receipt, n)
        fire(reset, n)
    work(clock)
    assert len(smtp.messages) == 7
    assert BudgetCount.objects.count() == 3
    fire(marketing, 3)  # a message on a counted topic is still over the budget
    work(clock)
    assert len(smtp.messages) == 7


def test_a_retried_execution_is_not_counted_twice(clock, smtp, tenant_a, budget_of_3):
    workflow = mail_workflow(tenant_a, "Comments")
    for n in range(3):
        fire(workflow, n)
    work(clock)
    assert len(smtp.messages) == 3
    for execution in send_executions():
        ctx = type("Ctx", (), {})()
        ctx.run, ctx.step, ctx.now = execution.run, execution.step, clock.now
        ctx.resources = type("Resources", (), {"cache": {}})()
        # Asked again (a reclaimed batch whose message was not sent yet): the budget is full, but this
        # execution already holds one of its places, so it goes, and nothing more is counted.
        assert budget.over_budget(ctx, {execution.pk: ADDRESS}) == {}
    assert BudgetCount.objects.count() == 3
    fire(workflow, 3)
    work(clock)
    assert len(smtp.messages) == 3
    assert BudgetCount.objects.count() == 3


def test_priority_low_uses_half_the_budget_and_high_is_sent_over_it(clock, smtp, tenant_a, budget_of_3):
    low = mail_workflow(tenant_a, "Tips", priority="low")
    normal = mail_workflow(tenant_a, "Comments")
    high = mail_workflow(tenant_a, "Security", priority="high")
    fire(low, 0)
    work(clock)
    fire(low, 1)  # low may use 1 of 3: this one leaves room for the rest
    work(clock)
    assert len(smtp.messages) == 1
    assert Delivery.objects.get(status="skipped").error == (
        "Skipped: over the recipient's budget: 1 of 3 in 24 h (low priority uses at most 1)"
    )
    fire(normal, 0)
    fire(normal, 1)
    work(clock)
    assert len(smtp.messages) == 3
    fire(normal, 2)
    fire(high, 0)
    work(clock)
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == ["Comments 0", "Comments 1", "Security 0", "Tips 0"]
    assert BudgetCount.objects.filter(priority="high").count() == 1  # counted, though it went over


def test_a_test_run_and_the_preview_take_nothing_and_say_what_would_happen(
    clock, smtp, tenant_a, budget_of_3
):
    workflow = mail_workflow(tenant_a, "Comments")
    step = workflow.published_version.steps.get(kind="send_email")
    for n in range(3):
        said = preview_step(step, {"email": ADDRESS, "name": "Ann", "n": n})
        assert "skipped" not in said.content
    assert BudgetCount.objects.count() == 0
    for n in range(3):
        fire(workflow, n)
    work(clock)
    said = preview_step(step, {"email": ADDRESS, "name": "Ann", "n": 9})
    assert said.content["skipped"] == "Would be skipped: over the recipient's budget: 3 of 3 in 24 h"
    run = start_run(workflow, {"email": ADDRESS, "name": "Ann", "n": 9}, "t", is_test=True)
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert delivery.error == "Would be skipped: over the recipient's budget: 3 of 3 in 24 h"
    assert BudgetCount.objects.count() == 3


def test_a_budget_of_0_is_off(clock, smtp, tenant_a):
    workflow = mail_workflow(tenant_a, "Comments")
    for n in range(5):
        fire(workflow, n)
    work(clock)
    assert len(smtp.messages) == 5
    assert BudgetCount.objects.count() == 0


def test_workflow_files_carry_priority_and_policy_and_refuse_unknown_values(db, tenant_a):
    from workflows.files import WorkflowFileError, export_workflow, import_workflow

    def file(**config):
        step = {
            "kind": "send_email",
            "name": "Mail",
            "config": {"to": "{{ item.email }}", "subject": "Hi", "text": "x", **config},
            "children": [],
        }
        trigger = {"kind": "webhook_trigger", "name": "Hook", "config": {}, "children": [step]}
        return {"format": "rowbell.workflow/1", "name": "W", "description": "", "trigger": trigger}

    def exported_config(workflow):
        return export_workflow(workflow)["trigger"]["children"][0]["config"]

    # A file written before the budget existed: normal priority, dropped when over.
    old = exported_config(import_workflow(file(), tenant_a))
    assert (old["priority"], old["over_budget"]) == ("normal", "drop")
    high = exported_config(import_workflow(file(priority="high", over_budget="exempt"), tenant_a))
    assert (high["priority"], high["over_budget"]) == ("high", "exempt")
    for field, value in (("priority", "urgent"), ("over_budget", "fold"), ("priority", 3)):
        with pytest.raises(WorkflowFileError) as refused:
            import_workflow(file(**{field: value}), tenant_a)
        assert field in str(refused.value.errors), refused.value.errors


def budget_ctx(run, step, now):
    ctx = type("Ctx", (), {})()
    ctx.run, ctx.step, ctx.now = run, step, now
    ctx.resources = type("Resources", (), {"cache": {}})()
    return ctx


def test_racing_workers_never_take_more_than_the_budget(clock, smtp, tenant_a, budget_of_3, monkeypatch):
    import threading
    import time

    from django.db import connection

    workflow = mail_workflow(tenant_a, "Comments")
    fire(workflow, 0, address="someone-else@example.com")
    work(clock)
    execution = send_executions().get()
    run, step = execution.run, execution.step
    real_bulk_create = BudgetCount.objects.bulk_create

    def slow_bulk_create(rows, **kwargs):
        time.sleep(0.3)  # every worker has read the count by now: only the lock keeps them apart
        return real_bulk_create(rows, **kwargs)

    monkeypatch.setattr(BudgetCount.objects, "bulk_create", slow_bulk_create)
    barrier, verdicts = threading.Barrier(6), {}

    def worker(n: int) -> None:
        try:
            barrier.wait()
            verdicts[n] = budget.over_budget(budget_ctx(run, step, clock.now), {900_000 + n: ADDRESS})
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for verdict in verdicts.values() if not verdict) == 3
    assert BudgetCount.objects.filter(recipient="ann@example.com").count() == 3
    # One batch with five messages to one recipient (none counted yet): the first three go.
    BudgetCount.objects.filter(recipient="ann@example.com").delete()
    batch = {800_000 + n: ADDRESS for n in range(5)}
    over = budget.over_budget(budget_ctx(run, step, clock.now), batch)
    assert sorted(over) == [800_003, 800_004]


def test_the_concurrent_esp_path_defers_the_overflow_too(
    clock,
    tenant_a,
    tenant_database,
    provider,  # noqa: F811 (fixture)
    settings,
    budget_of_3,
):
    from tests.emailing.conftest import make_provider, make_sender
    from tests.engine.conftest import data_source, query

    settings.ENGINE_SEND_CONCURRENCY = 8
    postmark = make_provider(tenant_a, "postmark", {"api_url": provider.url("/")}, {"server_token": "t"})
    make_sender(tenant_a, postmark)
    source = data_source(tenant_a, tenant_database)
    sql = "SELECT g AS id, 'ann@example.com' AS email FROM generate_series(1, 6) AS g"
    step = email(subject="Tip {{ item.id }}", text="x", over_budget="defer")
    workflow = build_workflow(tenant_a, webhook([query(source, sql, children=[step])]))
    run = start_run(workflow, {}, "evt-budget-esp")
    work(clock)
    assert provider.max_in_flight > 1, "sent one at a time: not the concurrent path"
    assert Delivery.objects.filter(run=run, status="sent").count() == 3
    assert send_executions(run=run, status="pending").count() == 3
    settle(clock, step_seconds=6 * 3600)
    assert Delivery.objects.filter(run=run, status="sent").count() == 6
    assert BudgetCount.objects.count() == 6


def test_the_run_page_says_why_a_message_was_dropped_or_deferred(
    clock, smtp, tenant_a, budget_of_3, owner_client
):
    from django.urls import reverse

    dropping = mail_workflow(tenant_a, "Drop")
    deferring = mail_workflow(tenant_a, "Defer", over_budget="defer")
    for n in range(3):
        fire(dropping, n)
    work(clock)
    dropped, deferred = fire(dropping, 3), fire(deferring, 0)
    work(clock)
    for run, said in (
        (dropped, "Skipped: over the recipient's budget: 3 of 3 in 24 h"),
        (
            deferred,
            '<div class="muted small budget">Deferred: over the recipient\'s budget: 3 of 3 in 24 h; '
            "deferred to 2026-03-03 09:00Z</div>",
        ),
    ):
        step = run.version.steps.get(kind="send_email")
        page = owner_client.get(reverse("runs:run_detail", args=[run.pk]), {"step": step.pk})
        html = " ".join(page.content.decode().split()).replace("&#x27;", "'")
        assert said in html, html[-3000:]
