"""Workflows, their versions, and the step tree of each version."""

from __future__ import annotations

import secrets
import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from integrations.crypto import mask
from integrations.fields import EncryptedTextField
from tenants.models import TenantOwned, TenantQuerySet
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import StepKind


class PublishedVersionImmutable(Exception):
    """A published version's steps never change: edit the workflow's draft instead."""


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Workflow(TenantOwned):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # The version that real events run on; null while unpublished.
    published_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    webhook_secret = EncryptedTextField(default=new_webhook_secret)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "status", "name"], name="workflow_tenant_status_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_published(self) -> bool:
        return self.published_version_id is not None

    def rotate_webhook_secret(self) -> str:
        """A new signing secret, in force for the next POST; the old one stops verifying at once."""
        self.webhook_secret = new_webhook_secret()
        self.save(update_fields=["webhook_secret", "updated_at"])
        return self.webhook_secret

    @property
    def masked_webhook_secret(self) -> str:
        return mask(self.webhook_secret, 0)


class WorkflowVersion(TenantOwned):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    # Null while a draft; 1, 2, 3 ... once published.
    number = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    # Chosen at publish: runs go live, but every message is held until someone releases it.
    sandbox = models.BooleanField(default=False)
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped on every draft edit, so that a second tab can tell its copy is stale.
    revision = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="version_unique_number"),
            models.UniqueConstraint(
                fields=["workflow"], condition=models.Q(state="draft"), name="version_one_draft_per_workflow"
            ),
            models.CheckConstraint(
                condition=models.Q(state="draft", number__isnull=True)
                | models.Q(state="published", number__isnull=False),
                name="version_number_iff_published",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "workflow", "state"], name="version_tenant_wf_state")]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}" if self.number else f"{self.workflow} (draft)"

    @property
    def is_draft(self) -> bool:
        return self.state == self.State.DRAFT

    def ensure_editable(self) -> None:
        if not self.is_draft:
            raise PublishedVersionImmutable(
                f"Version {self.number} of “{self.workflow}” is published and cannot change; edit the draft."
            )

    def root_step(self) -> Step | None:
        return self.steps.filter(parent__isnull=True).order_by("position", "id").first()


class StepQuerySet(TenantQuerySet):
    """Bulk writes check the versions they touch, so that no path edits a published version."""

    def _ensure_drafts(self) -> None:
        published = WorkflowVersion.objects.filter(
            pk__in=self.values("version_id"), state=WorkflowVersion.State.PUBLISHED
        )
        version = published.first()
        if version is not None:
            version.ensure_editable()

    def update(self, **kwargs):
        self._ensure_drafts()
        return super().update(**kwargs)

    def delete(self):
        self._ensure_drafts()
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        version_ids = {obj.version_id for obj in objs}
        published = WorkflowVersion.objects.filter(pk__in=version_ids, state=WorkflowVersion.State.PUBLISHED)
        version = published.first()
        if version is not None:
            version.ensure_editable()
        return super().bulk_create(objs, *args, **kwargs)


StepManager = models.Manager.from_queryset(StepQuerySet)


class Step(TenantOwned):
    """One node of a version's tree. The root is the trigger; children run in parallel, in order."""

    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="steps")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    position = models.PositiveIntegerField(default=0)
    # Under a step with labelled paths (a branch), the id of the path this step starts; blank elsewhere.
    path = models.CharField(max_length=40, blank=True, default="")
    # The same step keeps its key across versions, so versions can be compared step by step.
    key = models.UUIDField(default=uuid.uuid4)
    kind = models.CharField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict, blank=True)

    objects: ClassVar[StepManager] = StepManager()

    # Not columns: what workflows.views.common.describe sets on a step for the builder's templates.
    child_count: int
    summary: str
    paths: list[tuple[str, str]]
    # ... and what runs.views.tree sets for a run's tree: its status chips and whether any says failed.
    chips: list[Any]
    has_failures: bool

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="step_unique_key_per_version")]
        indexes = [
            models.Index(fields=["tenant", "version"], name="step_tenant_version"),
            models.Index(fields=["version", "parent", "position"], name="step_tree_order"),
        ]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def kind_label(self) -> str:
        """The kind as people read it ("Send email"), not its internal name ("send_email")."""
        try:
            return get_kind(self.kind).label
        except ConfigError:
            return self.kind

    @property
    def display_name(self) -> str:
        """The step's name, or its kind's label when it has none."""
        return self.name or self.kind_label

    @property
    def step_kind(self) -> StepKind:
        """The registered kind this step is (raises ConfigError for an unknown one)."""
        return get_kind(self.kind)

    def save(self, *args, **kwargs):
        self.version.ensure_editable()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self.version.ensure_editable()
        return super().delete(*args, **kwargs)


class Schedule(TenantOwned):
    """The live schedule of a published workflow whose trigger is a schedule; one per workflow.

    `next_fire_at` is computed in the schedule's IANA time zone (workflows/steps/schedule_trigger.py) and
    stored here, so the periodic job (runs/schedules.py) only asks PostgreSQL what is due.
    """

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="schedule")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="+")
    rule = models.JSONField(help_text="The schedule trigger's cleaned config.")
    next_fire_at = models.DateTimeField()
    last_fired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "integrations_schedule"  # where it was created, before it moved here with its workflow
        indexes = [
            models.Index(fields=["next_fire_at"], name="schedule_due"),
            models.Index(fields=["tenant", "next_fire_at"], name="schedule_tenant_next"),
        ]

    def __str__(self) -> str:
        return f"Schedule of {self.workflow_id}, next {self.next_fire_at:%Y-%m-%d %H:%M}Z"


class ThrottleSlot(TenantOwned):
    """One of a throttle step's N slots in one window for one key, held by the execution that took it.

    A slot is a unique row (step key, key, window, slot number), taken with INSERT … ON CONFLICT, not a
    lock or a Redis counter: a lost Redis resets nothing. `execution_id` (the execution's ledger key, unique)
    means a retried or reclaimed execution finds the slot it already holds instead of taking a second one.
    No foreign key to the execution: workflows sits below runs, and a slot outlives its run's cleanup on
    purpose (it still counts for its window).
    """

    step_key = models.UUIDField(help_text="The throttle step's key, the same across versions.")
    key = models.CharField(max_length=500)
    window_start = models.DateTimeField()
    # When the window ends: housekeeping deletes the slot a day later (workflows/steps/pacing_housekeeping.py).
    # Empty on slots taken before the column existed: those go once the longest window surely ended.
    window_end = models.DateTimeField(null=True, blank=True)
    slot = models.PositiveIntegerField()
    execution_id = models.BigIntegerField(unique=True)
    taken_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "step_key", "key", "window_start", "slot"],
                name="throttle_one_holder_per_slot",
            )
        ]

    def __str__(self) -> str:
        return f"Throttle slot {self.slot} of {self.key} from {self.window_start:%Y-%m-%d %H:%M}Z"


class BudgetCount(TenantOwned):
    """One message counted against its recipient's frequency budget (tenants.limits
    `frequency_budget_messages` per `frequency_budget_hours`), across every workflow of the tenant.

    One row per counted message, written when the send path decides to send it (workflows/steps/budget.py);
    the budget is a window query over these rows. `execution_id` is unique: a retried or reclaimed
    execution finds its row and is not counted twice. No foreign key to the execution, as for ThrottleSlot.
    """

    recipient = models.CharField(max_length=320, help_text="The address, trimmed and lower-cased.")
    counted_at = models.DateTimeField()
    execution_id = models.BigIntegerField(unique=True)
    priority = models.CharField(max_length=10, default="normal")

    class Meta:
        indexes = [models.Index(fields=["tenant", "recipient", "counted_at"], name="budget_recipient_window")]

    def __str__(self) -> str:
        return f"{self.recipient} at {self.counted_at:%Y-%m-%d %H:%M}Z"


# A row watch's triggers are named like a workflow's (rowbell_wf_<n>_update/_delete) with n = this base plus
# the watch's id: the setup SQL's rowbell.drop_trigger helper then removes them too, the listener claims
# their log rows by that number, and no workflow id (a sequence far below it) is ever the same number.
ROW_WATCH_BASE = 1_000_000_000_000


class RowWatch(TenantOwned):
    """The capture of one table's updates and deletes, for what waits on (or cancels from) its rows.

    Installed when a version whose steps need it is published (workflows/row_watches.py): a wait "until
    the row matches" on the table, or a database trigger that cancels its runs from the row's state. One per
    table, whatever the number of workflows and runs that listen to it; it stays while a published
    version needs it or a wait on one of its rows is still open. `key_column` is the table's primary key.
    """

    datasource = models.ForeignKey("integrations.DataSource", on_delete=models.CASCADE, related_name="+")
    schema = models.CharField(max_length=200, default="public")
    table = models.CharField(max_length=200)
    key_column = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["datasource", "schema", "table"], name="rowwatch_one_per_table")
        ]
        indexes = [models.Index(fields=["tenant", "datasource"], name="rowwatch_tenant_source")]

    @property
    def trigger_id(self) -> int:
        """The number its triggers and log rows carry where a workflow's carry the workflow id."""
        return ROW_WATCH_BASE + self.pk

    def __str__(self) -> str:
        return f"Row watch on {self.schema}.{self.table}"


class RowWait(TenantOwned):
    """One execution of a wait "until the row matches": which row, the condition, the timeout, and how it
    ended. `outcome` is the ledger of the race between the row's change and the timeout: it is written once,
    by whoever decides first (`UPDATE … WHERE outcome = ''`), the listener seeing the change or the
    execution itself; the other then reads it. No foreign key to the execution (workflows sits below
    runs), as for ThrottleSlot."""

    class Outcome(models.TextChoices):
        OPEN = "", "Waiting"
        MET = "met", "Row matched"
        DELETED = "deleted", "Row deleted"
        TIMED_OUT = "timed_out", "Timed out"

    execution_id = models.BigIntegerField(unique=True)
    watch = models.ForeignKey(RowWatch, on_delete=models.CASCADE, related_name="waits")
    row_key = models.CharField(max_length=500)
    condition = models.TextField()
    timeout_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True, default="")
    # The row as the decision saw it (the listener's capture, or the execution's read).
    row = models.JSONField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The listener: the open waits on these rows of a watched table.
            models.Index(fields=["watch", "row_key"], name="rowwait_open", condition=models.Q(outcome="")),
            models.Index(fields=["tenant", "watch"], name="rowwait_tenant_watch"),
        ]

    def __str__(self) -> str:
        return f"Wait of execution {self.execution_id} on {self.row_key} ({self.outcome or 'open'})"


class PublishPreview(TenantOwned):
    """What publishing a draft would do, computed in the background (runs/publish_preview/): the
    behavioural diff on recent events, the blast radius, the runs in flight. `token` is the draft's
    content hash when the preview started (workflows/preview_token.py): publishing needs it.

    It lives here, not with the runs that compute it, because publishing checks it; `result` is plain
    JSON so that nothing below runs needs to know its shape beyond `token` and `status`.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    draft = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    events = models.PositiveIntegerField(default=200, help_text="How many recent events to replay.")
    done = models.PositiveIntegerField(default=0, help_text="Events replayed so far (both versions).")
    total = models.PositiveIntegerField(default=0, help_text="Events to replay (both versions).")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workflow", "token"], name="publishpreview_workflow_token")]

    def __str__(self) -> str:
        return f"Preview {self.pk} of {self.workflow_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
