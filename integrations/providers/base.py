"""What every provider kind says, whatever its channel: its credentials form (`form_class`, a Django form
declared in the kind's module), how many messages of a batch may be in flight through it, how its errors
map to the engine's transient / permanent split, and how its tracking webhook is read (none by default)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.http import HttpRequest

from integrations.channels.base import ChannelError
from integrations.providers.forms import ProviderForm
from integrations.providers.tracking import TrackingEvent


class ProviderKind:
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    channel: ClassVar[str] = ""  # a name in integrations.channels.registry.CHANNELS
    # The provider page's form: the name plus this kind's settings and secrets (integrations/providers/forms.py).
    form_class: ClassVar[type[ProviderForm]] = ProviderForm
    # How to point the provider's event webhook at Rowbell (shown on the provider page and in the README).
    webhook_help: ClassVar[str] = ""
    # The route whose URL the provider page shows for the webhook (runs/hook_urls.py).
    tracking_url_name: ClassVar[str] = "provider_tracking"
    # One self-contained HTTP request per message: the engine may keep several in flight.
    sends_over_http: ClassVar[bool] = False
    # The limit a provider of this kind gets when its page leaves it empty (None: no limit).
    default_rate_per_second: ClassVar[float | None] = None

    @property
    def has_tracking_webhook(self) -> bool:
        """Whether the provider reports what happened to messages through a webhook (`read_tracking`)."""
        return False

    def form(self, *args: Any, **kwargs: Any) -> ProviderForm:
        """The credentials form of this kind (bound when given data)."""
        return self.form_class(self, *args, **kwargs)

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        """Errors per field name (empty when fine); called by the form once every field is valid."""
        return {}

    def messages_in_flight(self) -> int:
        """How many messages of one batch may be in flight through this provider at once: the one place
        that decides it (ENGINE_SEND_CONCURRENCY over an HTTP API, else one at a time)."""
        return django_settings.ENGINE_SEND_CONCURRENCY if self.sends_over_http else 1

    def map_error(self, exc: Exception) -> ChannelError | None:
        """The provider's refusal as a ChannelError (transient or permanent, its own words kept); None when
        `exc` is not the provider's (the caller lets it through)."""
        return None

    def read_tracking(self, provider: Any, request: HttpRequest) -> list[TrackingEvent]:
        """The events of one webhook request, authenticated with `provider`'s own credentials; raises
        TrackingRefused (401) or TrackingUnreadable (400) (integrations/providers/tracking.py)."""
        raise NotImplementedError(f"{self.label} has no tracking webhook")
