"""The behavioural diff: the last N real events through the live version and the draft, compared in
recipients, through the real send path (suppression, unsubscribes) with nothing sent."""

from __future__ import annotations

from consent.models import Suppression, Topic, Unsubscribe
from runs.models import Delivery, Run
from tests.engine.conftest import build_workflow, email, webhook
from tests.publish_preview.conftest import draft_step, insert_above, past_runs, preview_now
from workflows.models import Step

PEOPLE = [
    {"email": "ada@example.com", "name": "Ada", "plan": "pro"},
    {"email": "bob@example.com", "name": "Bob", "plan": "free"},
    {"email": "cy@example.com", "name": "Cy", "plan": "pro"},
    {"email": "dee@example.com", "name": "Dee", "plan": "free"},
]


def send_step(preview, index=0) -> dict:
    return preview.result["steps"][index]


def test_a_draft_that_adds_a_condition_shows_exactly_the_recipients_lost(tenant_a, clock, smtp):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]))
    past_runs(workflow, PEOPLE, worked=True)
    sent_before = len(smtp.messages)
    insert_above(workflow, "send_email", "condition", {"expression": "item.plan == 'pro'"}, name="Pro only")

    preview = preview_now(workflow)

    assert preview.status == "done", preview.error
    step = send_step(preview)
    assert step["name"] == "Welcome"
    assert (step["before"]["messages"], step["before"]["recipients"]) == (4, 4)
    assert (step["after"]["messages"], step["after"]["recipients"]) == (2, 2)
    assert step["lost_count"] == 2 and step["gained_count"] == 0
    assert {lost["recipient"] for lost in step["lost"]} == {"bob@example.com", "dee@example.com"}
    assert all(lost["why"] == "Stopped at “Pro only” in the draft." for lost in step["lost"])
    assert preview.result["paths"]["count"] == 2
    changes = {row["event"]: row["change"] for row in preview.result["rows"]}
    assert changes == {
        "ada@example.com": "same",
        "bob@example.com": "lost",
        "cy@example.com": "same",
        "dee@example.com": "lost",
    }
    # Nothing was sent, and the rehearsal left no run behind.
    assert len(smtp.messages) == sent_before
    assert not Run.objects.filter(is_test=True).exists()
    assert Run.objects.filter(is_test=False).count() == 4


def test_a_topic_change_shows_the_newly_skipped_unsubscribed_recipients(tenant_a, clock, smtp, tips):
    updates = Topic.objects.create(tenant=tenant_a, name="Product updates")
    workflow = build_workflow(
        tenant_a, webhook([email(name="Tips mail", allow_unsubscribe=True, topic=updates.pk)])
    )
    past_runs(workflow, PEOPLE)
    # cy left Tips (not Updates); bob left Updates, so the draft's topic change gains him back.
    Unsubscribe.objects.create(tenant=tenant_a, address="cy@example.com", topic=tips)
    Unsubscribe.objects.create(tenant=tenant_a, address="bob@example.com", topic=updates)
    Suppression.objects.create(tenant=tenant_a, address="dee@example.com")
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(config={**step.config, "topic": tips.pk})

    preview = preview_now(workflow)

    entry = send_step(preview)
    # dee is suppressed on both versions (not new); cy is skipped only on the new topic, bob only on the old.
    assert entry["before"]["messages"] == 2 and entry["after"]["messages"] == 2
    assert entry["newly_skipped_count"] == 1
    assert entry["newly_skipped"][0]["recipient"] == "cy@example.com"
    assert "unsubscribed" in entry["newly_skipped"][0]["why"].lower()
    assert entry["newly_skipped_reasons"] == {"unsubscribed": 1}
    assert [lost["recipient"] for lost in entry["lost"]] == ["cy@example.com"]
    assert [gained["recipient"] for gained in entry["gained"]] == ["bob@example.com"]
    assert "unsubscribed" in entry["gained"][0]["why"].lower()
    assert not Delivery.objects.exists()


def test_events_whose_payload_lacks_fields_the_draft_reads(tenant_a, clock, smtp):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]))
    past_runs(
        workflow, [{"email": "ada@example.com", "name": "Ada"}, {"name": "No address"}, {}, {"email": 7}]
    )
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(
        config={**step.config, "subject": "Your {{ item.plan.upper() }} plan"}
    )

    preview = preview_now(workflow)

    assert preview.status == "done", preview.error
    entry = send_step(preview)
    assert entry["before"]["messages"] >= 1
    # The draft reads item.plan, which no payload has: what each event does is shown, not a crash.
    # The draft reads item.plan, which no payload has: each event's outcome is shown, not a crash.
    assert (entry["before"]["messages"], entry["after"]["messages"]) == (1, 0)
    assert (entry["before"]["failed"], entry["after"]["failed"]) == (3, 4)
    assert entry["lost"] == [
        {
            "recipient": "ada@example.com",
            "event": "ada@example.com",
            "why": "Subject: The item has no field “plan”. Use a field the item has, or give it a default.",
        }
    ]
    errors = {e["error"]: e["count"] for e in entry["after"]["errors"]}
    assert errors["To: The item has no field “email”. Use a field the item has, or give it a default."] == 2
    assert {row["change"] for row in preview.result["rows"]} == {"same", "lost"}


def test_a_workflow_without_past_runs_says_what_to_do(tenant_a, clock):
    workflow = build_workflow(tenant_a, webhook([email()]))
    insert_above(workflow, "send_email", "condition", {"expression": "true"})

    preview = preview_now(workflow)

    assert preview.status == "done"
    assert preview.result["events"] == 0
    assert preview.result["steps"][0]["before"]["messages"] == 0


def test_the_sample_email_is_a_rendered_text_diff(tenant_a, clock, smtp):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]))
    past_runs(workflow, PEOPLE[:2])
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(config={**step.config, "text": "Welcome aboard, {{ item.name }}!"})

    preview = preview_now(workflow)

    sample = send_step(preview)["sample"]
    assert sample["differs"]
    assert "-Hi Bob" in sample["diff"] or "-Hi Ada" in sample["diff"]
    assert any(line.startswith("+Welcome aboard, ") for line in sample["diff"])
