"""Who must not get a step's email: one statement per batch, whatever the batch's size.

`skip_reasons(tenant_id, addresses, topic, include_unsubscribes)` answers, for the addresses of a
batch, which are suppressed (never sent to, on any topic) and, when unsubscribes apply, which
unsubscribed from the step's topic or from everything. Suppressions win over unsubscribes: they say more.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from consent.models import Suppression, normalize_address

SUPPRESSED_SQL = """
SELECT address, 0 AS rank, reason AS what FROM consent_suppression
WHERE tenant_id = %(tenant)s AND channel = %(channel)s AND address = ANY(%(addresses)s)
"""

UNSUBSCRIBED_SQL = """
SELECT u.address, 1 AS rank, COALESCE(t.name, '') AS what FROM consent_unsubscribe u
LEFT JOIN consent_topic t ON t.id = u.topic_id
WHERE u.tenant_id = %(tenant)s AND u.address = ANY(%(addresses)s)
  AND (u.topic_id IS NULL OR u.topic_id = %(topic)s)
"""

REASON_LABELS = dict(Suppression.Reason.choices)


def skip_reasons(
    tenant_id: int,
    addresses: Iterable[str],
    topic_id: int | None,
    include_unsubscribes: bool,
    channel: str = "email",
) -> dict[str, str]:
    """{normalised address: reason} for the addresses that must be skipped, e.g. "unsubscribed from Tips"."""
    wanted = sorted({normalize_address(a) for a in addresses if a and a.strip()})
    if not wanted:
        return {}
    sql = SUPPRESSED_SQL + (f"UNION ALL {UNSUBSCRIBED_SQL}" if include_unsubscribes else "")
    with connection.cursor() as cur:
        cur.execute(
            f"{sql} ORDER BY rank DESC",
            {"tenant": tenant_id, "addresses": wanted, "topic": topic_id, "channel": channel},
        )
        rows = cur.fetchall()
    reasons: dict[str, str] = {}
    for address, rank, what in rows:  # ordered so that a suppression (rank 0) is written last and wins
        reasons[address] = describe(rank, what)
    return reasons


def describe(rank: int, what: str) -> str:
    if rank == 0:
        return f"suppressed ({REASON_LABELS.get(what, what).lower()})"
    return f"unsubscribed from {what}" if what else "unsubscribed from everything"
