"""The token that binds a publish to the preview it was checked with: a hash of the draft's content.

The hash covers what the draft does (each step's key, parent, position, path, kind, name and settings),
not ids or revision counters, so the same draft always has the same token and any edit changes it. The
publish dialog and the REST API hand the token of a finished preview back when publishing; a draft that
changed since is refused with `StalePreview`, and the person previews again.
"""

from __future__ import annotations

import hashlib
import json

from workflows.models import PublishPreview, Workflow, WorkflowVersion
from workflows.steps.base import PublishError

STALE = "The draft changed after this preview: preview it again, then publish."
MISSING = "Preview the draft first: publishing needs the token of a finished preview of this draft."


class StalePreview(PublishError):
    """The token names no finished preview of the draft as it is now."""

    def __init__(self, message: str):
        super().__init__({None: {"preview": message}})
        self.message = message


def draft_token(version: WorkflowVersion) -> str:
    """sha256 of the version's steps in a canonical form (step keys instead of ids)."""
    steps = list(version.steps.values("id", "key", "parent_id", "position", "path", "kind", "name", "config"))
    keys = {s["id"]: str(s["key"]) for s in steps}
    shape = sorted(
        (
            str(s["key"]),
            keys.get(s["parent_id"], ""),
            s["position"],
            s["path"],
            s["kind"],
            s["name"],
            json.dumps(s["config"], sort_keys=True, default=str),
        )
        for s in steps
    )
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def check_token(workflow: Workflow, draft: WorkflowVersion, token: str) -> PublishPreview:
    """The finished preview `token` names, when it is the draft's current token; else StalePreview."""
    token = (token or "").strip()
    if not token:
        raise StalePreview(MISSING)
    if token != draft_token(draft):
        raise StalePreview(STALE)
    preview = (
        PublishPreview.objects.filter(
            workflow=workflow, draft=draft, token=token, status=PublishPreview.Status.DONE
        )
        .order_by("-id")
        .first()
    )
    if preview is None:
        raise StalePreview(MISSING)
    return preview
