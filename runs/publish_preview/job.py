"""Starting a publish preview and the RQ job that computes it.

`start_preview(workflow, draft, events=200, by="")` stores a `PublishPreview` (queued, with the draft's
token) and queues `run_preview(preview_id)` on the `low` queue once the transaction commits. The job
claims the row (queued → running: a duplicate job does nothing), rehearses the events on the live
version and on the draft, compares them, measures the blast radius, deletes its rehearsal runs and
stores the result; `done`/`total` say how far it got, for the dialog's progress bar. Whatever goes wrong
is written to the row as a sentence (status failed), never left as a preview that spins forever.
"""

from __future__ import annotations

import logging
import time

import django_rq
from django.conf import settings
from django.db import transaction

from integrations import clock
from integrations.failures import Failure
from runs.engine.outages import REDIS_ERRORS
from runs.publish_preview import rehearsal
from runs.publish_preview.blast import blast_radius
from runs.publish_preview.compare import compare
from runs.publish_preview.events import DEFAULT_EVENTS, recent_events
from runs.publish_preview.outcomes import EventOutcome, read_outcomes
from workflows.models import PublishPreview, Workflow, WorkflowVersion
from workflows.preview_token import draft_token

logger = logging.getLogger(__name__)
JOB = "runs.publish_preview.job.run_preview"


def start_preview(
    workflow: Workflow, draft: WorkflowVersion, events: int = DEFAULT_EVENTS, by: str = ""
) -> PublishPreview:
    preview = PublishPreview.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        draft=draft,
        token=draft_token(draft),
        events=events,
        created_by=by[:200],
    )
    transaction.on_commit(lambda: _enqueue(preview.pk))
    return preview


def _enqueue(preview_id: int) -> None:
    try:
        django_rq.get_queue("low").enqueue(
            JOB,
            preview_id,
            job_id=f"publish-preview-{preview_id}",
            result_ttl=0,
            job_timeout=int(settings.PUBLISH_PREVIEW_SECONDS) + 300,
            description=f"publish preview {preview_id}",
        )
    except REDIS_ERRORS as error:
        PublishPreview.objects.filter(pk=preview_id, status=PublishPreview.Status.QUEUED).update(
            status=PublishPreview.Status.FAILED,
            error=f"The preview could not be queued ({error}); try again in a moment.",
            finished_at=clock.now(),
        )


def run_preview(preview_id: int) -> str:
    """Compute one preview; returns its final status."""
    claimed = PublishPreview.objects.filter(pk=preview_id, status=PublishPreview.Status.QUEUED).update(
        status=PublishPreview.Status.RUNNING
    )
    if not claimed:
        return "not queued"
    preview = PublishPreview.objects.select_related("workflow", "draft", "workflow__tenant").get(
        pk=preview_id
    )
    tag = f"preview-{preview.pk}"
    try:
        result = _compute(preview, tag)
    except Exception as exc:
        logger.exception("Publish preview %s failed", preview_id)
        message = exc.message if isinstance(exc, Failure) else f"The preview failed: {exc}"
        _finish(preview, PublishPreview.Status.FAILED, {}, message)
        return PublishPreview.Status.FAILED
    finally:
        rehearsal.discard(tag, preview.workflow)
    _finish(preview, PublishPreview.Status.DONE, result, "")
    return PublishPreview.Status.DONE


def _finish(preview: PublishPreview, status: str, result: dict, error: str) -> None:
    PublishPreview.objects.filter(pk=preview.pk).update(
        status=status, result=result, error=error, finished_at=clock.now()
    )


def _progress(preview: PublishPreview, done: int) -> None:
    PublishPreview.objects.filter(pk=preview.pk).update(done=done)


def _compute(preview: PublishPreview, tag: str) -> dict:
    workflow, draft = preview.workflow, preview.draft
    if not draft.is_draft:
        raise Failure(
            "The draft was published or replaced while the preview waited; preview again.", permanent=True
        )
    live = workflow.published_version
    events = recent_events(workflow, preview.events)
    versions = {"after": draft} if live is None else {"before": live, "after": draft}
    PublishPreview.objects.filter(pk=preview.pk).update(total=len(events) * len(versions))
    result: dict = {"requested": preview.events, "events": len(events), "first_version": live is None}
    started = time.monotonic()
    deadline = started + settings.PUBLISH_PREVIEW_SECONDS
    try:
        runs = rehearsal.rehearse(
            workflow, versions, events, tag=tag, deadline=deadline, progress=lambda n: _progress(preview, n)
        )
    except rehearsal.OutOfTime as exc:
        runs = exc.reached
        result["out_of_time"] = (
            f"The preview ran out of its {settings.PUBLISH_PREVIEW_SECONDS:g} s before every event was "
            "replayed: the figures below compare the events it reached. A slow query is the usual cause; "
            "preview fewer events, or make the query faster."
        )
    if "out_of_time" in result:
        events = rehearsal.reached(events, runs)
    after = read_outcomes(runs.get("after", {}))
    before = read_outcomes(runs["before"]) if "before" in runs else {e.run_id: EventOutcome() for e in events}
    result["unfinished"] = rehearsal.unfinished([pk for side in runs.values() for pk in side.values()])
    result.update(
        compare(
            list(live.steps.all()) if live else [],
            list(draft.steps.all()),
            events,
            before,
            after,
            workflow.tenant,
            clock.now(),
        )
    )
    item = events[0].payload if events else {}
    result["blast"] = blast_radius(workflow, draft, item, settings.PUBLISH_PREVIEW_DAYS)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result
