"""Runs in flight at publish: counted per live step, and moved to the new version exactly once (one
guarded UPDATE under row locks; a run being claimed, or held by a killed worker, stays whole on the old
version), cancelled, or left to finish on the old version; the choice is in the audit log."""

from __future__ import annotations

import threading

import psycopg
from django.db import connection

from runs.models import Run, StepExecution
from runs.publish_preview.inflight import apply_choices, move_runs, waiting_runs
from tenants.models import AuditEvent
from tests.engine.conftest import build_workflow, email, settle, webhook, work
from tests.support import finished_preview_token, signed_in
from workflows.models import Step
from workflows.publishing import get_or_create_draft

PEOPLE = ["ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com"]


def waiting_workflow(tenant, clock):
    """webhook → Wait 3 days → email "Old subject"; four runs waiting in the wait; a draft with a new
    subject."""
    wait = {
        "kind": "wait",
        "name": "Wait 3 days",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email(subject="Old subject", name="Nudge")],
    }
    workflow = build_workflow(tenant, webhook([wait]))
    from runs.engine import start_runs

    start_runs(workflow, [({"email": a, "name": a[:3]}, f"e-{a}") for a in PEOPLE])
    work(clock)
    live = workflow.published_version
    draft = get_or_create_draft(workflow)
    nudge = draft.steps.get(kind="send_email")
    Step.objects.filter(pk=nudge.pk).update(config={**nudge.config, "subject": "New subject"})
    return workflow, live, draft


def subjects(smtp) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in smtp.messages:
        found.setdefault(message["To"], []).append(message["Subject"])
    return found


def test_the_dialog_counts_runs_waiting_at_each_live_step(tenant_a, clock, smtp, admin, client):
    workflow, live, draft = waiting_workflow(tenant_a, clock)
    [waiting] = waiting_runs(live, draft)
    assert (waiting.step.name, waiting.runs, waiting.target.version_id) == ("Wait 3 days", 4, draft.pk)
    token = finished_preview_token(workflow)
    dialog = signed_in(client, admin).get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "4</strong> runs waiting in “Wait 3 days”" in dialog
    assert f'name="inflight-{waiting.key}" value="keep" checked' in dialog
    assert f'value="{token}"' in dialog


def test_moved_runs_continue_at_the_same_key_step_and_send_once(tenant_a, clock, smtp, admin, client):
    workflow, live, draft = waiting_workflow(tenant_a, clock)
    [waiting] = waiting_runs(live, draft)
    # A worker claimed dee's wait and was killed (no heartbeat): that run must stay whole on version 1.
    dee = Run.objects.get(event_key="e-dee@example.com")
    StepExecution.objects.filter(run=dee, step=waiting.step).update(
        status="running", claimed_by="killed-worker", started_at=clock.now, attempts=1
    )
    token = finished_preview_token(workflow)

    response = signed_in(client, admin).post(
        f"/workflows/{workflow.pk}/publish/confirm/", {"token": token, f"inflight-{waiting.key}": "move"}
    )

    assert response.status_code == 204
    workflow.refresh_from_db()
    new = workflow.published_version
    assert Run.objects.filter(version=new).count() == 3 and Run.objects.get(pk=dee.pk).version_id == live.pk
    # No run has an execution on a step of the other version.
    for run in Run.objects.filter(is_test=False):
        assert set(run.executions.values_list("step__version_id", flat=True)) <= {live.pk, run.version_id}
        if run.version_id == new.pk:
            assert not run.executions.filter(step__version=live, status__in=StepExecution.OPEN).exists()
    event = AuditEvent.objects.get(action="workflow.published")
    assert event.details["in_flight"] == [
        {"step": "Wait 3 days", "key": waiting.key, "choice": "move", "runs": 3}
    ]

    clock.travel(days=3, minutes=1)
    settle(clock)
    got = subjects(smtp)
    assert got == {
        "ada@example.com": ["New subject"],
        "bob@example.com": ["New subject"],
        "cy@example.com": ["New subject"],
        "dee@example.com": ["Old subject"],
    }
    # Moving again finds nothing left to move.
    assert move_runs(live, new, [waiting.step]) == {}


def test_a_claim_in_progress_wins_over_the_move(tenant_a, clock, smtp, settings):
    """A worker's claim transaction holds ada's wait while the move runs: the move waits for it, sees the
    execution `running`, and leaves ada's run on the old version; the others move."""
    _workflow, live, draft = waiting_workflow(tenant_a, clock)
    [waiting] = waiting_runs(live, draft)
    ada = StepExecution.objects.get(run__event_key="e-ada@example.com", step=waiting.step)
    params = connection.get_connection_params()
    locked, release = threading.Event(), threading.Event()

    def claim():
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as conn:
            conn.execute("SELECT id FROM runs_stepexecution WHERE id = %s FOR UPDATE", [ada.pk])
            conn.execute("UPDATE runs_stepexecution SET status = 'running' WHERE id = %s", [ada.pk])
            locked.set()
            release.wait(5)
            conn.commit()

    claimer = threading.Thread(target=claim)
    claimer.start()
    assert locked.wait(5)
    threading.Timer(0.5, release.set).start()
    moved = move_runs(live, draft, [waiting.step])
    claimer.join()

    assert moved == {waiting.step.pk: 3}
    assert Run.objects.get(pk=ada.run_id).version_id == live.pk
    assert StepExecution.objects.get(pk=ada.pk).step_id == waiting.step.pk


def test_cancel_and_keep(tenant_a, clock, smtp):
    _workflow, live, draft = waiting_workflow(tenant_a, clock)
    [waiting] = waiting_runs(live, draft)
    done = apply_choices(live, draft, {waiting.key: "cancel"})
    assert done == [{"step": "Wait 3 days", "key": waiting.key, "choice": "cancel", "runs": 4}]
    assert set(Run.objects.filter(is_test=False).values_list("status", flat=True)) == {"cancelled"}
    assert apply_choices(live, draft, {waiting.key: "keep"}) == []
