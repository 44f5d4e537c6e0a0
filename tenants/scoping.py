"""Helpers that reach tenant-owned rows only through the current tenant."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.http import Http404

from tenants.models import Tenant

M = TypeVar("M", bound=models.Model)


def tenant_queryset(model_or_qs: type[M] | models.QuerySet[M], tenant: Tenant | None) -> models.QuerySet[M]:
    qs = model_or_qs if isinstance(model_or_qs, models.QuerySet) else model_or_qs._default_manager.all()
    if tenant is None:
        return qs.none()
    return qs.filter(tenant=tenant)


def get_for_tenant_or_404(
    model_or_qs: type[M] | models.QuerySet[M], tenant: Tenant | None, **lookup: Any
) -> M:
    """Like get_object_or_404, but another tenant's id is indistinguishable from a missing one."""
    try:
        return tenant_queryset(model_or_qs, tenant).get(**lookup)
    except (models.ObjectDoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found") from exc
