"""The test interface and step preview (server side; the browser test drives the same pages)."""

from __future__ import annotations

import json
import re

from django.urls import reverse
from django.utils.html import escape

from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import make_run
from tests.engine.conftest import settle
from tests.triggers.conftest import make_workflow
from workflows.publishing import get_draft


def test_page_offers_the_tables_columns_and_searchable_live_rows(owner_client, onboarding_draft):
    url = reverse("runs:test_workflow", args=[onboarding_draft.pk])
    page = owner_client.get(url)
    assert page.status_code == 200
    sample = json.loads(page.context["form"].initial["item"])
    assert set(sample) == {"id", "email", "name", "onboarded_at"}
    assert [row["email"] for row in page.context["live"].rows] == ["nia@example.com", "old@example.com"]
    found = owner_client.get(url, {"search": "olga"}).context["live"].rows
    assert [row["id"] for row in found] == [1]


def test_bad_json_is_explained_and_starts_nothing(owner_client, onboarding_draft):
    url = reverse("runs:test_workflow", args=[onboarding_draft.pk])
    page = owner_client.post(url, {"item": '{"id": 2,', "skip_waits": "on"})
    assert page.status_code == 200 and "This is not valid JSON" in page.content.decode()
    assert "{&quot;id&quot;: 2," in page.content.decode()  # what was typed is kept
    assert owner_client.post(url, {"item": "[1]"}).context["form"].errors["item"]
    assert not Run.objects.exists()


def test_a_test_run_of_the_draft_captures_messages_and_skips_waits(
    clock, smtp, owner_client, onboarding_draft
):
    row = {"id": 2, "email": "nia@example.com", "name": "Nia", "onboarded_at": None}
    response = owner_client.post(
        reverse("runs:test_workflow", args=[onboarding_draft.pk]),
        {"item": json.dumps(row), "skip_waits": "on"},
    )
    run = Run.objects.get()
    assert response["Location"] == reverse("runs:run_detail", args=[run.pk])
    assert run.is_test and run.version_id == get_draft(onboarding_draft).pk
    settle(clock, step_seconds=1)  # one second of travel: only skipped waits can be over
    assert smtp.messages == []
    captured = {(d.channel, d.content.get("subject", "")) for d in Delivery.objects.filter(status="captured")}
    assert captured == {("email", "Welcome Nia"), ("email", "Finish onboarding"), ("http", "")}
    page = owner_client.get(response["Location"]).content.decode()
    assert "Welcome Nia" in page and "Captured (test run)" in page
    # The email's HTML is in a sandboxed iframe loaded from its own URL (runs/email_body.py).
    bodies = [
        owner_client.get(src).content.decode()
        for src in re.findall(r'class="email-html"[^>]* src="([^"]+)"', page)
    ]
    assert any("<h1>Hi Nia</h1>" in body for body in bodies)
    failed = StepExecution.objects.get(run=run, step__kind="slack_message")
    assert failed.status == "failed" and failed.attempts == 1 and "company" in failed.error
    assert escape(failed.error) in page and "POST http://" in page  # the captured CRM call
    assert owner_client.get(reverse("runs:run_list")).context["rows"] == []  # not in the activity log


def test_send_to_me_delivers_emails_to_the_tester_only(clock, smtp, owner, owner_client, onboarding_draft):
    row = {"id": 1, "email": "old@example.com", "name": "Olga", "onboarded_at": "2026-01-01T00:00:00+00:00"}
    owner_client.post(
        reverse("runs:test_workflow", args=[onboarding_draft.pk]),
        {"item": json.dumps(row), "skip_waits": "on", "send_to_me": "on"},
    )
    settle(clock, step_seconds=1)
    assert sorted(m["Subject"] for m in smtp.messages) == ["Next steps", "Welcome Olga"]
    assert set(smtp.recipients()) == {owner.email}


def test_a_draft_that_cannot_run_says_which_step_to_fix(owner_client, onboarding_draft):
    draft = get_draft(onboarding_draft)
    welcome = draft.steps.get(name="Welcome")
    welcome.config = {**welcome.config, "subject": ""}
    welcome.save()
    page = owner_client.post(reverse("runs:test_workflow", args=[onboarding_draft.pk]), {"item": "{}"})
    assert (
        "Fix these steps before testing" in page.content.decode() and "Welcome" in page.context["problems"][0]
    )
    assert not Run.objects.exists()


def preview(client, step, item) -> dict:
    response = client.post(reverse("runs:step_preview", args=[step.pk]), {"item": json.dumps(item)})
    assert response.status_code == 200
    return response.context["preview"]


def test_step_preview_renders_queries_and_decides_conditions(owner_client, onboarding_draft):
    steps = {step.name: step for step in get_draft(onboarding_draft).steps.all()}
    nia = {"id": 2, "email": "nia@example.com", "name": "Nia"}
    welcome = preview(owner_client, steps["Welcome"], nia)
    assert welcome.content["subject"] == "Welcome Nia" and welcome.content["to"] == "nia@example.com"
    lookup = preview(owner_client, steps["Look up the user"], nia)
    assert lookup.total == 1 and lookup.rows == [{"onboarded_at": None}]
    assert preview(owner_client, steps["Not onboarded"], {"onboarded_at": None}).passed is True
    assert preview(owner_client, steps["Onboarded"], {"onboarded_at": None}).passed is False
    broken = preview(owner_client, steps["Welcome"], {"id": 2})
    assert broken.error.startswith("To: ") and "email" in broken.error  # which field, which variable
    page = owner_client.get(reverse("runs:step_preview", args=[steps["Welcome"].pk]))
    assert [row["id"] for row in page.context["live"].rows] == [2, 1]


def test_a_test_runs_waits_can_be_skipped_while_it_runs(
    clock, smtp, owner_client, onboarding_draft, onboarding
):
    row = {"id": 2, "email": "nia@example.com", "name": "Nia", "onboarded_at": None}
    owner_client.post(reverse("runs:test_workflow", args=[onboarding_draft.pk]), {"item": json.dumps(row)})
    run = Run.objects.get()
    settle(clock, step_seconds=1, rounds=3)
    waiting = StepExecution.objects.get(run=run, step__kind="wait")
    assert waiting.status == "pending" and waiting.next_attempt_at > clock.now
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()
    assert "waiting until" in page and reverse("runs:skip_waits", args=[run.pk]) in page
    done = owner_client.post(reverse("runs:skip_waits", args=[run.pk]), follow=True)
    assert "Skipped 1 wait;" in done.content.decode()
    settle(clock, step_seconds=1, rounds=3)
    waiting.refresh_from_db()
    assert waiting.status == "skipped"  # says what happened, not "succeeded 0.0 s"
    assert Delivery.objects.filter(run=run, content__subject="Finish onboarding", status="captured").exists()
    assert smtp.messages == []
    live = make_run(onboarding, "live", status=Run.Status.RUNNING)
    refused = owner_client.post(reverse("runs:skip_waits", args=[live.pk]), follow=True).content.decode()
    assert "Only a test run" in refused


def test_preview_of_an_unknown_kind_or_an_unreadable_item_is_explained(owner_client, onboarding_draft):
    draft = get_draft(onboarding_draft)
    step = draft.steps.get(name="Welcome")
    bad_json = owner_client.post(reverse("runs:step_preview", args=[step.pk]), {"item": "{nope"})
    assert "Item: This is not valid JSON" in bad_json.content.decode() and bad_json.context["preview"] is None
    draft.steps.filter(pk=step.pk).update(kind="carrier_pigeon")
    unknown = preview(owner_client, draft.steps.get(pk=step.pk), {"id": 2})
    assert "Unknown step kind “carrier_pigeon”" in unknown.error


def test_a_webhook_triggers_sample_body_is_where_test_runs_and_previews_start(owner_client, tenant_a):
    """The sample body's help says test runs start from it: the test page and the step preview do."""
    workflow = make_workflow(tenant_a, "webhook_trigger", {"sample": {"email": "a@b.c", "plan": "pro"}})
    page = owner_client.get(reverse("runs:test_workflow", args=[workflow.pk]))
    assert json.loads(page.context["form"].initial["item"]) == {"email": "a@b.c", "plan": "pro"}
    root = get_draft(workflow).root_step()
    preview = owner_client.get(reverse("runs:step_preview", args=[root.pk]))
    assert json.loads(preview.context["item_text"]) == {"email": "a@b.c", "plan": "pro"}
