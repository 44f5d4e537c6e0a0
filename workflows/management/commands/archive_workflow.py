"""`manage.py archive_workflow WORKFLOW_ID [--tenant SLUG]`: unpublish, then archive (or delete one that
never ran), exactly as the workflow list's "Archive" does."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from workflows.management.commands._lookup import workflow_by_id
from workflows.management.commands.unpublish_workflow import publish_error_text
from workflows.models import Workflow
from workflows.publishing import archive_or_delete
from workflows.steps.base import PublishError


class Command(BaseCommand):
    help = "Archive a workflow (unpublishing it first); one that never ran is deleted, like in the web UI."

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--tenant", help="Refuse unless the workflow is this tenant's (its slug).")

    def handle(self, *args, workflow_id: int, tenant: str | None, **options):
        workflow = workflow_by_id(workflow_id, tenant)
        if workflow.status == Workflow.Status.ARCHIVED:
            self.stdout.write(f"workflow {workflow.pk} “{workflow.name}” is archived already")
            return
        name, pk = workflow.name, workflow.pk
        try:
            outcome = archive_or_delete(workflow)
        except PublishError as exc:
            raise CommandError(
                f"Not archived: it could not be unpublished: {publish_error_text(exc)}"
            ) from exc
        reason = " (it never ran)" if outcome == "deleted" else ""
        self.stdout.write(f"workflow {pk} “{name}” {outcome}{reason}")
