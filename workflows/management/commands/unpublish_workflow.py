"""`manage.py unpublish_workflow WORKFLOW_ID [--tenant SLUG]`: stop new events; runs in flight finish."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from workflows.management.commands._lookup import workflow_by_id
from workflows.publishing import unpublish
from workflows.steps.base import PublishError


def publish_error_text(exc: PublishError) -> str:
    return " ".join(message for fields in exc.step_errors.values() for message in fields.values())


class Command(BaseCommand):
    help = "Unpublish a workflow: its trigger is removed (database triggers too); runs in flight finish."

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--tenant", help="Refuse unless the workflow is this tenant's (its slug).")

    def handle(self, *args, workflow_id: int, tenant: str | None, **options):
        workflow = workflow_by_id(workflow_id, tenant)
        if workflow.published_version is None:
            self.stdout.write(f"workflow {workflow.pk} “{workflow.name}” is not published: nothing to do")
            return
        number = workflow.published_version.number
        try:
            unpublish(workflow)
        except PublishError as exc:
            raise CommandError(f"Still published: {publish_error_text(exc)}") from exc
        self.stdout.write(f"workflow {workflow.pk} “{workflow.name}” unpublished (it ran version {number})")
