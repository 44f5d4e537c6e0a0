"""Tenant connections: data sources (the customer's PostgreSQL) and their secrets."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.db import models

from integrations.crypto import mask
from integrations.fields import EncryptedTextField
from tenants.models import TenantOwned


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


class Schedule(TenantOwned):
    """The live schedule of a published workflow whose trigger is a schedule; one per workflow.

    `next_fire_at` is computed in the schedule's IANA time zone (workflows/steps/schedule_trigger.py) and
    stored here, so the periodic job only asks PostgreSQL what is due.
    """

    workflow = models.OneToOneField("workflows.Workflow", on_delete=models.CASCADE, related_name="schedule")
    step = models.ForeignKey("workflows.Step", on_delete=models.CASCADE, related_name="+")
    rule = models.JSONField(help_text="The schedule trigger's cleaned config.")
    next_fire_at = models.DateTimeField()
    last_fired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_fire_at"], name="schedule_due"),
            models.Index(fields=["tenant", "next_fire_at"], name="schedule_tenant_next"),
        ]

    def __str__(self) -> str:
        return f"Schedule of {self.workflow_id}, next {self.next_fire_at:%Y-%m-%d %H:%M}Z"
