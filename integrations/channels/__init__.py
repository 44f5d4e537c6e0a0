"""Outgoing channels, one module per transport over a small base (see base.py)."""

from integrations.channels.base import Channel, ChannelError

__all__ = ["Channel", "ChannelError"]
