"""What the workflow commands share: finding a tenant and a workflow from command-line arguments."""

from __future__ import annotations

from django.core.management.base import CommandError

from tenants.models import Tenant
from workflows.models import Workflow


def tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant with the slug “{slug}”.")
    return tenant


def workflow_by_id(workflow_id: int, tenant_slug: str | None = None) -> Workflow:
    """The workflow, without decrypting its webhook secret (a command must work after a key change)."""
    workflows = Workflow.objects.defer("webhook_secret").select_related("tenant", "published_version")
    if tenant_slug:
        workflows = workflows.filter(tenant=tenant_by_slug(tenant_slug))
    workflow = workflows.filter(pk=workflow_id).first()
    if workflow is None:
        where = f" in tenant {tenant_slug}" if tenant_slug else ""
        raise CommandError(f"No workflow {workflow_id}{where}.")
    return workflow
