"""The shared shape of steps that send (email, Slack, HTTP): render, then hand to a channel.

The engine (runs/engine/delivery_protocol.py) owns the delivery protocol: a Delivery row written before
the provider is called and marked after, held in sandbox, captured in test runs. A send kind only says
how to render one item (`render` -> (content, transport)), who the recipient is, which channel it sends
through (`channel`, a name in integrations/channels/registry.py), and what items go on after a send
(`result_items`, default: the item unchanged).

`content` is what Delivery.content keeps and the activity log shows (no secrets); `transport` is what
the channel needs to send (it may add secrets such as a webhook URL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic

from django.conf import settings

from integrations.channels.base import Answer, Channel, ChannelError, MessageT
from integrations.channels.registry import CHANNELS
from integrations.failures import Failure
from integrations.ratelimit import RateLimit
from integrations.templating import TemplateError
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.context import SentDelivery, StepContext


class SendKind(StepKind, ABC, Generic[MessageT]):
    """`MessageT`: what the kind's channel sends (its TypedDict, e.g. EmailTransport), built by `render`."""

    channel: ClassVar[str] = ""  # the channel's name in integrations.channels.registry.CHANNELS

    @abstractmethod
    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], MessageT]:
        """The message for one item: (content kept on the Delivery, transport the channel needs)."""

    def recipient(self, content: dict[str, Any]) -> str:
        return ""

    def provider_id(self, ctx: StepContext) -> int | None:
        """The tenant's provider (integrations.models.Provider) this step's messages go through, kept on
        each Delivery so that only that provider's tracking webhook reports on them; None: the channel
        has no tenant providers, or the platform's own (e.g. the EMAIL_* server)."""
        return None

    def rate_limit(self, ctx: StepContext) -> RateLimit | None:
        """The limit of the provider this step's messages go through (one token bucket shared by every
        worker, integrations/ratelimit.py); None: no limit."""
        return None

    def cost(self, transport: MessageT) -> int:
        """How many of the provider's tokens one message costs (email: one per recipient)."""
        return 1

    def was_accepted(self, ctx: StepContext, delivery: SentDelivery) -> bool | None:
        """For a message whose worker stopped while handing it over: did the provider accept it? True,
        False, or None when it cannot be asked (plain SMTP, SES, a provider not answering now)."""
        return None

    def open_channel(self) -> Channel[MessageT]:
        """A channel for one batch of sends (opened and closed by the engine)."""
        return CHANNELS[self.channel]()

    def messages_in_flight(self, ctx: StepContext) -> int:
        """How many messages of this step's batch may be in flight at once: ENGINE_SEND_CONCURRENCY for
        a channel that speaks HTTP (one request per message), else 1 (one at a time)."""
        return settings.ENGINE_SEND_CONCURRENCY if self.open_channel().concurrent_sends else 1

    def override_recipient(
        self, content: dict[str, Any], transport: MessageT, recipient: str
    ) -> tuple[dict[str, Any], MessageT] | None:
        """A test run's override recipient; None when this channel cannot be redirected (then captured)."""
        return None

    def result_items(
        self, ctx: StepContext, item: dict[str, Any], content: dict[str, Any], answer: Answer | None
    ) -> list[dict[str, Any]]:
        """The items that go on after a send. `answer` is what the provider said (None when nothing was
        sent: a captured, held or already sent message), whichever path sent it."""
        return [item]

    def on_refused(self, ctx: StepContext, error: ChannelError, delivery_id: int) -> None:
        """The provider refused this step's message (its Delivery `delivery_id` is marked failed next):
        what the kind does about it beyond the retry (email: suppress an address the server refused)."""

    def skip_reasons(
        self, ctx: StepContext, pairs: list[tuple[int, dict[str, Any]]]
    ) -> dict[int, tuple[str, str]]:
        """{key: (recipient, reason)} for the (key, item) pairs of a batch that must not be sent at all
        (e.g. an email recipient who unsubscribed). Called once per batch; at most one statement."""
        return {}

    def result_items_when_skipped(self, config: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
        """What goes on after a skipped message (default: nothing; the path ends there)."""
        return []

    def resends_uncertain(self, config: dict[str, Any]) -> bool:
        """True when a message that may or may not have left is safe to send again on its own (a step
        whose receiver de-duplicates, e.g. an HTTP step opted in with `resend_uncertain`)."""
        return False

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        """The rendered message, and why it would be skipped (nothing is sent)."""
        content, _transport = self.render(ctx, item)
        skip = self.skip_reasons(ctx, [(0, item)]).get(0)
        if skip:
            content = {**content, "skipped": f"Would be skipped: {skip[1]}"}
        return StepPreview(shows="message", channel=self.channel, content=content)

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("Send steps run through runs.engine.delivery_protocol, which records deliveries.")


def template_context(ctx: StepContext, item: dict[str, Any]) -> dict[str, Any]:
    return {"item": item, "run": ctx.run_context}


def rendered(label: str, fn: Callable[..., str], *args: Any, **kwargs: Any) -> str:
    """Render one field, naming it in the error so the person knows which template to fix."""
    try:
        return fn(*args, **kwargs)
    except TemplateError as exc:
        raise Failure(f"{label}: {exc}", permanent=True) from exc
