"""What people do from the activity log: retry a failed execution, cancel or replay a run, release or
discard held messages. Every object is reached through request.tenant (another tenant's id is a 404),
and the engine's functions do the work: each is a conditional UPDATE, so a double click acts once.

Actions that send messages to real recipients (releasing held messages, retrying or replaying a live
run) are for admins and owners, like publishing; members may do them on test runs, and anyone may stop
things (cancel, discard).
"""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from integrations import clock
from runs.engine import (
    BadCancelKey,
    CannotUndo,
    cancel_by_key,
    cancel_run,
    discard_delivery,
    release_delivery,
    replay_run,
    resolve_uncertain,
    retry_execution,
    undo_cancel,
)
from runs.engine.enqueue import schedule_next
from runs.models import CancelTombstone, Delivery, Run, StepExecution
from runs.views.presenting import execution_state
from tenants.audit import record_bulk, record_for
from tenants.permissions import members_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow
from workflows.steps import STEP_KINDS

# Messages released per click: each is sent inside the request, so "release all" works in slices.
RELEASE_LIMIT = 200


def back(request: TenantRequest, default: str) -> HttpResponseRedirect:
    """To the page the form came from (`next`), when it is one of ours."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = default
    return HttpResponseRedirect(target)


def may_send_live(request: TenantRequest) -> bool:
    return request.membership is not None and request.membership.can_publish


def live_sending_refused(what: str) -> HttpResponse:
    return HttpResponseForbidden(
        f"Only admins and owners can {what}: it sends messages to real recipients. Ask one of them."
    )


@require_POST
@login_required
def retry(request: TenantRequest, execution_id: int) -> HttpResponse:
    qs = StepExecution.objects.select_related("step", "run")
    execution = get_for_tenant_or_404(qs, request.tenant, pk=execution_id)
    if not execution.run.is_test and not may_send_live(request):
        return live_sending_refused("retry a live run's step")
    label = f"item {execution.item_key} of “{execution.step.display_name}”"
    uncertain = Delivery.objects.filter(step_execution=execution, status=Delivery.Status.UNCERTAIN)
    if uncertain.exists() and request.POST.get("confirm") != "yes":
        messages.error(
            request,
            f"The message of {label} is uncertain: use “Send again” (it may arrive twice) or “Mark as sent”.",
        )
        return back(request, reverse("runs:run_detail", args=[execution.run_id]))
    if retry_execution(execution):
        record_for(request, "execution.retried", execution, label=label, run=execution.run_id)
        messages.success(request, f"Retrying {label} now.")
    else:
        messages.error(
            request, f"Only a failed execution can be retried; {label} is {execution_state(execution)}."
        )
    return back(request, reverse("runs:run_detail", args=[execution.run_id]))


@require_POST
@login_required
def cancel(request: TenantRequest, run_id: int) -> HttpResponse:
    run = get_for_tenant_or_404(Run, request.tenant, pk=run_id)
    if run.status in Run.FINISHED:
        messages.error(request, f"Run #{run.pk} has already finished ({run.get_status_display().lower()}).")
    else:
        count = cancel_run(run)
        record_for(request, "run.cancelled", run, label=f"Run #{run.pk}", stopped=count)
        messages.success(request, f"Run #{run.pk} cancelled; {count} pending or running executions stopped.")
    return back(request, reverse("runs:run_detail", args=[run.pk]))


@require_POST
@login_required
def cancel_key(request: TenantRequest, run_id: int) -> HttpResponse:
    """Cancel every run of this run's workflow with its cancel key, and what they create later."""
    run = get_for_tenant_or_404(Run.objects.select_related("workflow"), request.tenant, pk=run_id)
    try:
        result = cancel_by_key(
            run.workflow, run.cancel_key, source=CancelTombstone.Source.PAGE, by=str(request.user)
        )
    except BadCancelKey:
        messages.error(request, f"Run #{run.pk} has no cancel key: its workflow's trigger declares none.")
    else:
        record_for(
            request, "runs.cancelled_by_key", run.workflow, label=run.cancel_key, stopped=result.executions
        )
        messages.success(
            request,
            f"Cancelled by key {run.cancel_key}: {result.runs} run(s), {result.executions} execution(s); "
            f"work created for this key is cancelled until {result.tombstone.until:%Y-%m-%d %H:%M} UTC.",
        )
    return back(request, reverse("runs:run_detail", args=[run.pk]))


@require_POST
@login_required
def undo_key_cancel(request: TenantRequest, tombstone_id: int) -> HttpResponse:
    tombstone = get_for_tenant_or_404(CancelTombstone, request.tenant, pk=tombstone_id)
    try:
        restored = undo_cancel(tombstone)
    except CannotUndo as exc:
        messages.error(request, str(exc))
    else:
        record_for(request, "runs.cancel_undone", tombstone.workflow, label=tombstone.key, restored=restored)
        messages.success(request, f"Cancel of {tombstone.key} undone; {restored} execution(s) restored.")
    fallback = reverse("runs:workflow_runs", args=[tombstone.workflow_id])
    return back(request, fallback)


@require_POST
@login_required
def replay(request: TenantRequest, run_id: int) -> HttpResponse:
    run = get_for_tenant_or_404(Run.objects.select_related("workflow"), request.tenant, pk=run_id)
    if not run.is_test and not may_send_live(request):
        return live_sending_refused("replay a live event")
    # A live event replays on what is live now; a test run replays on the version it tested.
    version = run.version if run.is_test else run.workflow.published_version
    if version is None:
        messages.error(request, f"“{run.workflow}” is not published: publish it, then replay the event.")
        return back(request, reverse("runs:run_detail", args=[run.pk]))
    again = replay_run(run, version=version)
    record_for(request, "run.replayed", run, label=f"Run #{run.pk}", new_run=again.pk)
    messages.success(request, f"Replayed run #{run.pk}'s event as run #{again.pk}.")
    return HttpResponseRedirect(reverse("runs:run_detail", args=[again.pk]))


@require_POST
@login_required
def skip_waits(request: TenantRequest, run_id: int) -> HttpResponse:
    """Fast-forward a TEST run: its waiting wait-steps become due now and are queued at once."""
    run = get_for_tenant_or_404(Run, request.tenant, pk=run_id)
    if not run.is_test:
        messages.error(request, "Only a test run's waits can be skipped; live runs wait as published.")
        return back(request, reverse("runs:run_detail", args=[run.pk]))
    now = clock.now()
    with transaction.atomic():
        waiting = StepExecution.objects.filter(
            run=run,
            step__kind__in=[name for name, kind in STEP_KINDS.items() if kind.holds_items],
            status=StepExecution.Status.PENDING,
            attempts=0,
            next_attempt_at__gt=now,
        )
        steps = set(waiting.values_list("step_id", flat=True))
        # The mark lets the wait report itself "skipped" rather than "succeeded" when it runs.
        skipped = waiting.update(next_attempt_at=now, output={"skip_requested": True})
        for step_id in steps:  # the engine's own enqueue, once the new due time is committed
            transaction.on_commit(partial(schedule_next, run.pk, step_id))
    if skipped:
        messages.success(
            request, f"Skipped {skipped} wait{'s' if skipped != 1 else ''}; the steps below run now."
        )
    else:
        messages.info(request, "Nothing in this run is waiting.")
    return back(request, reverse("runs:run_detail", args=[run.pk]))


def chosen_deliveries(request: TenantRequest) -> tuple[list[int], str]:
    """Held delivery ids the form names (`ids`, or `all` with an optional `workflow`), and an error."""
    held = Delivery.objects.for_tenant(request.tenant).filter(status=Delivery.Status.HELD)
    if request.POST.get("all"):
        workflow_id = request.POST.get("workflow")
        if workflow_id:
            held = held.filter(run__workflow=get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id))
        return list(held.order_by("created_at", "id").values_list("pk", flat=True)[:RELEASE_LIMIT]), ""
    ids = request.POST.getlist("ids")
    if not ids:
        return [], "Select at least one held message first."
    if not all(value.isdigit() for value in ids):
        return [], "The selection was not a list of message ids; reload the page and select again."
    # Ids of another tenant, or no longer held, simply drop out here. Ordered: without ORDER BY PostgreSQL
    # returns rows in whatever order the table's pages hold them, so the cut and the audit log would vary.
    return list(held.filter(pk__in=ids).order_by("id").values_list("pk", flat=True)[:RELEASE_LIMIT]), ""


@require_POST
@login_required
@members_only
def release(request: MemberRequest) -> HttpResponse:
    if not may_send_live(request):
        return live_sending_refused("release held messages")
    ids, error = chosen_deliveries(request)
    if error:
        messages.error(request, error)
        return back(request, reverse("runs:message_list"))
    sent = [pk for pk in ids if release_delivery(pk, tenant=request.tenant)]
    record_bulk(request.tenant, request.user, "messages.released", ids, sent=sent)
    report_release(request, ids, sent)
    return back(request, reverse("runs:message_list"))


def report_release(request: TenantRequest, ids: list[int], sent: list[int]) -> None:
    if sent:
        messages.success(request, f"Released and sent {len(sent)} message{'s' if len(sent) != 1 else ''}.")
    unsent = Delivery.objects.filter(pk__in=set(ids) - set(sent)).exclude(error="")
    for delivery in unsent.filter(status__in=[Delivery.Status.HELD, Delivery.Status.FAILED])[:5]:
        again = "still held, release it again later" if delivery.status == Delivery.Status.HELD else "failed"
        messages.error(request, f"Message to {delivery.recipient} {again}: {delivery.error}")
    if not ids:
        messages.info(request, "No held messages to release.")
    elif len(ids) == RELEASE_LIMIT:
        messages.info(request, f"Released at most {RELEASE_LIMIT} per click; release again for the rest.")


@require_POST
@login_required
@members_only
def discard(request: MemberRequest) -> HttpResponse:
    ids, error = chosen_deliveries(request)
    if error:
        messages.error(request, error)
        return back(request, reverse("runs:message_list"))
    dropped = [pk for pk in ids if discard_delivery(pk, tenant=request.tenant)]
    record_bulk(request.tenant, request.user, "messages.discarded", dropped)
    messages.success(request, f"Discarded {len(dropped)} held message{'s' if len(dropped) != 1 else ''}.")
    return back(request, reverse("runs:message_list"))


@require_POST
@login_required
def resolve(request: TenantRequest, delivery_id: int) -> HttpResponse:
    """An uncertain message: mark it as sent, or (confirmed: it may arrive twice) send it again."""
    delivery = get_for_tenant_or_404(Delivery.objects.select_related("run"), request.tenant, pk=delivery_id)
    default = reverse("runs:run_detail", args=[delivery.run_id])
    if not delivery.run.is_test and not may_send_live(request):
        return live_sending_refused("resolve a live run's uncertain message")
    action = request.POST.get("action", "")
    if action not in ("mark_sent", "resend"):
        messages.error(request, "Choose “Mark as sent” or “Send again”.")
        return back(request, default)
    if action == "resend" and request.POST.get("confirm") != "yes":
        messages.error(
            request,
            "Sending again may deliver the message twice: tick “I understand it may be a duplicate” first.",
        )
        return back(request, default)
    label = f"the {delivery.channel} message to {delivery.recipient or 'its receiver'}"
    if not resolve_uncertain(delivery.pk, action, tenant=request.tenant, by=request.user.get_username()):
        messages.error(request, f"{label[0].upper()}{label[1:]} is no longer uncertain; nothing was changed.")
    elif action == "mark_sent":
        messages.success(request, f"Marked {label} as sent; the run goes on from there.")
    else:
        messages.success(request, f"Sending {label} again now.")
    return back(request, default)
