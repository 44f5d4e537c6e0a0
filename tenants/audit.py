"""The audit log: `record(...)` is called wherever a person (or an API key) does something others in the
tenant must be able to trace: publishing, releasing messages, changing roles, invitations, API keys and
data sources. Events are append-only (see `tenants.models.AuditEvent`).

Action names are "<object>.<verb>"; `ACTIONS` is the list the audit page filters by.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from tenants.models import ApiKey, AuditEvent, Tenant

ACTIONS: dict[str, str] = {
    "workflow.published": "Published a workflow",
    "workflow.unpublished": "Unpublished a workflow",
    "messages.released": "Released held messages",
    "messages.discarded": "Discarded held messages",
    "execution.retried": "Retried a failed step",
    "run.replayed": "Replayed a run",
    "run.cancelled": "Cancelled a run",
    "runs.cancelled_by_key": "Cancelled runs by key",
    "runs.cancel_undone": "Undid a cancel by key",
    "bulk.retry": "Started a bulk retry",
    "bulk.cancel": "Started a bulk cancel",
    "bulk.finished": "A bulk operation finished",
    "member.role_changed": "Changed a member's role",
    "member.removed": "Removed a member",
    "invitation.created": "Invited someone",
    "invitation.revoked": "Revoked an invitation",
    "invitation.accepted": "Accepted an invitation",
    "api_key.created": "Created an API key",
    "api_key.revoked": "Revoked an API key",
    "datasource.created": "Added a data source",
    "datasource.changed": "Changed a data source",
    "datasource.deleted": "Deleted a data source",
    "datasource.capture_switched": "Switched how a data source's changes are captured",
    "topic.created": "Added an email topic",
    "topic.changed": "Changed an email topic",
    "topic.deleted": "Deleted an email topic",
    "layout.created": "Added an email layout",
    "layout.changed": "Changed an email layout",
    "layout.deleted": "Deleted an email layout",
    "suppression.added": "Suppressed an email address",
    "suppression.removed": "Removed an address from the suppression list",
    "suppression.imported": "Imported suppressed addresses",
    "email_provider.created": "Added an email provider",
    "email_provider.changed": "Changed an email provider",
    "email_provider.tested": "Sent a test email through a provider",
    "email_provider.deleted": "Deleted an email provider",
    # Providers of the other channels (the channel is in the details).
    "provider.created": "Added a provider",
    "provider.changed": "Changed a provider",
    "provider.tested": "Sent a test message through a provider",
    "provider.deleted": "Deleted a provider",
    "sender.created": "Added an email sender",
    "sender.changed": "Changed an email sender",
    "sender.deleted": "Deleted an email sender",
    "tenant.sending_defaults_changed": "Changed the sending defaults (time zone, send window)",
}


def actor_label(actor: Any) -> str:
    """How the event names who did it, kept even after the user or key is gone."""
    if isinstance(actor, ApiKey):
        return f"API key “{actor.name}” ({actor.prefix}…)"
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return "system"


def record(
    tenant: Tenant,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    *,
    label: str = "",
    object_type: str = "",
    object_id: object = None,
    via: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one event: `actor` is a user, an ApiKey or None; `target` the object acted on (its type, id
    and `str()` are kept; `label`, `object_type` and `object_id` override them, for an action on many objects or a deleted one); keyword arguments are kept as JSON details.
    `via` defaults to "api" for an API key and "web" otherwise (Django admin actions pass "admin")."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to tenants.audit.ACTIONS.")
    is_key = isinstance(actor, ApiKey)
    user = actor if not is_key and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=user,
        actor_label=actor_label(actor)[:200],
        via=via or (AuditEvent.Via.API if is_key else AuditEvent.Via.WEB),
        action=action,
        object_type=object_type or (target._meta.model_name or "" if target is not None else ""),
        object_id=str(object_id if object_id is not None else (target.pk if target is not None else ""))[:64],
        object_label=(label or (str(target) if target is not None else ""))[:300],
        details=details,
    )


def record_for(request: Any, action: str, target: models.Model | None = None, **kwargs: Any) -> AuditEvent:
    """`record` for a view: the request's tenant, and its user (or, in the REST API, its API key)."""
    actor = request.auth if isinstance(getattr(request, "auth", None), ApiKey) else request.user
    return record(request.tenant, actor, action, target, **kwargs)


def record_bulk(
    tenant: Tenant, actor: Any, action: str, ids: list[int], *, via: str | None = None, **details
) -> None:
    """One event for an action on many held messages (releasing 200 is one click, so one event), naming
    their ids; nothing when there were none."""
    if not ids:
        return
    count = len(ids)
    label = f"{count} message{'s' if count != 1 else ''}"
    record(tenant, actor, action, label=label, object_type="delivery", via=via, ids=list(ids), **details)
