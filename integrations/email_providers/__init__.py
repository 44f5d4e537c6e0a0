"""Email providers: one module per kind (SMTP, and ESPs through django-anymail), each a `ProviderKind`.

A tenant's `EmailProvider` row names its kind; the kind says what the provider page asks for, builds the
Django email backend that sends through it (every address it connects to checked by integrations/outbound.py),
maps the provider's errors to the engine's transient / permanent split, and parses its tracking webhooks.
Adding a provider is adding a module here and a line in `KINDS`.
"""

from __future__ import annotations

from integrations.email_providers.base import ProviderField, ProviderKind

KINDS: dict[str, ProviderKind] = {}


def register(kind: ProviderKind) -> ProviderKind:
    KINDS[kind.key] = kind
    return kind


def get_kind(key: str) -> ProviderKind:
    try:
        return KINDS[key]
    except KeyError:
        raise KeyError(f"Unknown email provider kind {key!r}") from None


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.key, kind.label) for kind in KINDS.values()]


from integrations.email_providers import (  # noqa: E402  (the modules register themselves)
    amazon_ses,
    brevo,
    mailgun,
    postmark,
    resend,
    sendgrid,
    smtp,
)

__all__ = [
    "KINDS",
    "ProviderField",
    "ProviderKind",
    "amazon_ses",
    "brevo",
    "get_kind",
    "kind_choices",
    "mailgun",
    "postmark",
    "register",
    "resend",
    "sendgrid",
    "smtp",
]
