"""Slack messages through an incoming-webhook URL.

Message dict: {"webhook_url": str, "text": str}. Slack answers 200 "ok"; 429 and 5xx are retried.
"""

from __future__ import annotations

import json
from typing import Any

from integrations.channels.http import HttpChannel


class SlackChannel(HttpChannel):
    label = "Slack"
    what = "Slack"

    def send(self, message: dict[str, Any], *, idempotency_key: str = "") -> str:
        return super().send(
            {
                "method": "POST",
                "url": message["webhook_url"],
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"text": message["text"]}),
            },
            idempotency_key=idempotency_key,
        )
