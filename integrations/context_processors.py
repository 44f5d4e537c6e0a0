"""What the base template's menu needs from the integrations app."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from integrations.channels.registry import CHANNELS
from integrations.providers.registry import PROVIDER_KINDS

# Email's providers are on its own settings page (the menu's "Email"), with its senders and layouts.
OWN_PAGE = {"email"}


def provider_channels(request: HttpRequest) -> dict[str, Any]:
    """`provider_channels`: a menu link to /settings/providers/<channel>/ for every other channel a tenant
    can add providers of, named as the channel names itself ("SMS"). Read from the registries on each
    request (a handful of entries), so a channel registered later gets its link without more code."""
    with_kinds = {kind.channel for kind in PROVIDER_KINDS.values()}
    links = [
        {"label": channel.label or name, "url": reverse("providers:settings", kwargs={"channel": name})}
        for name, channel in CHANNELS.items()
        if name in with_kinds and name not in OWN_PAGE
    ]
    return {"provider_channels": links}
