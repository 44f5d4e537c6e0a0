"""Tenant connections: data sources (the customer's PostgreSQL) and their secrets."""

from __future__ import annotations

from django.db import models

from integrations.crypto import mask
from integrations.fields import EncryptedTextField
from tenants.models import TenantOwned


class DataSource(TenantOwned):
    """A tenant's PostgreSQL database. The triggers issue adds status, listening and introspection."""

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        OK = "ok", "Connected"
        ERROR = "error", "Error"

    name = models.CharField(max_length=200)
    connection_url = EncryptedTextField(help_text="postgresql://user:password@host:5432/dbname")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "name"], name="datasource_tenant_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_url(self) -> str:
        """The connection URL with its password hidden."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.connection_url)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":" + mask(parts.password, 0) + "@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.connection_url
