"""The registry of step kinds: one mapping drives validation, the builder's menu and dispatch.

Adding a kind is one module under this package plus one line in KIND_MODULES.
"""

from __future__ import annotations

import importlib

from workflows.steps.base import ConfigError, StepKind

KIND_MODULES = [
    "workflows.steps.webhook_trigger",
    "workflows.steps.database_trigger",
    "workflows.steps.schedule_trigger",
    "workflows.steps.wait",
    "workflows.steps.data_query",
    "workflows.steps.condition",
    "workflows.steps.branch",
    "workflows.steps.send_email",
    "workflows.steps.slack_message",
    "workflows.steps.http_request",
]

STEP_KINDS: dict[str, StepKind] = {}


def register(cls: type[StepKind]) -> type[StepKind]:
    STEP_KINDS[cls.kind] = cls()
    return cls


def load_kinds() -> None:
    for module in KIND_MODULES:
        importlib.import_module(module)


def get_kind(kind: str) -> StepKind:
    # Not "if not STEP_KINDS": importing one kind's module directly registers only that kind.
    if kind not in STEP_KINDS:
        load_kinds()
    try:
        return STEP_KINDS[kind]
    except KeyError:
        raise ConfigError({"kind": f"Unknown step kind “{kind}”."}) from None


def kind_choices(triggers: bool | None = None) -> list[tuple[str, str]]:
    load_kinds()
    return [
        (name, kind.label)
        for name, kind in STEP_KINDS.items()
        if triggers is None or kind.is_trigger == triggers
    ]


__all__ = ["STEP_KINDS", "ConfigError", "StepKind", "get_kind", "kind_choices", "load_kinds", "register"]
