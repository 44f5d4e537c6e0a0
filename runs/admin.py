"""Operators' view of every tenant's runs, executions and deliveries: read-only history plus the same
actions people have in the activity log (retry, cancel, release, discard), done by the engine's functions.
A link on each list leads to the django-rq dashboard (/admin/rq/)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from integrations import clock
from runs.engine import (
    cancel_run,
    discard_delivery,
    release_delivery,
    resolve_uncertain,
    retry_execution,
)
from runs.models import Delivery, ProcessHeartbeat, Run, StepExecution
from runs.views.presenting import execution_state
from tenants.audit import record, record_bulk
from tenants.models import AuditEvent, Tenant

CHANGE_LIST = "runs/admin/change_list.html"


class HistoryAdmin(admin.ModelAdmin):
    """Runs are history: operators read them and act through actions, never edit or delete rows."""

    change_list_template = CHANGE_LIST
    show_full_result_count = False  # an unfiltered count(*) over millions of rows on every page is waste

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def audited_retry(request: HttpRequest, execution: StepExecution) -> bool:
    """Retry one execution; an audit event in its tenant when it was retried."""
    if not retry_execution(execution):
        return False
    record(execution.tenant, request.user, "execution.retried", execution, via=AuditEvent.Via.ADMIN)
    return True


def record_per_tenant(request: HttpRequest, action: str, deliveries: list[tuple[int, int]]) -> None:
    """One audit event per tenant for an action on messages of several tenants ((id, tenant id) pairs)."""
    by_tenant: dict[int, list[int]] = {}
    for pk, tenant_id in deliveries:
        by_tenant.setdefault(tenant_id, []).append(pk)
    tenants = Tenant.objects.in_bulk(by_tenant)
    for tenant_id, ids in by_tenant.items():
        record_bulk(tenants[tenant_id], request.user, action, ids, via=AuditEvent.Via.ADMIN)


def link(url_name: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[pk]), text)


def changelist_link(model: str, text: str, **filters) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', reverse(f"admin:runs_{model}_changelist"), query, text)


@admin.register(Run)
class RunAdmin(HistoryAdmin):
    list_display = [
        "id",
        "workflow",
        "tenant",
        "status",
        "is_test",
        "label",
        "event_key",
        "version",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "is_test", "tenant"]
    search_fields = ["=id", "=event_key", "workflow__name"]
    list_select_related = ["workflow", "tenant", "version__workflow"]
    date_hierarchy = "created_at"
    readonly_fields = ["executions", "deliveries"]
    actions = ["cancel_runs", "retry_failed_executions"]

    @admin.display(description="Executions")
    def executions(self, run: Run) -> str:
        return changelist_link("stepexecution", "All executions of this run", run__id__exact=run.pk)

    @admin.display(description="Deliveries")
    def deliveries(self, run: Run) -> str:
        return changelist_link("delivery", "All messages of this run", run__id__exact=run.pk)

    @admin.action(description="Cancel selected runs (stops pending and waiting executions)")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        runs = list(queryset.exclude(status__in=Run.FINISHED).select_related("tenant"))
        stopped = 0
        for run in runs:
            count = cancel_run(run)
            stopped += count
            label = f"Run #{run.pk}"
            record(
                run.tenant,
                request.user,
                "run.cancelled",
                run,
                label=label,
                via=AuditEvent.Via.ADMIN,
                stopped=count,
            )
        self.message_user(
            request, f"Cancelled {len(runs)} runs ({stopped} executions stopped).", messages.SUCCESS
        )

    @admin.action(description="Retry every failed execution of selected runs")
    def retry_failed_executions(self, request: HttpRequest, queryset: QuerySet) -> None:
        failed = StepExecution.objects.filter(run__in=queryset, status=StepExecution.Status.FAILED)
        retried = sum(audited_retry(request, execution) for execution in failed.select_related("tenant"))
        self.message_user(request, f"Retrying {retried} failed executions.", messages.SUCCESS)


class RetryingFilter(admin.SimpleListFilter):
    """Pending executions that failed before and wait to retry, apart from those that never ran."""

    title = "retry state"
    parameter_name = "retry"

    def lookups(self, request, model_admin):
        return [("retrying", "Retrying (failed, waiting for the next attempt)"), ("first", "Not tried yet")]

    def queryset(self, request, queryset):
        pending = queryset.filter(status=StepExecution.Status.PENDING)
        if self.value() == "retrying":
            return pending.filter(attempts__gt=0).exclude(error="")
        if self.value() == "first":
            return pending.filter(attempts=0)
        return queryset


@admin.register(StepExecution)
class StepExecutionAdmin(HistoryAdmin):
    list_display = [
        "id",
        "run_link",
        "step",
        "item_key",
        "state",
        "attempts",
        "next_attempt_at",
        "created_at",
        "tenant",
    ]
    list_filter = ["status", RetryingFilter, "tenant"]
    search_fields = ["=id", "=run__id", "^item_key"]
    list_select_related = ["run", "step", "tenant"]
    readonly_fields = ["state", "delivery_link"]
    actions = ["retry_executions"]

    @admin.display(description="Run")
    def run_link(self, execution: StepExecution) -> str:
        return link("admin:runs_run_change", execution.run_id, f"#{execution.run_id}")

    @admin.display(description="State")
    def state(self, execution: StepExecution) -> str:
        return execution_state(execution)

    @admin.display(description="Delivery")
    def delivery_link(self, execution: StepExecution) -> str:
        delivery = Delivery.objects.filter(step_execution=execution).first()
        return link("admin:runs_delivery_change", delivery.pk, str(delivery)) if delivery else "—"

    @admin.action(description="Retry selected failed executions")
    def retry_executions(self, request: HttpRequest, queryset: QuerySet) -> None:
        failed = list(queryset.filter(status=StepExecution.Status.FAILED).select_related("tenant"))
        retried = sum(audited_retry(request, execution) for execution in failed)
        skipped = queryset.count() - retried
        self.message_user(
            request, f"Retrying {retried} executions; {skipped} were not failed.", messages.SUCCESS
        )


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdmin):
    list_display = ["id", "recipient", "channel", "status", "run_link", "tenant", "created_at", "sent_at"]
    list_filter = ["status", "channel", "tenant"]
    search_fields = ["=id", "=recipient", "=provider_id", "=run__id"]
    list_select_related = ["tenant"]
    actions = ["release_deliveries", "discard_deliveries", "mark_uncertain_sent"]

    @admin.display(description="Run")
    def run_link(self, delivery: Delivery) -> str:
        return link("admin:runs_run_change", delivery.run_id, f"#{delivery.run_id}")

    @admin.action(description="Release selected held messages (each is sent once)")
    def release_deliveries(self, request: HttpRequest, queryset: QuerySet) -> None:
        held_rows = list(queryset.filter(status=Delivery.Status.HELD).values_list("pk", "tenant_id"))
        held = [pk for pk, _tenant in held_rows]
        sent = sum(release_delivery(pk) for pk in held)
        record_per_tenant(request, "messages.released", held_rows)
        level = messages.SUCCESS if sent == len(held) else messages.WARNING
        note = "" if sent == len(held) else f" {len(held) - sent} were not sent: see their error."
        self.message_user(request, f"Released {sent} of {len(held)} held messages.{note}", level)

    @admin.action(description="Discard selected held messages")
    def discard_deliveries(self, request: HttpRequest, queryset: QuerySet) -> None:
        held = queryset.filter(status=Delivery.Status.HELD).values_list("pk", "tenant_id")
        discarded = [(pk, tenant_id) for pk, tenant_id in held if discard_delivery(pk)]
        record_per_tenant(request, "messages.discarded", discarded)
        dropped = len(discarded)
        self.message_user(request, f"Discarded {dropped} held messages.", messages.SUCCESS)

    @admin.action(description="Mark selected uncertain messages as sent (the recipient got them)")
    def mark_uncertain_sent(self, request: HttpRequest, queryset: QuerySet) -> None:
        uncertain = queryset.filter(status=Delivery.Status.UNCERTAIN).values_list("pk", flat=True)
        by = request.user.get_username()
        marked = sum(resolve_uncertain(pk, "mark_sent", by=by) for pk in uncertain)
        self.message_user(
            request,
            f"Marked {marked} uncertain messages as sent. To send one again (it may arrive twice), use its run page.",
            messages.SUCCESS,
        )


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(HistoryAdmin):
    """Which Procfile processes are alive: a row per process, its last beat, and whether it is overdue."""

    list_display = ["name", "kind", "host", "pid", "started_at", "beat_at", "alive", "stopped_at"]
    list_filter = ["kind", "host"]
    ordering = ["kind", "-beat_at"]

    @admin.display(boolean=True, description="Alive")
    def alive(self, heartbeat: ProcessHeartbeat) -> bool:
        age = (clock.now() - heartbeat.beat_at).total_seconds()
        return heartbeat.stopped_at is None and age <= settings.WORKER_LEASE_SECONDS


# Bulk operations have their own admin module (registered on import).
from runs import bulk_admin  # noqa: E402, F401
