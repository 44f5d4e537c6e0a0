"""System checks for integration settings (`manage.py check`, and `check --deploy` for production)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from integrations.outbound import allowed_networks


@register(Tags.security)
def check_outbound_allowed_networks(app_configs, **kwargs) -> list:
    try:
        allowed_networks()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc), hint="Write networks as CIDRs, e.g. 10.20.0.0/16,192.168.5.7/32.", id="rowbell.E001"
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_encryption_keys(app_configs, **kwargs) -> list:
    if settings.ENCRYPTION_KEYS:
        return []
    return [
        Warning(
            "ENCRYPTION_KEYS is not set: secrets at rest are encrypted with a key derived from SECRET_KEY, "
            "so rotating SECRET_KEY makes them unreadable.",
            hint="Set ENCRYPTION_KEYS to a Fernet key (see .env.example).",
            id="rowbell.W001",
        )
    ]
