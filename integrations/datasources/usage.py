"""Which published workflows use a data source: what makes deleting it unsafe, and what its page lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import F, Q

if TYPE_CHECKING:
    from integrations.models import DataSource
    from workflows.models import Workflow


def datasource_step_kinds() -> list[str]:
    """Step kinds with a data-source field (today the database trigger and the data query).

    Read from the kinds' field lists, so a new kind that reads a data source is counted without a change here.
    """
    from workflows.steps import STEP_KINDS, load_kinds

    load_kinds()
    return sorted(
        name
        for name, kind in STEP_KINDS.items()
        if any(field.widget == "datasource" for field in kind.fields)
    )


def published_workflows_using(source: DataSource) -> list[Workflow]:
    """Workflows whose published version has a step pointing at `source`, by name.

    Only the published version counts: a draft or an old version does nothing in the customer's database
    and can be pointed elsewhere before it is published.
    """
    from workflows.models import Step, Workflow

    # The builder stores the id as a number; an imported or API-written config may hold it as a string.
    points_at_source = Q(config__datasource=source.pk) | Q(config__datasource=str(source.pk))
    workflow_ids = Step.objects.filter(
        points_at_source,
        tenant_id=source.tenant_id,
        kind__in=datasource_step_kinds(),
        version__workflow__published_version=F("version"),
    ).values("version__workflow_id")
    return list(Workflow.objects.filter(pk__in=workflow_ids).order_by("name", "pk"))
