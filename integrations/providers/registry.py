"""Every provider kind by key, of every channel, like integrations/channels/registry.py's CHANNELS: the
provider pages' menus, a Provider row's `kind` and the tracking webhooks find a kind here. Keys are unique
across channels. A new kind is one module plus one line here (email's list: integrations/email_providers/).
"""

from __future__ import annotations

from integrations.email_providers import EMAIL_KINDS
from integrations.providers.base import ProviderKind

PROVIDER_KINDS: dict[str, ProviderKind] = {kind.key: kind for kind in EMAIL_KINDS}


def get_kind(key: str) -> ProviderKind:
    try:
        return PROVIDER_KINDS[key]
    except KeyError:
        raise KeyError(f"Unknown provider kind {key!r}") from None


def kind_choices(channel: str) -> list[tuple[str, str]]:
    """The kinds a tenant can add for `channel`, in the registry's order."""
    return [(kind.key, kind.label) for kind in PROVIDER_KINDS.values() if kind.channel == channel]
