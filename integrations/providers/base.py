"""What every provider kind says, whatever its channel: what its page asks for (`fields`, `clean`), how
many messages of a batch may be in flight through it, how its errors map to the engine's transient /
permanent split, and how its tracking webhook is read (none by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings as django_settings

from integrations.channels.base import ChannelError

if TYPE_CHECKING:
    from anymail.signals import AnymailTrackingEvent

    from integrations.models import Provider


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


class ProviderKind:
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    channel: ClassVar[str] = ""  # a name in integrations.channels.registry.CHANNELS
    fields: ClassVar[tuple[ProviderField, ...]] = ()
    # How to point the provider's event webhook at Rowbell (shown on the provider page and in the README).
    webhook_help: ClassVar[str] = ""
    # One self-contained HTTP request per message: the engine may keep several in flight.
    sends_over_http: ClassVar[bool] = False
    # The view that reads the provider's tracking webhook (anymail's, for ESPs); None: it has none.
    tracking_view: ClassVar[type | None] = None

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        """Errors per field name (empty when fine); called on save, after required fields are checked."""
        return {}

    def messages_in_flight(self) -> int:
        """How many messages of one batch may be in flight through this provider at once: the one place
        that decides it (ENGINE_SEND_CONCURRENCY over an HTTP API, else one at a time)."""
        return django_settings.ENGINE_SEND_CONCURRENCY if self.sends_over_http else 1

    def map_error(self, exc: Exception) -> ChannelError | None:
        """The provider's refusal as a ChannelError (transient or permanent, its own words kept); None when
        `exc` is not the provider's (the caller lets it through)."""
        return None

    def tracking_kwargs(self, provider: Provider) -> dict[str, Any]:
        """What the tracking view would read from settings, from this provider's own record."""
        return {"webhook_secret": [provider.webhook_credentials]}

    def bounce_kind(self, event: AnymailTrackingEvent) -> str:
        """ "hard" or "soft" for a bounced event (anymail does not say; each ESP's payload does)."""
        return "hard"
