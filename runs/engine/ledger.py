"""Writing Delivery rows for a batch of sends with one statement (one commit) per message.

A message's Delivery is inserted as `sending` before the provider is called; after the provider
answers, the `sent` mark is not written on its own but together with the next message's insert, in
one statement (`WITH marked AS (UPDATE ... 'sent') INSERT ... 'sending'`). Both become durable in the
same commit, before that next message is sent, so the guarantee is unchanged: a worker killed
between a provider's answer and the statement leaves exactly that one message `sending` (reported
uncertain later), and nothing else. The last mark of a batch is flushed before the batch settles.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from runs.engine import clock

INSERT = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, '', '', %s) RETURNING id"
)
MARK = "UPDATE runs_delivery SET status = 'sent', provider_id = %s, sent_at = %s, error = '' WHERE id = %s"


class DeliveryLedger:
    def __init__(self) -> None:
        self.unmarked: tuple[str, Any, int] | None = None  # (provider_id, sent_at, delivery id)

    def create(
        self,
        *,
        tenant_id: int,
        run_id: int,
        execution_id: int,
        channel: str,
        recipient: str,
        status: str,
        content: dict[str, Any],
    ) -> int:
        params = [
            tenant_id,
            run_id,
            execution_id,
            channel,
            recipient[:500],
            status,
            json.dumps(content, cls=DjangoJSONEncoder),
            clock.now(),
        ]
        with connection.cursor() as cur:
            if self.unmarked is not None:
                cur.execute(f"WITH marked AS ({MARK}) {INSERT}", [*self.unmarked, *params])
                self.unmarked = None
            else:
                cur.execute(INSERT, params)
            return cur.fetchone()[0]

    def sent(self, delivery_id: int, provider_id: str) -> None:
        """Record the provider's answer; written with the next insert or by flush()."""
        self.flush()
        self.unmarked = (provider_id[:500], clock.now(), delivery_id)

    def failed(self, delivery_id: int, error: str) -> None:
        self.flush()
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE runs_delivery SET status = 'failed', error = %s WHERE id = %s", [error, delivery_id]
            )

    def flush(self) -> None:
        if self.unmarked is not None:
            with connection.cursor() as cur:
                cur.execute(MARK, list(self.unmarked))
            self.unmarked = None
