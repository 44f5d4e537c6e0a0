"""What publishing does to a workflow's open digests, said in the publish dialog before it happens.

A bucket keeps the window it opened with (DigestBucket.settings), and the steps of a new version are new
rows, so its items open new buckets: publishing a changed window never moves an open bucket's release.
`digest_window_notes` says so per digest step whose window changes (or that the draft removes) and that
has open buckets: "3 open buckets release under the settings they opened with (per post, 1 hour); items
of runs started after publishing open new ones (per post, 2 hours)".

It lives in runs (it counts buckets) and is drawn by the template tag `{% digest_window_notes workflow
draft %}` (runs/templatetags/digest_publish.py, template runs/_digest_window_notes.html), so any publish
dialog can include it without the workflows app importing runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from runs.models import DigestBucket
from workflows.models import Step, Workflow, WorkflowVersion

# The settings that decide when a bucket releases; a change to the key or an option is not a window change.
WINDOW_SETTINGS = ("window", "amount", "unit", "max_amount", "max_unit", "at", "timezone", "release_at_count")


@dataclass
class DigestWindowNote:
    step_name: str
    open_buckets: int
    old_window: str  # the live version's digest, in the step's summary words
    new_window: str  # "" when the draft removes the step


def digest_window_notes(workflow: Workflow, draft: WorkflowVersion | None) -> list[DigestWindowNote]:
    """One note per digest step (matched by Step.key) whose window the draft changes or removes and
    that has open buckets in any earlier version."""
    live = workflow.published_version
    if draft is None or live is None:
        return []
    old = {s.key: s for s in live.steps.filter(kind="digest")}
    if not old:
        return []
    new = {s.key: s for s in draft.steps.filter(kind="digest")}
    changed = [key for key, step in old.items() if key not in new or _window(new[key]) != _window(step)]
    if not changed:
        return []
    open_counts = dict(
        DigestBucket.objects.filter(
            tenant_id=workflow.tenant_id,
            step__version__workflow=workflow,
            step__key__in=changed,
            released_at__isnull=True,
        )
        .values_list("step__key")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        DigestWindowNote(
            step_name=(new.get(key) or old[key]).display_name,
            open_buckets=open_counts[key],
            old_window=_summary(old[key]),
            new_window=_summary(new[key]) if key in new else "",
        )
        for key in changed
        if open_counts.get(key)
    ]


def _window(step: Step) -> dict:
    config = step.config or {}
    return {name: config.get(name) for name in WINDOW_SETTINGS}


def _summary(step: Step) -> str:
    return step.step_kind.summary(step.config or {})
