"""`manage.py trigger_workflow WORKFLOW_ID --payload '{...}' [--event-key K] [--test] [--skip-waits]`."""

from __future__ import annotations

import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from runs.engine import WorkflowNotPublished, start_run
from workflows.models import Workflow
from workflows.publishing import get_draft


class Command(BaseCommand):
    help = "Start a run of a workflow with a JSON payload (the same path as a real event)."

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", type=int)
        parser.add_argument("--payload", default="{}", help="The trigger's item, a JSON object.")
        parser.add_argument("--payload-file", help="Read the payload from this JSON file instead.")
        parser.add_argument("--event-key", help="Idempotency key: the same key never starts two runs.")
        parser.add_argument("--tenant", help="Tenant slug; refuse a workflow of another tenant.")
        parser.add_argument("--test", action="store_true", help="A test run on the draft: messages captured.")
        parser.add_argument("--skip-waits", action="store_true", help="Test runs: waits end at once.")
        parser.add_argument("--override-recipient", help="Test runs: send emails to this address instead.")

    def handle(self, *args, **opts):
        workflow = Workflow.objects.filter(pk=opts["workflow_id"]).first()
        if workflow is None or (opts["tenant"] and workflow.tenant.slug != opts["tenant"]):
            raise CommandError(
                f"No workflow {opts['workflow_id']}"
                + (f" in tenant {opts['tenant']}." if opts["tenant"] else ".")
            )
        payload = self._payload(opts)
        version = None
        if opts["test"]:
            version = get_draft(workflow) or workflow.published_version
        options = {}
        if opts["skip_waits"]:
            options["skip_waits"] = True
        if opts["override_recipient"]:
            options["override_recipient"] = opts["override_recipient"]
        key = opts["event_key"] or f"cli:{uuid.uuid4()}"
        try:
            run = start_run(workflow, payload, key, version=version, is_test=opts["test"], options=options)
        except WorkflowNotPublished as exc:
            raise CommandError(f"{exc} Publish it, or use --test to run the draft.") from exc
        self.stdout.write(f"run {run.pk} ({run.status}) event_key={run.event_key}")

    def _payload(self, opts) -> dict:
        try:
            if opts["payload_file"]:
                with open(opts["payload_file"]) as handle:
                    payload = json.load(handle)
            else:
                payload = json.loads(opts["payload"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"The payload is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise CommandError('The payload must be a JSON object, like {"email": "a@example.com"}.')
        return payload
