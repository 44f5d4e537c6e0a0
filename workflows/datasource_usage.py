"""Which published workflows use a data source: what makes deleting it unsafe, and what its page lists."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import F, Q

from integrations.models import DataSource
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import STEP_KINDS
from workflows.steps.references import DataSourceField


def datasource_step_kinds() -> list[str]:
    """Step kinds with a data-source field (today the database trigger and the data query).

    Read from the kinds' forms, so a new kind that reads a data source is counted without a change here.
    """

    return sorted(
        name
        for name, kind in STEP_KINDS.items()
        if any(isinstance(field, DataSourceField) for field in kind.form_class.base_fields.values())
    )


def published_workflows_using(source: DataSource) -> list[Workflow]:
    """Workflows whose published version has a step pointing at `source`, by name.

    Only the published version counts: a draft or an old version does nothing in the customer's database
    and can be pointed elsewhere before it is published.
    """
    # The builder stores the id as a number; an imported or API-written config may hold it as a string.
    points_at_source = Q(config__datasource=source.pk) | Q(config__datasource=str(source.pk))
    workflow_ids = Step.objects.filter(
        points_at_source,
        tenant_id=source.tenant_id,
        kind__in=datasource_step_kinds(),
        version__workflow__published_version=F("version"),
    ).values("version__workflow_id")
    return list(Workflow.objects.filter(pk__in=workflow_ids).order_by("name", "pk"))


def delete_unless_used(source: DataSource) -> list[Workflow]:
    """Delete `source` unless published workflows use it; returns those workflows (empty: deleted).

    The row lock makes the check and the delete one step against publishing, which holds a share lock on
    the data sources it installs on (`lock_datasources_of`): a publish in flight finishes first and is
    then seen by the check, and a publish that starts later waits and finds the source gone.
    """
    with transaction.atomic():
        if not DataSource.objects.select_for_update().filter(pk=source.pk).exists():
            return []  # deleted meanwhile by someone else: the outcome asked for
        used_by = published_workflows_using(source)
        if not used_by:
            source.delete()
    return used_by


def lock_datasources_of(version: WorkflowVersion) -> dict[int | None, dict[str, str]]:
    """Share-lock the data sources the version's steps point at, until the transaction ends, so none is
    deleted while publishing installs on it. Returns field errors for steps whose source is gone (or was
    never this tenant's)."""
    steps = [step for step in version.steps.filter(kind__in=datasource_step_kinds())]
    wanted = {step.id: _datasource_id(step) for step in steps}
    ids = sorted({pk for pk in wanted.values() if pk is not None})
    with connection.cursor() as cursor:
        # FOR KEY SHARE: blocks a DELETE, not an edit of the source's name or URL, nor other publishes.
        cursor.execute(
            f"SELECT id FROM {DataSource._meta.db_table} WHERE tenant_id = %s AND id = ANY(%s) "
            "ORDER BY id FOR KEY SHARE",
            [version.tenant_id, ids],
        )
        present = {row[0] for row in cursor.fetchall()}
    return {
        step_id: {"datasource": "This data source does not exist (any more): choose another one."}
        for step_id, pk in wanted.items()
        if pk is not None and pk not in present
    }


def _datasource_id(step: Step) -> int | None:
    try:
        return int(step.config.get("datasource"))
    except (TypeError, ValueError):
        return None
