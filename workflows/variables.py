"""What the builder knows about the items at a step: the fields the steps above it produce.

Each kind says what it adds (`StepKind.output_fields`): a trigger its table's columns or sample's keys,
a data query the columns PostgreSQL describes for its SQL.
"""

from __future__ import annotations

from workflows.models import Step
from workflows.steps import ConfigError, get_kind


def ancestors(step: Step, steps_by_id: dict[int, Step]) -> list[Step]:
    """The steps above `step`, root first."""
    chain = []
    current = steps_by_id.get(step.parent_id) if step.parent_id else None
    while current is not None:
        chain.append(current)
        current = steps_by_id.get(current.parent_id) if current.parent_id else None
    return list(reversed(chain))


def fields_after(step: Step, input_fields: list[str]) -> list[str]:
    try:
        return get_kind(step.kind).output_fields(step, input_fields)
    except (ConfigError, KeyError, TypeError, ValueError):
        return input_fields


def available_fields(step: Step, steps_by_id: dict[int, Step]) -> list[str]:
    """Item fields a template at `step` can use (the trigger's columns, data queries' columns above)."""
    fields: list[str] = []
    for above in ancestors(step, steps_by_id):
        fields = fields_after(above, fields)
    return fields
