"""What every email provider kind provides: its form fields, its Django email backend, its error mapping and
its tracking webhook. ESPs share most of it through `AnymailKind` (integrations/email_providers/esp.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from integrations.channels.base import ChannelError


@dataclass(frozen=True)
class ProviderField:
    """One setting of a provider. Secret ones are stored encrypted, shown masked, and kept when left empty."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""
    integer: bool = False


class ProviderKind(ABC):
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    fields: ClassVar[tuple[ProviderField, ...]] = ()
    # How to point the ESP's event webhook at Rowbell (shown on the provider page and in the README).
    webhook_help: ClassVar[str] = ""
    # One self-contained HTTP request per message: the engine may keep several in flight (not SMTP).
    sends_over_http: ClassVar[bool] = False

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        """Errors per field name (empty when fine); called on save, after required fields are checked."""
        return {}

    @abstractmethod
    def open_backend(self, provider) -> Any:
        """A Django email backend (a connection) that sends through `provider`; not opened yet."""

    def message_id(self, mail) -> str:
        """The provider's id of a message it accepted (what its tracking events name)."""
        return mail.extra_headers.get("Message-ID", "")

    def map_error(self, exc: Exception) -> ChannelError | None:
        """The provider's refusal as a ChannelError (transient or permanent, its own words kept); None when
        `exc` is not the provider's (the caller lets it through)."""
        return None

    # Tracking webhooks (None: this kind has none, e.g. SMTP).
    tracking_view: ClassVar[type | None] = None

    def tracking_kwargs(self, provider) -> dict[str, Any]:
        """What anymail's tracking view would read from settings, from this provider's own record."""
        return {"webhook_secret": [provider.webhook_credentials]}

    def bounce_kind(self, event) -> str:
        """ "hard" or "soft" for a bounced event (anymail does not say; each ESP's payload does)."""
        return "hard"
