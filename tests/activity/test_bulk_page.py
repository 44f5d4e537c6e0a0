"""Bulk retry and cancel from the activity log and the Django admin: count first, then one operation per
dialog (a double submit starts one), retry for admins and owners only, another tenant's operation a 404;
and in Chromium at 1366×768, with a real worker process and SMTP server: the dialog counts, starts, and
the progress page fills up (screenshot docs/screenshots/activity-bulk-dialog.png)."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from playwright.sync_api import expect

from runs.engine import start_run
from runs.models import BulkOperation, Run
from tenants.models import AuditEvent, Role
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.activity.test_browser import worker  # noqa: F401 (fixture)
from tests.activity.test_browser_branch import SCREENSHOTS, idle, signed_in_page
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import make_user, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def failures(onboarding):
    """Three failed welcome emails (one already sent, by the ledger) and one that succeeded."""
    welcome = steps_of(onboarding)["Welcome"]
    for n in range(3):
        run = make_run(onboarding, f"f{n}", status=Run.Status.FAILED)
        execution = add_execution(run, welcome, "0", status="failed", error="550 Mailbox full")
        add_delivery(execution, f"f{n}@example.com", status="sent" if n == 0 else "failed")
    ok = make_run(onboarding, "ok")
    add_execution(ok, welcome, "0", status="succeeded")
    return onboarding


def form(workflow, **extra) -> dict:
    return {"action": "retry", "workflow": workflow.pk, "token": "t" * 32, **extra}


def test_the_dialog_starts_from_the_pages_filters(owner_client, failures):
    page = owner_client.get(f"/activity/?workflow={failures.pk}&status=failed")
    dialog = owner_client.get(
        f"/activity/bulk/new/?workflow={failures.pk}&date_from=2026-01-01"
    ).content.decode()

    assert "Retry or cancel in bulk…" in page.content.decode()
    assert f'<option value="{failures.pk}" selected>Onboarding</option>' in dialog
    assert 'value="2026-01-01"' in dialog
    assert "Onboarding · Welcome" in dialog and "Count first" in dialog
    assert re.search(r'name="token" value="[0-9a-f]{32}"', dialog)


def test_count_says_what_a_retry_would_do_and_starts_nothing(owner_client, failures):
    response = owner_client.post("/activity/bulk/count/", form(failures, error="mailbox"))

    page = response.content.decode()
    assert "3 executions, 3 recipients, 1 already sent" in page
    assert "Retry 3 executions" in page
    assert not BulkOperation.objects.exists()


def test_a_double_submit_of_the_dialog_starts_one_operation(owner_client, failures, tenant_a):
    first = owner_client.post("/activity/bulk/start/", form(failures))
    second = owner_client.post("/activity/bulk/start/", form(failures), follow=True)

    operation = BulkOperation.objects.get()
    assert first.url == f"/activity/bulk/{operation.pk}/"
    assert "This bulk action was already started" in second.content.decode()
    assert (operation.total, operation.counted["already_sent"]) == (3, 1)
    event = AuditEvent.objects.get(action="bulk.retry")
    assert (event.tenant, event.actor_label, event.via) == (tenant_a, "olivia", "web")
    progress = owner_client.get(f"/activity/bulk/{operation.pk}/").content.decode()
    assert "0 of 3 processed (0%)" in progress and 'hx-trigger="every 2s"' in progress


def test_a_dialog_whose_filter_changed_after_it_started_starts_nothing_more(owner_client, failures):
    owner_client.post("/activity/bulk/start/", form(failures))
    changed = owner_client.post("/activity/bulk/start/", form(failures, error="other"), follow=True)

    assert "This dialog already started a bulk action" in changed.content.decode()
    assert BulkOperation.objects.count() == 1


def test_a_member_may_cancel_in_bulk_but_not_retry(member_client, failures):
    refused = member_client.post("/activity/bulk/start/", form(failures))
    counted = member_client.post("/activity/bulk/count/", form(failures)).content.decode()
    cancelled = member_client.post("/activity/bulk/start/", form(failures, action="cancel", token="c" * 32))

    assert (
        refused.status_code == 403
        and "Only admins and owners can retry live runs in bulk" in refused.content.decode()
    )
    assert "Only admins and owners retry live runs." in counted
    assert cancelled.status_code == 302 and BulkOperation.objects.get().action == "cancel"


def test_a_bad_filter_is_said_in_the_dialog(owner_client, failures):
    page = owner_client.post("/activity/bulk/count/", form(failures, state="waiting")).content.decode()

    assert "state: a retry takes failed, not “waiting”." in page
    assert "Retry 3" not in page


def test_another_tenants_operation_and_workflow_are_out_of_reach(outsider_client, failures, tenant_a):
    operation = BulkOperation.objects.create(
        tenant=tenant_a, name="Acme's", action="retry", filter_digest="x"
    )

    assert outsider_client.get(f"/activity/bulk/{operation.pk}/").status_code == 404
    assert "Acme's" not in outsider_client.get("/activity/bulk/").content.decode()
    page = outsider_client.post("/activity/bulk/count/", form(failures)).content.decode()
    assert "Select a valid choice" in page and "already sent" not in page


def test_an_operator_counts_then_starts_from_the_admin(failures, tenant_a):
    staff = make_user("root", tenant_a, Role.OWNER)
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client = signed_in(Client(), staff)
    data = {"tenant": tenant_a.pk, "action": "retry", "workflow": str(failures.pk), "token": "a" * 32}

    counted = client.post("/admin/runs/bulkoperation/new/", {**data, "_count": "Count"}).content.decode()
    started = client.post("/admin/runs/bulkoperation/new/", {**data, "_start": "Start"})
    again = client.post("/admin/runs/bulkoperation/new/", {**data, "_start": "Start"})

    assert "Acme: 3 executions, 3 recipients, 1 already sent" in counted
    operation = BulkOperation.objects.get()
    assert started.url == again.url == f"/admin/runs/bulkoperation/{operation.pk}/change/"
    assert AuditEvent.objects.get(action="bulk.retry").via == "admin"
    assert "Retry or cancel in bulk…" in client.get("/admin/runs/bulkoperation/").content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_bulk_retry_from_the_activity_page(live_server, owner, worker, smtp, tenant_a, monkeypatch):  # noqa: F811
    workflow = build_workflow(tenant_a, webhook([email(name="Receipt")]), name="Receipts")
    for n in range(6):
        smtp.refuse[f"p{n}@example.com"] = "550 5.2.2 Mailbox full"
        start_run(workflow, {"email": f"p{n}@example.com", "name": f"P{n}"}, f"evt-{n}")
    with signed_in_page(live_server, owner, monkeypatch) as page:
        page.goto(f"{live_server.url}/activity/?status=failed")
        for _ in range(60):  # until the worker has failed all six
            if Run.objects.filter(status="failed").count() == 6:
                break
            page.wait_for_timeout(500)
        smtp.refuse.clear()
        page.reload()
        page.get_by_role("button", name="Retry or cancel in bulk…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Workflow").select_option(label="Receipts")
        idle(page)
        dialog.get_by_label("Error contains").fill("mailbox full")
        page.get_by_role("button", name="Count").click()
        idle(page)
        expect(page.get_by_role("dialog").get_by_role("status")).to_contain_text(
            "6 executions, 6 recipients, 0 already sent"
        )
        page.screenshot(path=SCREENSHOTS / "activity-bulk-dialog.png")
        page.get_by_role("button", name="Retry 6 executions").click()
        expect(page.locator("#bulk-progress")).to_contain_text("6 of 6 processed (100%)", timeout=40_000)
        expect(page.locator("#bulk-progress")).to_contain_text("Done")
    for _ in range(60):  # the retried sends, queued by the operation's batch
        if len(smtp.recipients()) == 6:
            break
        time.sleep(0.5)
    assert sorted(smtp.recipients()) == [f"p{n}@example.com" for n in range(6)]
    assert BulkOperation.objects.get().acted == 6
