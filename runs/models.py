"""Runs, per-item step executions, and deliveries (the side effects)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.models import TenantOwned


class Run(TenantOwned):
    """One event flowing through one pinned workflow version. One event never starts two runs."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partially failed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="runs")
    event_key = models.CharField(max_length=255)
    # Whom the run is about, rendered from the trigger's `run_label` template (default: the item's
    # email or name) when the run starts; shown and searched in the activity log.
    label = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    is_test = models.BooleanField(default=False)
    payload = models.JSONField(default=dict, blank=True)
    # Test-run options (see runs/engine/__init__.py): {"skip_waits": bool, "override_recipient": "a@b.c"}.
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Rendered once from the trigger's `cancel_key` template (`order:{{ item.id }}`) when the run starts;
    # empty when the workflow declares none or the item lacks what it names. runs/engine/cancel_keys.py.
    cancel_key = models.CharField(max_length=255, blank=True, default="")

    # Not columns: what runs.api.with_summary sets for the run's API answer.
    executions_shown: list[StepExecution]
    execution_count: int
    delivery_counts: dict[str, int]

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "event_key"], name="run_unique_event")]
        indexes = [
            # Cancel by key: a workflow's runs with one key (few rows; only runs that have a key).
            models.Index(
                fields=["workflow", "cancel_key"], name="run_cancel_key", condition=~models.Q(cancel_key="")
            ),
            # Activity log: newest first per tenant, per workflow, per status (keyset on created_at, id).
            models.Index(fields=["tenant", "is_test", "-created_at", "-id"], name="run_tenant_recent"),
            models.Index(fields=["tenant", "workflow", "-created_at", "-id"], name="run_tenant_wf_recent"),
            models.Index(fields=["tenant", "status", "-created_at", "-id"], name="run_tenant_status_recent"),
            # Activity search by event key, without scanning the tenant's whole history.
            models.Index(fields=["tenant", "event_key"], name="run_tenant_event_key"),
            # Activity search by run label (a case-insensitive prefix: "ada@" finds ada@example.com) uses
            # run_tenant_label_prefix on (tenant_id, UPPER(label::text) text_pattern_ops), created with SQL
            # in migration 0005 (Django cannot yet mix a column and an operator class in one index).
            # Retention (runs/retention.py) finds expired runs without reading the whole table: a tenant
            # with its own retention by the second, every other tenant by the first.
            models.Index(
                fields=["finished_at"], name="run_finished_at", condition=models.Q(finished_at__isnull=False)
            ),
            models.Index(
                fields=["tenant", "finished_at"],
                name="run_tenant_finished_at",
                condition=models.Q(finished_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.workflow_id} ({self.status})"


class RunSearchValue(TenantOwned):
    """One value of a workflow's searchable field (`item.account_id`) for one run, copied when the run
    starts (runs/search_values.py): the activity log's "field = value" filter and its newest-first keyset
    pages read one index, whatever the tenant's history. `value` is the text of a scalar, a digest of a
    long one, or an HMAC when the field is declared `hashed`; `created_at` is the run's."""

    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="search_values", db_index=False)
    field = models.CharField(max_length=100)
    hashed = models.BooleanField(default=False)
    value = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index retention deletes a run's values by (it starts with run).
            models.UniqueConstraint(fields=["run", "field", "hashed", "value"], name="searchvalue_unique"),
        ]
        indexes = [
            # Filter and sort in one: equality on the first four columns, then newest first (keyset).
            models.Index(
                fields=["tenant", "field", "hashed", "value", "-created_at", "-run"],
                name="searchvalue_lookup",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field} of run {self.run_id}"


class StepExecution(TenantOwned):
    """One step applied to one item of a run. `next_attempt_at` holds waits and retry delays."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # due at next_attempt_at (a wait, or a retry's backoff)
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        # The step ran and ended the item's path on purpose: a false condition, a query with no rows,
        # a branch where no path matched and there is no "otherwise".
        FILTERED = "filtered", "Filtered"
        # The step did not do its work, on purpose and not as a failure: a message whose recipient is
        # suppressed, unsubscribed or empty (its Delivery is `skipped` with the reason), a wait a test
        # run skipped.
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.PENDING, Status.RUNNING)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="executions")
    step = models.ForeignKey("workflows.Step", on_delete=models.PROTECT, related_name="executions")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    item_key = models.CharField(max_length=500)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Claims so far (each claim counts one: the claim fence and the batch job's id are keyed by it).
    attempts = models.PositiveIntegerField(default=0)
    # Of those claims, the ones that only held the item for later (a throttle's next slot, a frequency
    # budget, a wait whose time moved: a `Deferred` result). They are not tries: the retry limit and the
    # backoff count `tries` (attempts - deferrals), so a message deferred for days still gets its retries.
    deferrals = models.PositiveIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The worker process (runs.engine.liveness) that claimed it while `running`: the sweeper reclaims it
    # as soon as that worker's heartbeat is older than WORKER_LEASE_SECONDS; empty for an unnamed claimer.
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    # The last ATTEMPT_LOG_SIZE attempts, oldest first: {"at", "took" (seconds), "outcome", "error"}.
    attempt_log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "item_key"], name="execution_unique_item"),
        ]
        indexes = [
            # The sweeper: what is due, and what has been running too long (small partial indexes).
            models.Index(
                fields=["next_attempt_at"], name="execution_due", condition=models.Q(status="pending")
            ),
            models.Index(
                fields=["started_at"], name="execution_running", condition=models.Q(status="running")
            ),
            # Activity log: a tenant's failed/retrying executions, newest first.
            models.Index(fields=["tenant", "status", "-created_at"], name="execution_tenant_status"),
            models.Index(fields=["run", "status"], name="execution_run_status"),
            # Batch claims: the next due executions of one run's step, in order, from an index scan.
            models.Index(
                fields=["run", "step", "next_attempt_at", "id"],
                name="execution_claim",
                condition=models.Q(status="pending"),
            ),
        ]

    @property
    def tries(self) -> int:
        """Attempts that tried the step's work (claims that only deferred the item not counted)."""
        return max(0, self.attempts - self.deferrals)

    def __str__(self) -> str:
        return f"Execution {self.pk} ({self.status})"


class Delivery(TenantOwned):
    """A message handed to a channel. Written as `sending` before the provider is called."""

    class Status(models.TextChoices):
        HELD = "held", "Held (sandbox)"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        UNCERTAIN = "uncertain", "Uncertain"
        DISCARDED = "discarded", "Discarded"
        CAPTURED = "captured", "Captured (test run)"
        # Not sent on purpose: the recipient is suppressed or unsubscribed, or there is no address.
        # The execution succeeds; the reason is in `error`.
        SKIPPED = "skipped", "Skipped"

    step_execution = models.OneToOneField(StepExecution, on_delete=models.CASCADE, related_name="delivery")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=20)
    recipient = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    content = models.JSONField(default=dict, blank=True)
    provider_id = models.CharField(max_length=500, blank=True)  # the provider's id of the message
    # The tenant's provider the message went (or goes) through; None: a channel without tenant providers,
    # or the platform's own (its EMAIL_* server). Only that provider's tracking webhook reports on it
    # (runs/tracking.py). No index: deleting a provider is rare and its senders must go first.
    sent_via = models.ForeignKey(
        "integrations.Provider",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="delivery_tenant_recent"),
            models.Index(fields=["tenant", "status", "-created_at", "-id"], name="delivery_tenant_status"),
            models.Index(fields=["tenant", "recipient"], name="delivery_tenant_recipient"),
            # Tracking webhooks find a message by the provider's id (runs/tracking.py).
            models.Index(
                fields=["tenant", "provider_id"],
                name="delivery_tenant_provider_id",
                condition=~models.Q(provider_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient} ({self.status})"


class DeliveryEvent(TenantOwned):
    """What a provider told us about a message after it took it (for email, anymail's normalised tracking
    event); `provider` is the one that sent it (`Delivery.sent_via`), whose webhook reported it.

    `event_key` is the provider's event id when it has one, else a digest of the event's type, time and
    recipient: the same event posted twice (a provider's retry, a replay) is stored once.
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        DEFERRED = "deferred", "Deferred"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        REJECTED = "rejected", "Rejected"
        SENT = "sent", "Sent by the provider"
        FAILED = "failed", "Failed at the provider"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        OTHER = "other", "Other"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    provider = models.ForeignKey(
        "integrations.Provider", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=15, choices=Kind.choices)
    bounce = models.CharField(max_length=4, blank=True)  # "hard" or "soft" for bounces
    event_key = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    recipient = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    click_url = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "event_key"], name="deliveryevent_unique_event"),
        ]
        indexes = [models.Index(fields=["tenant", "kind"], name="deliveryevent_tenant_kind")]

    def __str__(self) -> str:
        return f"{self.kind} for delivery {self.delivery_id}"


class ProcessHeartbeat(models.Model):
    """A Procfile process saying it is alive: a worker's lease on what it claimed, and what operators see.

    Each process upserts its row every HEARTBEAT_INTERVAL seconds (runs/engine/liveness.py). A row whose
    `beat_at` is older than WORKER_LEASE_SECONDS belongs to a process that is gone (or frozen): the
    sweeper returns a gone worker's running executions to `pending`. Rows of processes that stopped
    cleanly carry `stopped_at`; old rows are pruned by the sweeper after a day.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20)  # worker, scheduler, cron, listener, sweeper
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "beat_at"], name="heartbeat_kind_beat")]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class DigestBucket(TenantOwned):
    """One open (or released) digest: the items of one digest step for one key in one window.

    Unique per (tenant, step, key, generation): the step belongs to one workflow version, and each window
    of a key is the next generation once the previous one released. Joining is INSERT … ON CONFLICT on
    this row (runs/engine/digest.py), never a lock; `settings` holds the window it opened with, so a
    published change to the step does not move an open bucket's release.
    """

    step = models.ForeignKey("workflows.Step", on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=500)
    generation = models.PositiveIntegerField(default=1)
    settings = models.JSONField(default=dict)
    # The run whose item opened the bucket: it holds the release execution, so it stays open until then.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    opened_at = models.DateTimeField()
    release_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "step", "key", "generation"], name="digestbucket_unique_window"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "run"], name="digestbucket_run")]

    def __str__(self) -> str:
        return f"Digest bucket {self.pk} ({self.key}, window {self.generation})"


class DigestItem(models.Model):
    """One item in a bucket. `source` names the joining execution, so a retried join adds nothing."""

    bucket = models.ForeignKey(DigestBucket, on_delete=models.CASCADE, related_name="items")
    source = models.CharField(max_length=600)
    item = models.JSONField(default=dict)
    joined_at = models.DateTimeField()
    # "Send the first at once": the item that opened the window went on by itself; it is remembered (so a
    # retry of its execution passes it again, not into the digest) but the digest does not carry it.
    passed = models.BooleanField(default=False)
    # "Read the rows again at release": why the release left this item out ("row deleted", "row no longer
    # matches: …"); empty for an item the digest carries. Written by the release, so the run page can count.
    dropped = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "source"], name="digestitem_unique_source"),
        ]
        indexes = [models.Index(fields=["source"], name="digestitem_source")]

    def __str__(self) -> str:
        return f"Digest item {self.pk} of bucket {self.bucket_id}"


class CancelTombstone(TenantOwned):
    """A cancel by key: until `until`, every execution of this workflow's runs with this key is cancelled
    when it is claimed (runs/engine/cancel_keys.py), so work created after the cancel (a fan-out still
    being read, a retry, a run started later for the same row) is cancelled too."""

    class Source(models.TextChoices):
        API = "api", "REST API"
        PAGE = "page", "Run page"
        ROW = "row", "The row's state"

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    until = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)  # the engine's clock, as `until` is
    # Executions cancelled so far: those the cancel found, plus those cancelled later when claimed.
    cancelled = models.PositiveIntegerField(default=0)
    # Which executions and runs the cancel itself moved, to undo it while none of them was due yet:
    # {"executions": [id, ...], "runs": {run id: previous status}}; emptied by an undo.
    undo = models.JSONField(default=dict, blank=True)
    # Executions cancelled at their claim: they were due, so the cancel can no longer be undone.
    cancelled_when_due = models.PositiveIntegerField(default=0)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workflow", "key", "until"], name="tombstone_workflow_key")]

    def __str__(self) -> str:
        return f"Cancel {self.key!r} of workflow {self.workflow_id}"


class BulkOperation(TenantOwned):
    """A retry or cancel of everything a filter matches (runs/bulk/): one named row per request, processed
    in the background in batches (its progress counters are written after each batch).

    A double submit makes one operation: the same `idempotency_key` (the page's form token, the API's
    `Idempotency-Key`) is unique per tenant, and two unfinished operations with the same action and filter
    (`filter_digest`) cannot exist together. Only executions that matched when it was created (ids up to
    `last_execution_id`) are acted on: what fails later needs a new operation."""

    class Action(models.TextChoices):
        RETRY = "retry", "Retry failed executions"
        CANCEL = "cancel", "Cancel runs"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    name = models.CharField(max_length=300)
    action = models.CharField(max_length=10, choices=Action.choices)
    # The filter as given (runs/bulk/filters.py: workflow, step, error, created_from, created_to, state).
    filters = models.JSONField(default=dict, blank=True)
    filter_digest = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The last batch's time: an unfinished operation quiet for long lost its job (runs/bulk/operations.py).
    progressed_at = models.DateTimeField(default=timezone.now)
    # The dry run's figures when it was created: {"executions", "runs", "recipients", "already_sent"}.
    counted = models.JSONField(default=dict, blank=True)
    last_execution_id = models.BigIntegerField(default=0)
    # Progress: the batches resume after `cursor` (an execution id for a retry, a run id for a cancel).
    cursor = models.BigIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    acted = models.PositiveIntegerField(default=0)  # executions retried, or runs cancelled
    # Left alone: a message of it was sent (or may have been: sending, uncertain, held, captured).
    skipped_sent = models.PositiveIntegerField(default=0)
    # Left alone: no longer failed (or no longer open) when its batch came.
    skipped_changed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                name="bulkop_unique_idempotency_key",
                condition=~models.Q(idempotency_key=""),
            ),
            models.UniqueConstraint(
                fields=["tenant", "action", "filter_digest"],
                name="bulkop_one_unfinished_per_filter",
                condition=models.Q(status__in=["queued", "running"]),
            ),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="bulkop_tenant_recent")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))
