"""`manage.py export_workflow WORKFLOW_ID [--number N] [-o FILE]`: the step tree as JSON (docs/workflow-format.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from workflows.files import WorkflowFileError, export_workflow
from workflows.models import Workflow


class Command(BaseCommand):
    help = "Write a workflow's step tree as JSON (the published version unless --number is given)."

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--number", type=int, help="A published version number (default: the live one).")
        parser.add_argument("-o", "--output", help="Write to this file instead of standard output.")

    def handle(self, *args, workflow_id: int, number: int | None, output: str | None, **options):
        # The webhook secret is not exported: not loading it means not decrypting it, so a file can still be
        # written after ENCRYPTION_KEYS changed.
        workflow = Workflow.objects.defer("webhook_secret").filter(pk=workflow_id).first()
        if workflow is None:
            raise CommandError(f"No workflow {workflow_id}.")
        chosen = None
        if number is not None:
            chosen = workflow.versions.filter(number=number).first()
            if chosen is None:
                raise CommandError(f"“{workflow}” has no version {number}.")
        try:
            text = json.dumps(export_workflow(workflow, chosen), indent=2, ensure_ascii=False) + "\n"
        except WorkflowFileError as exc:
            raise CommandError(str(exc)) from exc
        if output:
            with open(output, "w") as handle:
                handle.write(text)
            self.stderr.write(f"Wrote {output}")
        else:
            self.stdout.write(text, ending="")
