"""`manage.py list_workflows [--tenant SLUG] [--archived | --all]`: id, tenant, state, trigger and name."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from workflows.management.commands._lookup import tenant_by_slug
from workflows.models import Step, Workflow
from workflows.steps import ConfigError, get_kind


class Command(BaseCommand):
    help = "List workflows: id, tenant, published version (or draft), trigger and name."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's (its slug).")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--archived", action="store_true", help="Only archived workflows.")
        group.add_argument("--all", action="store_true", help="Active and archived workflows.")

    def handle(self, *args, tenant: str | None, archived: bool, all: bool, **options):
        found = Workflow.objects.defer("webhook_secret").select_related("tenant", "published_version")
        if tenant:
            found = found.filter(tenant=tenant_by_slug(tenant))
        if not all:
            status = Workflow.Status.ARCHIVED if archived else Workflow.Status.ACTIVE
            found = found.filter(status=status)
        workflows = list(found.order_by("tenant__slug", "name", "id"))
        triggers = _trigger_kinds(workflows)
        rows = [("ID", "TENANT", "STATE", "TRIGGER", "NAME")]
        for workflow in workflows:
            if workflow.status == Workflow.Status.ARCHIVED:
                state = "archived"
            elif workflow.published_version is not None:
                state = f"live v{workflow.published_version.number}"
                state += " (sandbox)" if workflow.published_version.sandbox else ""
            else:
                state = "draft"
            rows.append(
                (str(workflow.pk), workflow.tenant.slug, state, triggers.get(workflow.pk, "-"), workflow.name)
            )
        if len(rows) == 1:
            self.stdout.write("No workflows.")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + row[4]
            )


def _trigger_kinds(workflows: list[Workflow]) -> dict[int, str]:
    """Each workflow's trigger, in words: the live version's, else the newest version's."""
    roots = Step.objects.filter(version__workflow__in=workflows, parent__isnull=True).order_by(
        "version__workflow_id", "-version__created_at", "position", "id"
    )
    live = {w.pk: w.published_version_id for w in workflows}
    kinds: dict[int, str] = {}
    for root in roots.values("version__workflow_id", "version_id", "kind"):
        workflow_id = root["version__workflow_id"]
        if workflow_id in kinds and root["version_id"] != live.get(workflow_id):
            continue
        try:
            kinds[workflow_id] = get_kind(root["kind"]).label
        except ConfigError:
            kinds[workflow_id] = root["kind"]
    return kinds
