"""A digest's "read the rows again at release": each item's source row (its run's database-trigger row)
is read again, all of a bucket's rows in one batched SELECT by primary key (workflows/steps/row_reread.py,
read-only like every query to a customer's database), and an item whose row is gone, or no longer
matches `still_matches`, is left out of the digest with its reason. An item that is the trigger's row
itself goes on as the row is now (as the wait's re-read does).
"""

from __future__ import annotations

from typing import Any

from integrations.failures import Failure
from integrations.templating import TemplateError, evaluate
from workflows.steps.context import StepContext
from workflows.steps.row_reread import reread_rows

ROW_DELETED = "row deleted"


def judge_entries(
    ctx: StepContext, still_matches: str, entries: list[Any]
) -> list[tuple[dict[str, Any] | None, str]]:
    """For each entry (runs/engine/digest.py `ReleasedEntry`: item, payload, own_row), in order: the item to carry (None: drop it) and why it was dropped."""
    rows = reread_rows(ctx, [entry.payload for entry in entries], label="Digest")
    return [_verdict(ctx, still_matches, entry, row) for entry, row in zip(entries, rows, strict=True)]


def _verdict(
    ctx: StepContext, still_matches: str, entry: Any, row: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    if row is None:
        return None, ROW_DELETED
    current = {**entry.item, **row} if entry.own_row else entry.item
    if still_matches:
        try:
            matches = evaluate(still_matches, {"item": current, "row": row, "run": ctx.run_context})
        except TemplateError as exc:
            raise Failure(f"Digest: the condition on the row: {exc}", permanent=True) from exc
        if not matches:
            return None, f"row no longer matches: {still_matches}"
    return current, ""
