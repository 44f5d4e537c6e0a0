"""A frequency budget per recipient, across every workflow of a tenant (issue #23, item 4).

The tenant's limits (tenants.limits: `frequency_budget_messages` per `frequency_budget_hours`; 0 messages
= off) say how many emails one address may get in a sliding window. The send path asks here, in the same
place as consent and suppressions (SendEmail.skip_reasons, once per batch), before anything is sent.

What counts: every message of a send email step, unless its topic is transactional
(consent.Topic.transactional) or the step says it is exempt (`over_budget: exempt`, for transactional
mail without a topic). A message without a topic counts.

Priority decides which message wins, by how much of the budget it may use:
- low: at most half the budget (rounded down, at least 1), so low-priority mail always leaves room
  for the rest;
- normal: the whole budget;
- high: sent even when the budget is used up (still counted, so it crowds out later normal mail).

Over the budget, the step's policy says what happens: "drop" skips the message with the reason
("over the recipient's budget: 3 of 3 in 24 h"), "defer" holds it until the oldest counted message that
stands in its way leaves the window, and it is checked again then.

Counters are rows in PostgreSQL (workflows.BudgetCount), one per counted message, unique by execution:
a retried or reclaimed execution finds its row and counts nothing twice. A transaction-scoped advisory
lock per recipient keeps two workers from both taking the last place. Test runs and previews take
nothing: they say what would happen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from tenants.limits import limits_for

if TYPE_CHECKING:
    from workflows.steps.context import StepContext

PRIORITIES = (
    ("low", "low: uses at most half the budget"),
    ("normal", "normal: uses the whole budget"),
    ("high", "high: sent even over the budget (still counted)"),
)
OVER_BUDGET_POLICIES = (
    ("drop", "drop it (skipped with the reason)"),
    ("defer", "defer it until the budget has room"),
    ("exempt", "exempt: transactional, never counted"),
)
LOCK_RECIPIENTS = (
    "SELECT pg_advisory_xact_lock(k) FROM "
    "(SELECT hashtextextended('budget:' || %s || ':' || r, 0) AS k FROM unnest(%s::text[]) AS r ORDER BY 1) AS s"
)


class OverBudget(str):
    """A skip reason for a message over its recipient's budget; `until` set: hold it until then instead."""

    until: datetime | None = None

    @classmethod
    def held_until(cls, reason: str, until: datetime | None) -> OverBudget:
        made = cls(reason)
        made.until = until
        return made


def normalised(address: str) -> str:
    return address.strip().lower()


def low_share(limit: int) -> int:
    return max(1, limit // 2)


def allowance(priority: str, limit: int) -> int | None:
    """How many counted messages may stand before this one; None: no cap (high priority)."""
    if priority == "high":
        return None
    return low_share(limit) if priority == "low" else limit


def exempt(ctx: StepContext, config: dict[str, Any]) -> bool:
    if config.get("over_budget") == "exempt":
        return True
    topic = config.get("topic")
    if not topic:
        return False
    cache = ctx.resources.cache
    key = ("topic_transactional", topic)
    if key not in cache:
        from consent.models import Topic

        cache[key] = Topic.objects.filter(pk=topic, tenant_id=ctx.run.tenant_id, transactional=True).exists()
    return bool(cache[key])


def over_budget(ctx: StepContext, addresses: dict[int, str]) -> dict[int, tuple[str, str]]:
    """{key: (address, OverBudget reason)} for the messages of a batch over their recipient's budget,
    counting the others (keys are execution ids; a test run or preview counts nothing)."""
    config = ctx.step.config
    limits = limits_for(ctx.run.tenant_id)
    if not addresses or limits.frequency_budget_messages <= 0 or exempt(ctx, config):
        return {}
    window = timedelta(hours=max(1, limits.frequency_budget_hours))
    with transaction.atomic():
        return _decide(ctx, config, addresses, limits.frequency_budget_messages, window)


def _decide(
    ctx: StepContext, config: dict[str, Any], addresses: dict[int, str], limit: int, window: timedelta
) -> dict[int, tuple[str, str]]:
    from workflows.models import BudgetCount

    tenant_id = ctx.run.tenant_id
    take = not ctx.run.is_test
    priority = config.get("priority") or "normal"
    recipients = sorted({normalised(address) for address in addresses.values()})
    counted: set[int] = set()
    if take:
        counted = set(
            BudgetCount.objects.filter(execution_id__in=list(addresses)).values_list(
                "execution_id", flat=True
            )
        )
        with connection.cursor() as cursor:
            cursor.execute(LOCK_RECIPIENTS, [str(tenant_id), recipients])
    times: dict[str, list[datetime]] = {recipient: [] for recipient in recipients}
    rows = BudgetCount.objects.filter(
        tenant_id=tenant_id, recipient__in=recipients, counted_at__gt=ctx.now - window
    ).order_by("counted_at")
    for recipient, counted_at in rows.values_list("recipient", "counted_at"):
        times[recipient].append(counted_at)
    skips: dict[int, tuple[str, str]] = {}
    new: list[BudgetCount] = []
    for key, address in addresses.items():
        if key in counted:
            continue  # a retry of a message already counted: it keeps its place
        recipient = normalised(address)
        used = times[recipient]
        cap = allowance(priority, limit)
        if cap is not None and len(used) >= cap:
            skips[key] = (address, _reason(config, priority, limit, cap, used, window))
            continue
        used.append(ctx.now)
        if take:
            new.append(
                BudgetCount(
                    tenant_id=tenant_id,
                    recipient=recipient,
                    counted_at=ctx.now,
                    execution_id=key,
                    priority=priority,
                )
            )
    BudgetCount.objects.bulk_create(new, ignore_conflicts=True)
    return skips


def _reason(
    config: dict[str, Any], priority: str, limit: int, cap: int, used: list[datetime], window: timedelta
) -> OverBudget:
    hours = int(window.total_seconds() // 3600)
    said = f"over the recipient's budget: {len(used)} of {limit} in {hours} h"
    if priority == "low":
        said += f" (low priority uses at most {cap})"
    # Room for this message when the counted message at (used - cap) leaves the window.
    room_at = used[len(used) - cap] + window
    if config.get("over_budget") == "defer":
        return OverBudget.held_until(f"{said}; deferred to {room_at:%Y-%m-%d %H:%M}Z", room_at)
    return OverBudget.held_until(said, None)
