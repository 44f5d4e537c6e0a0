"""Tenant connections: data sources (the customer's PostgreSQL) and their secrets, providers and senders,
and the endpoints that hear about finished runs (integrations/events/)."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit, urlunsplit

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from integrations.crypto import mask
from integrations.events import EVENT_TYPES
from integrations.fields import EncryptedTextField
from integrations.providers.registry import get_kind
from integrations.ratelimit import RateLimit
from tenants.models import TenantOwned


def default_schemas() -> list[str]:
    return ["public"]


class DataSource(TenantOwned):
    """A tenant's PostgreSQL database: connection, health, and the listener's view of it.

    Connecting, introspection and trigger installation live in integrations/datasources/.
    """

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        OK = "ok", "Connected"
        ERROR = "error", "Error"

    class ListenerStatus(models.TextChoices):
        IDLE = "idle", "Not listened to (no published database trigger)"
        LISTENING = "listening", "Listening"
        RECONNECTING = "reconnecting", "Unreachable, reconnecting"

    name = models.CharField(max_length=200)
    connection_url = EncryptedTextField(help_text="postgresql://user:password@host:5432/dbname")
    # The schemas whose tables Rowbell watches: what the setup SQL grants and the connection check checks.
    schemas = ArrayField(models.CharField(max_length=63), default=default_schemas)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Off by default: a per-row pg_notify serialises commits on a busy table (see docs/triggers.md).
    notify_enabled = models.BooleanField(
        default=False,
        help_text="Wake the listener with NOTIFY for lower latency; costs the database's write throughput.",
    )
    listener_status = models.CharField(
        max_length=12, choices=ListenerStatus.choices, default=ListenerStatus.IDLE
    )
    listener_error = models.TextField(blank=True)
    # Last time a listener polled this database successfully (written at most every few seconds).
    listener_seen_at = models.DateTimeField(null=True, blank=True)
    # Databases this source pointed at before whose Rowbell triggers are still installed, one URL per line.
    # A move removes them once the triggers work in the new database; one that cannot be reached then stays
    # here until a later save reaches it, so no trigger is forgotten in a database nobody listens to.
    stale_trigger_urls = EncryptedTextField(blank=True, default="")

    class CaptureMode(models.TextChoices):
        TRIGGER = "trigger", "Row triggers (installed on the watched tables)"
        LOGICAL = "logical", "Logical decoding (a replication slot; nothing on the tables)"

    class SlotGuard(models.TextChoices):
        FALLBACK = "fallback", "Fall back to row triggers, then drop the slot once it is read"
        DROP = "drop", "Drop the slot at once (the changes it still holds are lost)"

    capture_mode = models.CharField(max_length=10, choices=CaptureMode.choices, default=CaptureMode.TRIGGER)
    # The part of the customer's WAL whose changes the slot delivers (workflows/database_triggers.py
    # switch_capture): commits from `slot_from_lsn` on, and, once a switch back to row triggers set it,
    # before `slot_until_lsn` ("": no bound). The trigger log delivers the rest.
    slot_from_lsn = models.CharField(max_length=20, blank=True, default="")
    slot_until_lsn = models.CharField(max_length=20, blank=True, default="")
    slot_guard = models.CharField(max_length=10, choices=SlotGuard.choices, default=SlotGuard.FALLBACK)
    slot_max_retained_mb = models.PositiveIntegerField(
        default=1024, help_text="WAL the slot may hold back before the guard acts (MB)."
    )
    # The slot's last measured health, written by the listener (bytes; null: not measured / no slot).
    slot_lag_bytes = models.BigIntegerField(null=True, blank=True)
    slot_retained_bytes = models.BigIntegerField(null=True, blank=True)
    slot_guard_note = models.TextField(blank=True, default="")  # what the guard last did, and when
    # Which listener process reads this source (runs/listener.py leases): "host:pid:random", and until when
    # its lease holds unless renewed. Another listener takes the source over once the lease has run out.
    listener_owner = models.CharField(max_length=200, blank=True, default="")
    listener_lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "name"], name="datasource_tenant_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_url(self) -> str:
        """The connection URL with its password hidden."""
        return mask_password(self.connection_url)

    @property
    def stale_databases(self) -> list[str]:
        return self.stale_trigger_urls.split()

    @property
    def masked_stale_databases(self) -> list[str]:
        return [mask_password(url) for url in self.stale_databases]


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":" + mask(parts.password, 0) + "@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


SIGNING_SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


class EventEndpoint(TenantOwned):
    """A URL of the tenant's program that Rowbell POSTs signed events to (integrations/events/)."""

    url = models.URLField("URL", max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=30, choices=[(name, name) for name in EVENT_TYPES]))
    # Encrypted, not hashed: Rowbell signs with it. People see it once, when it is created or rotated.
    secret = EncryptedTextField(default=new_signing_secret)
    # Cleared by a person, or by Rowbell when the endpoint answers 410 Gone; an inactive endpoint gets nothing.
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="eventendpoint_tenant_created")]

    def __str__(self) -> str:
        return self.url

    @property
    def masked_secret(self) -> str:
        return SIGNING_SECRET_PREFIX + mask(self.secret.removeprefix(SIGNING_SECRET_PREFIX), 0)

    def rotate_secret(self) -> str:
        """A new signing secret, in force from the next POST; the old one stops working at once."""
        self.secret = new_signing_secret()
        self.save(update_fields=["secret"])
        return self.secret


class EventDelivery(TenantOwned):
    """One event on its way to one endpoint: written with the event (an outbox row), then POSTed by a job.

    `next_attempt_at` is when the next attempt is due, and while a job is POSTing, the end of its lease.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    # No index of its own: the unique constraint and the recent-deliveries index both start with it.
    endpoint = models.ForeignKey(
        EventEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_type = models.CharField(max_length=30)
    # The event's id, the same for every endpoint it goes to: receivers deduplicate on it.
    event_id = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "event deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="eventdelivery_unique_event"),
        ]
        indexes = [
            # The settings page: each endpoint's last deliveries.
            models.Index(fields=["endpoint", "-created_at", "-id"], name="eventdelivery_endpoint_recent"),
            # The periodic re-queue: pending deliveries whose job is overdue.
            models.Index(
                fields=["next_attempt_at"], name="eventdelivery_due", condition=models.Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.endpoint_id} ({self.status})"


def new_webhook_token() -> str:
    """The unguessable part of a provider's tracking URL (it names the provider; basic auth proves the caller)."""
    return secrets.token_urlsafe(18)


def new_webhook_credentials() -> str:
    """`user:password` for HTTP basic auth on a provider's tracking webhook, put in the URL given to the ESP."""
    return f"rowbell:{secrets.token_urlsafe(24)}"


class Provider(TenantOwned):
    """How a tenant's messages of one channel leave: for email, its own SMTP server or an ESP through
    django-anymail (the first channel with providers; the model was Provider).

    `kind` names a kind in integrations/providers/registry.py (`PROVIDER_KINDS`), which says its channel and
    which `settings` (host, port, region, API URL...) and `secrets` (password, API key, signing key) it
    needs. Secrets are one JSON object, stored encrypted and never shown again in full. `channel` is the
    kind's, kept on the row so that pages and pickers filter by it.
    """

    channel = models.CharField(max_length=20, default="email")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    settings = models.JSONField(default=dict, blank=True)
    secrets = EncryptedTextField(blank=True, default="")
    webhook_token = models.CharField(max_length=40, unique=True, default=new_webhook_token)
    webhook_credentials = EncryptedTextField(default=new_webhook_credentials)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    # The provider's limit, enforced by one token bucket shared by every worker (integrations/ratelimit.py).
    # Empty: the kind's default (Amazon SES: 14/s, its default sending rate), else no limit.
    rate_per_second = models.FloatField(
        "limit (messages a second)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(100000)],
        help_text="Recipients a second the provider accepts (To, CC and BCC each count one).",
    )
    rate_burst = models.PositiveIntegerField(
        "burst",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1000000)],
        help_text="How many may go at once after a quiet spell. Empty: one second's worth.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Named when the model was Provider; names stay unique per tenant across channels.
            models.UniqueConstraint(fields=["tenant", "name"], name="emailprovider_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.channel = self.kind_module.channel
        super().save(*args, **kwargs)

    @property
    def secret_values(self) -> dict[str, str]:
        try:
            values = json.loads(self.secrets or "{}")
        except ValueError:
            return {}
        return values if isinstance(values, dict) else {}

    @secret_values.setter
    def secret_values(self, values: dict[str, str]) -> None:
        self.secrets = json.dumps({k: v for k, v in values.items() if v})

    @property
    def kind_module(self):
        return get_kind(self.kind)

    @property
    def rate_limit(self) -> RateLimit | None:
        """This provider's bucket: its own limit, else its kind's default; None: no limit."""
        rate = self.rate_per_second or self.kind_module.default_rate_per_second
        if not rate:
            return None
        burst = self.rate_burst or max(1, round(rate))
        return RateLimit(f"provider:{self.pk}", float(rate), int(burst))


class Sender(TenantOwned):
    """An identity a tenant's email is sent from: a display name and From address, an optional Reply-To,
    and the provider that carries it (none: the platform's EMAIL_* server). One sender may be the default."""

    name = models.CharField(max_length=100, help_text="How people pick it in the email step, e.g. “Support”.")
    from_name = models.CharField("display name", max_length=100, blank=True)
    from_address = models.EmailField("From address", max_length=254)
    reply_to = models.EmailField("Reply-To", max_length=254, blank=True)
    # RESTRICT, not PROTECT: a provider in use cannot be deleted, but deleting the whole tenant still can.
    provider = models.ForeignKey(
        Provider,
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="senders",
        limit_choices_to={"channel": "email"},
        help_text="Empty: Rowbell's own mail server.",
    )
    is_default = models.BooleanField("default sender", default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="sender_unique_name"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_default=True), name="sender_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def from_header(self) -> str:
        """`"Name" <address>` with the name quoted as RFC 5322 needs (commas, quotes)."""
        from email.utils import formataddr

        return formataddr((self.from_name, self.from_address)) if self.from_name else self.from_address
