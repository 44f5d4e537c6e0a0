"""The registry of step kinds: one mapping drives validation, the builder's menu and dispatch.

Adding a kind is one module under this package plus one line in STEP_KINDS.
"""

from __future__ import annotations

from workflows.steps.base import ConfigError, StepKind
from workflows.steps.branch import Branch
from workflows.steps.condition import Condition
from workflows.steps.data_query import DataQuery
from workflows.steps.database_trigger import DatabaseTrigger
from workflows.steps.digest import Digest
from workflows.steps.http_request import HttpRequest
from workflows.steps.schedule_trigger import ScheduleTrigger
from workflows.steps.send_email import SendEmail
from workflows.steps.slack_message import SlackMessage
from workflows.steps.supabase_auth_email import SupabaseAuthEmailTrigger
from workflows.steps.throttle import Throttle
from workflows.steps.wait import Wait
from workflows.steps.webhook_trigger import WebhookTrigger

# Kind name -> the kind, in the order of the builder's menu (triggers first).
STEP_KINDS: dict[str, StepKind] = {
    kind.kind: kind
    for kind in (
        WebhookTrigger(),
        DatabaseTrigger(),
        ScheduleTrigger(),
        SupabaseAuthEmailTrigger(),
        Wait(),
        Digest(),
        DataQuery(),
        Condition(),
        Branch(),
        Throttle(),
        SendEmail(),
        SlackMessage(),
        HttpRequest(),
    )
}


def get_kind(kind: str) -> StepKind:
    try:
        return STEP_KINDS[kind]
    except KeyError:
        raise ConfigError({"kind": f"Unknown step kind “{kind}”."}) from None


def kind_choices(triggers: bool | None = None) -> list[tuple[str, str]]:
    return [
        (name, kind.label)
        for name, kind in STEP_KINDS.items()
        if triggers is None or kind.is_trigger == triggers
    ]


__all__ = ["STEP_KINDS", "ConfigError", "StepKind", "get_kind", "kind_choices"]
