"""Every outgoing channel by name, like healthchecks' TRANSPORTS.

The name is what a send step declares (`SendKind.channel`, whose default `open_channel` looks it up
here) and what a Delivery row keeps (`Delivery.channel`), so pages find what they need about a message
by it too: its content template by convention (templates/runs/delivery_content/<name>.html) and
`Channel.reports_events`. A new channel is one module plus one line here.
"""

from __future__ import annotations

from integrations.channels.base import Channel
from integrations.channels.email import EmailChannel
from integrations.channels.http import HttpChannel
from integrations.channels.slack import SlackChannel

CHANNELS: dict[str, type[Channel]] = {
    "email": EmailChannel,
    "http": HttpChannel,
    "slack": SlackChannel,
}
