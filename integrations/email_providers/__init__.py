"""Email providers: one module per kind (SMTP, and ESPs through django-anymail), each a `ProviderKind`.

A tenant's `EmailProvider` row names its kind; the kind says what the provider page asks for, builds the
Django email backend that sends through it (every address it connects to checked by integrations/outbound.py),
maps the provider's errors to the engine's transient / permanent split, and parses its tracking webhooks.
Adding a provider is adding a module here and a line in `KINDS`.
"""

from __future__ import annotations

from integrations.email_providers.amazon_ses import AmazonSES
from integrations.email_providers.base import ProviderField, ProviderKind
from integrations.email_providers.brevo import Brevo
from integrations.email_providers.mailgun import Mailgun
from integrations.email_providers.postmark import Postmark
from integrations.email_providers.resend import Resend
from integrations.email_providers.sendgrid import SendGrid
from integrations.email_providers.smtp import SMTP

# Kind key -> the kind, in the order of the provider page's menu.
KINDS: dict[str, ProviderKind] = {
    kind.key: kind for kind in (AmazonSES(), Brevo(), Mailgun(), Postmark(), Resend(), SendGrid(), SMTP())
}


def get_kind(key: str) -> ProviderKind:
    try:
        return KINDS[key]
    except KeyError:
        raise KeyError(f"Unknown email provider kind {key!r}") from None


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.key, kind.label) for kind in KINDS.values()]


__all__ = ["KINDS", "ProviderField", "ProviderKind", "get_kind", "kind_choices"]
