"""Effective limits of a tenant: what an operator set in the Django admin (`TenantLimits`), else the
setting. Every reader goes through `limits_for`, so a new limit is one field here and one in the model.

The engine asks once per batch; the answer is kept per process for LIMITS_CACHE_SECONDS, so an operator's
change reaches every worker within that long without a query per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from django.conf import settings

from tenants.models import Tenant, TenantLimits


@dataclass(frozen=True)
class TenantLimitValues:
    concurrency: int
    send_rate_per_second: float
    send_rate_burst: int
    activity_retention_days: int
    frequency_budget_messages: int
    frequency_budget_hours: int


# Each field's setting, read when asked (tests and operators change settings at run time).
DEFAULT_SETTING = {
    "concurrency": "ENGINE_TENANT_CONCURRENCY",
    "send_rate_per_second": "TENANT_SEND_RATE_PER_SECOND",
    "send_rate_burst": "TENANT_SEND_RATE_BURST",
    "activity_retention_days": "ACTIVITY_RETENTION_DAYS",
    "frequency_budget_messages": "FREQUENCY_BUDGET_MESSAGES",
    "frequency_budget_hours": "FREQUENCY_BUDGET_HOURS",
}

_cache: dict[int, tuple[float, TenantLimits | None]] = {}


def defaults() -> TenantLimitValues:
    return TenantLimitValues(
        **{name: getattr(settings, setting) for name, setting in DEFAULT_SETTING.items()}
    )


def limits_for(tenant: Tenant | int) -> TenantLimitValues:
    """The tenant's limits, each the operator's value or the setting's default."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    row = _row(tenant_id)
    values = {}
    for field in fields(TenantLimitValues):
        own = getattr(row, field.name) if row is not None else None
        values[field.name] = own if own is not None else getattr(settings, DEFAULT_SETTING[field.name])
    return TenantLimitValues(**values)


def overrides(name: str) -> dict[int, int | float]:
    """Tenants whose operator set `name`, with their value (for jobs that work over every tenant)."""
    filled = TenantLimits.objects.filter(**{f"{name}__isnull": False})
    return dict(filled.values_list("tenant_id", name))


def forget() -> None:
    """Drop the per-process cache (the admin calls it on save; tests call it between cases)."""
    _cache.clear()


def _row(tenant_id: int) -> TenantLimits | None:
    now = time.monotonic()
    cached = _cache.get(tenant_id)
    if cached is not None and now - cached[0] < settings.LIMITS_CACHE_SECONDS:
        return cached[1]
    row = TenantLimits.objects.filter(tenant_id=tenant_id).first()
    _cache[tenant_id] = (now, row)
    return row
