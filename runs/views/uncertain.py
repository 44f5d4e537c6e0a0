"""The run page's message summary: messages by status, uncertain ones in their own colour and listed with
what a person can do about them (runs/views/actions.py `resolve`). Two queries per page view."""

from __future__ import annotations

from django.db.models import Count

from runs.models import Delivery, Run

# The order statuses are shown in; uncertain right after sent, because it is the one that needs a person.
MESSAGE_ORDER = ("sent", "uncertain", "sending", "failed", "skipped", "held", "captured", "discarded")
UNCERTAIN_LISTED = 50


def message_summary(run: Run) -> dict:
    counts = dict(run.deliveries.values_list("status").annotate(n=Count("id")).order_by())
    uncertain = []
    if counts.get(Delivery.Status.UNCERTAIN):
        uncertain = list(
            run.deliveries.filter(status=Delivery.Status.UNCERTAIN)
            .select_related("step_execution__step")
            .order_by("id")[:UNCERTAIN_LISTED]
        )
    return {
        "message_counts": [(status, counts[status]) for status in MESSAGE_ORDER if counts.get(status)],
        "uncertain_messages": uncertain,
        "uncertain_total": counts.get(Delivery.Status.UNCERTAIN, 0),
    }
