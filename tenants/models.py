"""Tenants, memberships and the base that every tenant-owned model shares."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]
        indexes = [models.Index(fields=["tenant", "role"], name="membership_tenant_role")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    @property
    def can_publish(self) -> bool:
        """Admins and owners publish and manage data sources; members edit drafts."""
        return self.role in (Role.OWNER, Role.ADMIN)


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> TenantQuerySet:
        """The one way views reach tenant-owned rows: everything else is another tenant's, so 404."""
        if tenant is None:
            return self.none()
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """Abstract base: the row belongs to one tenant. Subclasses add an index that starts with `tenant`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


API_KEY_PREFIX = "rb_live_"
# Characters of the key shown in lists and kept in clear (the scheme plus 8 of the token's 43).
API_KEY_SHOWN_CHARS = len(API_KEY_PREFIX) + 8
# last_used_at is written at most this often, so that a busy key does not cost a write per request.
API_KEY_USE_RESOLUTION = timedelta(minutes=1)


def hash_api_key(key: str) -> str:
    """SHA-256 of the whole key. A fast hash is right here: the key is 256 random bits, not a password,
    so there is nothing to guess from the hash, and looking it up costs one index probe per request."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(TenantOwned):
    """A program's access to one tenant's REST API. Only the key's hash is kept; the key itself is shown
    once, when it is created (`ApiKey.issue`)."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=API_KEY_SHOWN_CHARS)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, tenant: Tenant, name: str, created_by=None) -> tuple[ApiKey, str]:
        """A new key for the tenant: the saved row, and the key itself, which is never stored."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = cls.objects.create(
            tenant=tenant,
            name=name,
            prefix=key[:API_KEY_SHOWN_CHARS],
            secret_hash=hash_api_key(key),
            created_by=created_by,
        )
        return api_key, key

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> bool:
        """Revoke the key now; False when it already was (a double click revokes once)."""
        now = timezone.now()
        revoked = ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=now)
        if revoked:
            self.revoked_at = now
        return bool(revoked)

    def mark_used(self, now: datetime | None = None) -> None:
        """Record a use, writing only when the last recorded one is over a minute old."""
        now = now or timezone.now()
        stale = now - API_KEY_USE_RESOLUTION
        if self.last_used_at is not None and self.last_used_at > stale:
            return
        ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=self.pk).update(
            last_used_at=now
        )
        self.last_used_at = now
