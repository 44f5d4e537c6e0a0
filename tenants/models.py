"""Tenants, memberships and the base that every tenant-owned model shares."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import ClassVar, Self

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Send windows (integrations/send_windows.py): the zone used when a message's data names none (or an
    # invalid one), and the window of every send step that does not set its own ("" = any time).
    time_zone = models.CharField(max_length=64, default="UTC")
    send_window = models.CharField(max_length=500, blank=True, default="")

    def __str__(self) -> str:
        return self.name


class TenantLimits(models.Model):
    """Limits an operator sets for one tenant in the Django admin. A blank field means "the setting's
    default" (tenants/limits.py `limits_for`, which is the only reader)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="limits")
    concurrency = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Batches of this tenant running at once; 0 = no limit. Blank: ENGINE_TENANT_CONCURRENCY.",
    )
    send_rate_per_second = models.FloatField(
        null=True,
        blank=True,
        help_text="Messages a second for the whole tenant; 0 = no limit. Blank: TENANT_SEND_RATE_PER_SECOND.",
    )
    send_rate_burst = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Burst above the rate; 0 = one second's worth. Blank: TENANT_SEND_RATE_BURST.",
    )
    activity_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days finished runs are kept; 0 keeps everything. Blank: ACTIVITY_RETENTION_DAYS.",
    )
    frequency_budget_messages = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Messages one recipient may get per budget window; 0 = off. Blank: FREQUENCY_BUDGET_MESSAGES.",
    )
    frequency_budget_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The frequency budget's window in hours. Blank: FREQUENCY_BUDGET_HOURS.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "tenant limits"
        constraints = [
            models.CheckConstraint(
                condition=Q(send_rate_per_second__isnull=True) | Q(send_rate_per_second__gte=0),
                name="tenantlimits_rate_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(frequency_budget_hours__isnull=True) | Q(frequency_budget_hours__gte=1),
                name="tenantlimits_budget_hours_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"limits of {self.tenant}"


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
    def for_tenant(self, tenant: Tenant | None) -> Self:
        """The one way views reach tenant-owned rows: everything else is another tenant's, so 404."""
        if tenant is None:
            return self.none()
        return self.filter(tenant=tenant)


TenantManager = models.Manager.from_queryset(TenantQuerySet)


class TenantOwned(models.Model):
    """Abstract base: the row belongs to one tenant. Subclasses add an index that starts with `tenant`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects: ClassVar[TenantManager] = TenantManager()

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


class ApiScope(models.TextChoices):
    """What an API key may do (tenants/api.py checks it on every request)."""

    READ = "read", "Read: list and read workflows, runs, messages, senders, providers, topics"
    TRIGGER = "trigger", "Trigger: start runs"
    MANAGE = "manage", "Manage: publish, release, retry, replay, cancel, bulk operations, topics"


def all_scopes() -> list[str]:
    return list(ApiScope.values)


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
    # What the key may do (ApiScope). Keys made before scopes existed could do everything, and keep it.
    scopes = ArrayField(models.CharField(max_length=10, choices=ApiScope.choices), default=all_scopes)

    class Meta:
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(
        cls, tenant: Tenant, name: str, created_by=None, scopes: list[str] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for the tenant (every scope unless `scopes` says): the saved row, and the key itself,
        which is never stored."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = cls.objects.create(
            tenant=tenant,
            name=name,
            prefix=key[:API_KEY_SHOWN_CHARS],
            secret_hash=hash_api_key(key),
            created_by=created_by,
            scopes=all_scopes() if scopes is None else [s for s in ApiScope.values if s in scopes],
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


INVITATION_TOKEN_BYTES = 32


def hash_invitation_token(token: str) -> str:
    """SHA-256 of the link's token: like an API key, 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(TenantQuerySet):
    def open(self) -> Self:
        """Neither accepted nor revoked (possibly expired): at most one per address and tenant."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)

    def pending(self, now: datetime | None = None) -> Self:
        """Open and not expired: the links that would work now."""
        return self.open().filter(expires_at__gt=now or timezone.now())


InvitationManager = models.Manager.from_queryset(InvitationQuerySet)


class Invitation(TenantOwned):
    """One person invited to a tenant by email: single-use, bound to that address, expiring, revocable.
    Only the hash of the link's token is stored; the link itself is in the email."""

    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[InvitationManager] = InvitationManager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="invitation_tenant_recent")]
        constraints = [
            # Re-inviting an address revokes its open invitation first; this makes a race of two
            # re-invites fail instead of leaving two live links.
            models.UniqueConstraint(
                "tenant",
                Lower("email"),
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.role}"

    @classmethod
    def issue(cls, tenant: Tenant, email: str, role: str, invited_by=None) -> tuple[Invitation, str]:
        """A new invitation row and the token for its link (never stored)."""
        token = secrets.token_urlsafe(INVITATION_TOKEN_BYTES)
        invitation = cls.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            token_hash=hash_invitation_token(token),
            invited_by=invited_by,
            expires_at=timezone.now() + timedelta(seconds=settings.INVITE_MAX_AGE_SECONDS),
        )
        return invitation, token

    def state(self, now: datetime | None = None) -> str:
        """ "accepted", "revoked", "expired" or "pending"."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "pending"

    def addressed_to(self, email: str) -> bool:
        return bool(email) and email.strip().casefold() == self.email.strip().casefold()

    def claim(self, now: datetime | None = None) -> bool:
        """Mark it accepted now, if it is still pending: one conditional UPDATE, so of two people
        accepting at once exactly one gets True (the other's UPDATE waits for the row, then finds it
        accepted). Call it inside the transaction that creates the membership."""
        now = now or timezone.now()
        claimed = Invitation.objects.open().filter(pk=self.pk, expires_at__gt=now).update(accepted_at=now)
        if claimed:
            self.accepted_at = now
        return bool(claimed)

    def revoke(self) -> bool:
        """Revoke it now if it is open; False when it was already accepted or revoked."""
        now = timezone.now()
        revoked = Invitation.objects.open().filter(pk=self.pk).update(revoked_at=now)
        if revoked:
            self.revoked_at = now
        return bool(revoked)


class AuditEditRefused(Exception):
    """Audit events are written once and never changed or deleted one by one."""


class AuditQuerySet(TenantQuerySet):
    def update(self, **kwargs):
        raise AuditEditRefused("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise AuditEditRefused("Audit events are append-only: they cannot be deleted.")


AuditManager = models.Manager.from_queryset(AuditQuerySet)


class AuditEvent(TenantOwned):
    """Who did what to which object, in one tenant. Written by `tenants.audit.record`; append-only (the
    model refuses updates and deletes, and a PostgreSQL trigger refuses UPDATE, except the actor
    becoming NULL when that user is deleted: the label keeps their name)."""

    class Via(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API key"
        ADMIN = "admin", "Django admin"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.WEB)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[AuditManager] = AuditManager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-id"], name="auditevent_tenant_recent"),
            models.Index(fields=["tenant", "action", "-id"], name="auditevent_tenant_action"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_label}".strip()

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEditRefused("Audit events are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEditRefused("Audit events are append-only: they cannot be deleted.")
