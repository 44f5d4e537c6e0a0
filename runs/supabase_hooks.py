"""Supabase's Send Email hook starts a run: `receive_auth_email`, behind `POST /hooks/supabase/<workflow id>/`
(runs/views/supabase_hook.py).

What it answers (Supabase treats anything but 2xx as a failed email and shows the error to the user
signing up; it retries 429 and 503):
- 200 `{"run_id": …}`: accepted; the run is queued and the email is sent by a worker, not before the
  answer (Supabase waits a few seconds at most);
- 400: the body is not the hook's shape (no `user` / `email_data`, no `email_action_type`);
- 401: a missing, bad or stale signature (more than 5 minutes from Rowbell's clock);
- 404: no published workflow with a Supabase auth-email trigger has this id;
- 409: this `webhook-id` was accepted before (a replay): nothing is sent again;
- 413: the body is over WEBHOOK_MAX_BODY_BYTES (the view reads it);
- 503: replays cannot be checked right now (Redis away): Supabase retries.

Exactly once: the run's event key is `supabase:<webhook-id>` (UNIQUE per workflow), and the send goes
through the engine's ledger like every other; remembering the id (Redis, for as long as its timestamp
could pass) only turns a replay into a clear 409 instead of a silent no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.core.cache import cache
from redis.exceptions import RedisError

from integrations.inbound import InboundRejected
from integrations.supabase_hook import auth_email_item, hook_secret, verify
from runs.engine import start_run
from workflows.models import Workflow

KEY_PREFIX = "supabase-hook"
# The library accepts timestamps 5 minutes either side of now: an id is remembered past both edges.
REMEMBER_SECONDS = 11 * 60


@dataclass
class AuthEmailAccepted:
    run_id: int
    event_key: str


def receive_auth_email(workflow: Workflow, body: bytes, headers: Mapping[str, str]) -> AuthEmailAccepted:
    """Start the run of a verified request for `workflow` (from `auth_email_workflow`)."""
    webhook_id = verify(hook_secret(workflow.webhook_secret), body, headers)
    item = auth_email_item(body)
    key = f"supabase:{webhook_id}"
    remembered = _remember(workflow.pk, webhook_id)
    try:
        run = start_run(workflow, item, key)
    except Exception:
        # No run, so Supabase's retry of this request must not be taken for a replay.
        cache.delete(remembered)
        raise
    return AuthEmailAccepted(run.pk, key)


def _remember(workflow_id: int, webhook_id: str) -> str:
    """Remember the id (returns its cache key); InboundRejected(409) when it was accepted before."""
    name = f"{KEY_PREFIX}:{workflow_id}:{webhook_id}"
    try:
        first = cache.add(name, 1, REMEMBER_SECONDS)
    except RedisError:
        raise InboundRejected(
            503, "Rowbell cannot check this request for replays right now: retry shortly."
        ) from None
    if not first:
        raise InboundRejected(
            409, "This webhook-id was already accepted: its email is sent once, and a replay sends nothing."
        )
    return name


def auth_email_workflow(workflow_id: int) -> Workflow:
    """The published workflow whose trigger takes the hook, or InboundRejected(404), looked up before the
    body is read: an unknown id is a 404 whatever was sent."""
    workflow = (
        Workflow.objects.filter(
            pk=workflow_id, status=Workflow.Status.ACTIVE, published_version__isnull=False
        )
        .select_related("published_version")
        .first()
    )
    root = workflow.published_version.root_step() if workflow and workflow.published_version else None
    if workflow is None or root is None or not root.step_kind.receives_auth_email_hook:
        raise InboundRejected(404, "No published workflow with a Supabase auth-email trigger has this id.")
    return workflow
