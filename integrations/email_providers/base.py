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

__all__ = ["EmailProviderKind", "ProviderForm", "SecretField"]


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

    def message_id(self, mail) -> str:
        """The provider's id of a message it accepted (what its tracking events name)."""
        return mail.extra_headers.get("Message-ID", "")
