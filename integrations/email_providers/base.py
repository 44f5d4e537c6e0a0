"""What every email provider kind adds to a provider kind (integrations/providers/base.py): the Django email
backend that sends through it, and the id its tracking events will name. ESPs share most of it through
`AnymailKind` (integrations/email_providers/esp.py); the platform's own EMAIL_* server is one too
(integrations/email_providers/platform.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from django.conf import settings as django_settings

from integrations.providers.base import ProviderKind
from integrations.providers.forms import ProviderForm, SecretField

__all__ = ["LOOKUP_METADATA", "EmailProviderKind", "ProviderForm", "SecretField"]

# The metadata field (Postmark's Metadata, Mailgun's custom variable) that carries a message's opaque key.
LOOKUP_METADATA = "rowbell_key"


class EmailProviderKind(ProviderKind, ABC):
    channel = "email"
    tracking_url_name = "email_tracking"  # /hooks/email/<token>/, the URL ESPs were given

    @abstractmethod
    def open_backend(self, provider) -> Any:
        """A Django email backend (a connection) that sends through `provider`; not opened yet."""

    def messages_in_flight(self) -> int:
        """Over an ESP's HTTP API, ENGINE_SEND_CONCURRENCY; through an SMTP server, EMAIL_SMTP_CONNECTIONS
        (each message in flight with its own connection for the batch)."""
        if self.sends_over_http:
            return django_settings.ENGINE_SEND_CONCURRENCY
        return django_settings.EMAIL_SMTP_CONNECTIONS

    # Whether the provider can be asked if it accepted a message (by the key Rowbell set as metadata).
    can_look_up: bool = False

    def accepted(self, provider, key: str, content: dict[str, Any]) -> bool | None:
        """Did the provider accept the message whose metadata carries `key`? True, False, or None when
        it cannot tell (no search API, or no answer now). Asked for a message whose worker stopped while
        handing it over (runs/engine/delivery_protocol.py), never on the hot path."""
        return None

    def message_id(self, mail) -> str:
        """The provider's id of a message it accepted (what its tracking events name)."""
        return mail.extra_headers.get("Message-ID", "")
