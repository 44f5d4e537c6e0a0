"""The preview binds the publish (a stale token is refused, clearly), the blast radius of a fan-out and a
database trigger, a preview that runs out of time on a slow query, and the dialog's pages (polling, CSV,
empty state, bad input) answering without a 500."""

from __future__ import annotations

from datetime import timedelta

from consent.models import Suppression, Unsubscribe
from integrations import clock as engine_clock
from runs.models import Run
from tests.engine.conftest import build_workflow, customer_db, data_source, email, query, webhook
from tests.publish_preview.conftest import draft_step, insert_above, past_runs, preview_now
from tests.support import finished_preview_token, signed_in
from workflows.models import PublishPreview, Step
from workflows.preview_token import STALE, draft_token
from workflows.publishing import get_or_create_draft

RECIPIENTS = (
    "SELECT g AS id, 'user' || g || '@example.com' AS email, 'U' || g AS name FROM generate_series(1, {n}) g"
)


def test_a_changed_draft_refuses_the_stale_token(tenant_a, clock, smtp, admin, client):
    workflow = build_workflow(tenant_a, webhook([email()]))
    past_runs(workflow, [{"email": "ada@example.com", "name": "Ada"}])
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(config={**step.config, "subject": "v2"})
    token = finished_preview_token(workflow)
    # Someone edits the draft after the preview.
    Step.objects.filter(pk=step.pk).update(config={**step.config, "subject": "v3"})
    signed_in(client, admin)

    refused = client.post(f"/workflows/{workflow.pk}/publish/confirm/", {"token": token})

    assert refused.status_code == 200
    assert STALE in refused.content.decode()
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1
    # No token at all, or a made-up one, is refused the same way.
    for data in ({}, {"token": "0" * 64}, {"token": draft_token(get_or_create_draft(workflow))}):
        page = client.post(f"/workflows/{workflow.pk}/publish/confirm/", data).content.decode()
        assert "Preview the draft first" in page or STALE in page
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1
    # A preview of the draft as it is now unlocks it.
    fresh = finished_preview_token(workflow)
    assert client.post(f"/workflows/{workflow.pk}/publish/confirm/", {"token": fresh}).status_code == 204


def test_the_token_is_the_drafts_content(tenant_a, clock):
    workflow = build_workflow(tenant_a, webhook([email()]))
    draft = get_or_create_draft(workflow)
    token = draft_token(draft)
    assert token == draft_token(draft) and len(token) == 64
    step = draft.steps.get(kind="send_email")
    Step.objects.filter(pk=step.pk).update(name="Renamed")
    assert draft_token(draft) != token
    Step.objects.filter(pk=step.pk).update(name=step.name)
    assert draft_token(draft) == token


def test_blast_radius_of_a_fan_out_counts_suppressed_and_unsubscribed(tenant_a, clock, smtp, tenant_database):
    customer_db(tenant_database, "SELECT 1")
    source = data_source(tenant_a, tenant_database)
    step = email(allow_unsubscribe=True)
    workflow = build_workflow(tenant_a, webhook([query(source, RECIPIENTS.format(n=50), children=[step])]))
    past_runs(workflow, [{"name": "any"}])
    Suppression.objects.bulk_create(
        Suppression(tenant=tenant_a, address=f"user{i}@example.com") for i in (1, 2, 3)
    )
    Unsubscribe.objects.create(tenant=tenant_a, address="user4@example.com")
    step = draft_step(workflow, "data_query")
    Step.objects.filter(pk=step.pk).update(config={**step.config, "sql": RECIPIENTS.format(n=1284)})

    preview = preview_now(workflow)

    [blast] = preview.result["blast"]
    assert blast["rows"] == 1284
    [send] = blast["sends"]
    assert (send["would_send"], send["suppressed"], send["unsubscribed"]) == (1280, 3, 1)
    # The event replay went through the old query (50 rows) and the new one (1,284).
    entry = preview.result["steps"][0]
    assert (entry["before"]["messages"], entry["after"]["messages"]) == (46, 1280)
    assert entry["gained_count"] == 1284 - 50


def test_blast_radius_of_a_database_trigger_counts_recent_rows(tenant_a, clock, app_db, admin, client):
    customer_db(
        app_db["url"],
        "CREATE TABLE app.signups (id int PRIMARY KEY, email text, created_at timestamptz);"
        "INSERT INTO app.signups SELECT g, 'u' || g || '@example.com', "
        f"'{clock.now.isoformat()}'::timestamptz - (g || ' hours')::interval FROM generate_series(1, 300) g",
    )
    source = data_source(tenant_a, app_db["url"])
    trigger = {
        "kind": "database_trigger",
        "config": {"datasource": source.pk, "schema": "app", "table": "signups"},
    }
    workflow = build_workflow(tenant_a, {**trigger, "children": [email()]}, publish_it=False)

    preview = preview_now(workflow)

    assert preview.status == "done", preview.error
    [blast] = preview.result["blast"]
    # 7 days = 168 hours: rows 1…167 are newer than the cut (row 168 sits on it).
    assert blast["kind"] == "trigger" and blast["column"] == "created_at"
    assert blast["rows"] in (167, 168)
    page = signed_in(client, admin).get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "of app.signups from the last 7 days (by created_at) would have started a run" in page


def slow_draft(tenant, tenant_database, events: int):
    """A live version whose query is quick, a draft whose query sleeps 5 s, and `events` past runs."""
    customer_db(tenant_database, "SELECT 1")
    source = data_source(tenant, tenant_database)
    quick = "SELECT 1 AS id, 'a@example.com' AS email"
    workflow = build_workflow(tenant, webhook([query(source, quick, mode="first", children=[email()])]))
    past_runs(workflow, [{"name": f"n{i}"} for i in range(events)])
    step = draft_step(workflow, "data_query")
    slow = "SELECT pg_sleep(5) AS id, 'a@example.com' AS email"
    Step.objects.filter(pk=step.pk).update(config={**step.config, "sql": slow})
    return workflow


def test_a_query_that_times_out_is_named_with_its_error(tenant_a, clock, smtp, tenant_database, settings):
    settings.DATA_QUERY_TIMEOUT_MS = 300
    workflow = slow_draft(tenant_a, tenant_database, 4)

    preview = preview_now(workflow)

    assert preview.status == "done" and preview.result["compared"] == 4
    said = [f["error"] for f in preview.result["failures"] if f["after"]]
    said += [u["error"] for u in preview.result["unfinished"]]
    assert said and all("The query ran longer than 300 ms and was stopped" in s for s in said), said
    entry = preview.result["steps"][0]
    assert (entry["before"]["messages"], entry["after"]["messages"]) == (4, 0)
    assert not Run.objects.filter(is_test=True).exists()


def test_a_preview_out_of_time_says_so_and_the_dialog_shows_it(
    tenant_a, clock, smtp, tenant_database, settings, admin, client
):
    settings.DATA_QUERY_TIMEOUT_MS = 300
    settings.PUBLISH_PREVIEW_SECONDS = 0.001
    workflow = slow_draft(tenant_a, tenant_database, 3)

    preview = preview_now(workflow)

    assert preview.status == "done"
    assert "ran out of its 0.001 s" in preview.result["out_of_time"]
    page = signed_in(client, admin).get(f"/workflows/{workflow.pk}/publish/")
    assert page.status_code == 200 and "ran out of its 0.001 s" in page.content.decode()
    assert not Run.objects.filter(is_test=True).exists()


def test_dialog_pages_poll_download_and_refuse_bad_input(tenant_a, clock, smtp, admin, client, member):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]))
    past_runs(
        workflow,
        [
            {"email": "ada@example.com", "name": "=HYPERLINK(1)", "plan": "pro"},
            {"email": "bob@example.com", "name": "Bob", "plan": ""},
        ],
    )
    insert_above(workflow, "send_email", "condition", {"expression": "item.plan == 'pro'"}, name="Has a name")
    signed_in(client, admin)
    base = f"/workflows/{workflow.pk}/publish/previews/"

    for bad in ("0", "1001", "lots", ""):
        page = client.post(base, {"events": bad})
        assert page.status_code == 200 and "Preview between 1 and 1000 events" in page.content.decode()
    started = client.post(base, {"events": "50"})
    preview = PublishPreview.objects.get()
    assert 'hx-trigger="every 1s"' in started.content.decode() and preview.status == "queued"

    from runs.publish_preview.job import run_preview

    run_preview(preview.pk)
    page = client.get(f"{base}{preview.pk}/").content.decode()
    assert "every 1s" not in page and "1 recipient lost" in page and "Stopped at “Has a name”" in page
    csv = client.get(f"{base}{preview.pk}/csv/")
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0] == "event_run,event,step,before,after,change"
    assert any(line.endswith(",lost") and "bob@example.com" in line for line in lines)
    assert signed_in(client, member).get(f"{base}{preview.pk}/csv/").status_code == 403
    assert client.get(f"{base}999999/").status_code in (403, 404)


def test_the_empty_state_says_what_to_do(tenant_a, clock, admin, client):
    workflow = build_workflow(tenant_a, webhook([email()]), publish_it=False)
    preview_now(workflow)
    page = signed_in(client, admin).get(f"/workflows/{workflow.pk}/publish/").content.decode()
    assert "No real runs to replay yet." in page and "/test/" in page
    assert 'id="confirm-publish"' in page and "disabled" not in page.split('id="confirm-publish"')[1][:20]


def test_old_previews_of_an_earlier_draft_do_not_unlock(tenant_a, clock):
    workflow = build_workflow(tenant_a, webhook([email()]))
    token = finished_preview_token(workflow)
    PublishPreview.objects.update(created_at=engine_clock.now() - timedelta(days=1))
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(name="Changed")
    assert draft_token(get_or_create_draft(workflow)) != token


def test_the_test_page_does_not_list_a_running_previews_runs(tenant_a, clock, admin, client):
    workflow = build_workflow(tenant_a, webhook([email()]))
    draft = get_or_create_draft(workflow)
    Run.objects.create(
        tenant=tenant_a,
        workflow=workflow,
        version=draft,
        event_key="preview-9:after:1",
        is_test=True,
        options={"skip_waits": True, "preview": "preview-9"},
        label="rehearsal-only@example.com",
    )
    Run.objects.create(
        tenant=tenant_a,
        workflow=workflow,
        version=draft,
        event_key="test:1",
        is_test=True,
        label="a-real-test@example.com",
    )
    page = signed_in(client, admin).get(f"/workflows/{workflow.pk}/test/").content.decode()
    assert "a-real-test@example.com" in page and "rehearsal-only@example.com" not in page
