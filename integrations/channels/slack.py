"""Slack messages through an incoming-webhook URL.

The message is a `SlackTransport`: {"webhook_url": str, "text": str}. Slack answers 200 "ok"; 429 and 5xx
are retried.
"""

from __future__ import annotations

import json
from typing import TypedDict

from integrations.channels.http import HttpRequests


class SlackTransport(TypedDict):
    """One message to a Slack channel's incoming webhook (the Slack step's `render`)."""

    webhook_url: str
    text: str


class SlackChannel(HttpRequests[SlackTransport]):
    label = "Slack"
    what = "Slack"

    def send(self, message: SlackTransport, *, idempotency_key: str = "") -> str:
        return self.request(
            {
                "method": "POST",
                "url": message["webhook_url"],
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"text": message["text"]}),
            },
            idempotency_key=idempotency_key,
        )
