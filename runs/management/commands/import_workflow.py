"""`manage.py import_workflow FILE --tenant SLUG [--publish] [--sandbox] [--into WORKFLOW_ID]`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from workflows.files import WorkflowFileError, import_workflow
from workflows.models import Workflow
from workflows.steps.base import PublishError


class Command(BaseCommand):
    help = "Create a workflow (or replace a workflow's draft) from a JSON file; optionally publish it."

    def add_arguments(self, parser):
        parser.add_argument("file", help="A file written by export_workflow ('-' for standard input).")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--publish", action="store_true", help="Publish the imported draft.")
        parser.add_argument("--sandbox", action="store_true", help="Publish in sandbox mode (messages held).")
        parser.add_argument(
            "--into", type=int, help="Replace the draft of this workflow instead of creating one."
        )

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug “{opts['tenant']}”.")
        target = None
        if opts["into"]:
            target = Workflow.objects.for_tenant(tenant).filter(pk=opts["into"]).first()
            if target is None:
                raise CommandError(f"Tenant {tenant.slug} has no workflow {opts['into']}.")
        try:
            if opts["file"] == "-":
                data = json.load(self.stdin if hasattr(self, "stdin") else __import__("sys").stdin)
            else:
                with open(opts["file"]) as handle:
                    data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {opts['file']}: {exc}") from exc
        try:
            workflow = import_workflow(
                data, tenant, workflow=target, publish_it=opts["publish"], sandbox=opts["sandbox"]
            )
        except WorkflowFileError as exc:
            raise CommandError(f"Nothing was imported; fix these first:\n{exc}") from exc
        except PublishError as exc:  # the workflow as a whole (its steps' errors come as WorkflowFileError)
            reasons = "; ".join(message for fields in exc.step_errors.values() for message in fields.values())
            raise CommandError(f"Nothing was imported: it cannot be published: {reasons}") from exc
        state = (
            f"published as version {workflow.published_version.number}"
            if opts["publish"] and workflow.published_version
            else "saved as a draft"
        )
        self.stdout.write(f"workflow {workflow.pk} “{workflow.name}” {state}")
