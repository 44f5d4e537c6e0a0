"""Supabase auth emails: a trigger started by Supabase's Send Email hook.

Supabase Auth calls `POST /hooks/supabase/<workflow id>/` for every sign-up confirmation, magic link,
password recovery, invite, email change and reauthentication code, instead of sending the email itself
(runs/supabase_hooks.py verifies and answers; integrations/supabase_hook.py builds the item). The item:

    {"action": "signup" | "magiclink" | "recovery" | "invite" | "email_change" | "reauthentication" | …,
     "email": "<who gets it>", "new_email": "<an email change's new address>",
     "user": {<Supabase's user object: id, email, user_metadata, …>},
     "token": "<6-digit code>", "token_hash": …, "redirect_to": …, "site_url": …,
     "token_new": …, "token_hash_new": …,
     "code": "<the code to type>",
     "confirmation_url": "<site_url>/verify?token=<token_hash>&type=<action>&redirect_to=<redirect_to>",
     "current_email", "current_code", "current_confirmation_url": <an email change's second email, with
     Secure email change on; empty otherwise> }
(integrations/supabase_hook.auth_email_item says which token goes where: Supabase's names are historical.)

The run's event key is `supabase:<webhook-id>`, so one hook request sends once. The starter workflow
(workflows/starters.py) branches on `action` with one email per action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.supabase_hook import TOKEN_FIELDS, as_json, auth_email_item, sample_body
from workflows.steps.base import StepKind
from workflows.steps.common import run_label_field
from workflows.steps.forms import StepForm, StepSettings

if TYPE_CHECKING:
    from workflows.models import Step


def hook_path(workflow_id: int) -> str:
    """The path Supabase's hook calls (prefix it with the site's origin)."""
    return f"/hooks/supabase/{int(workflow_id)}/"


@dataclass
class AuthEmailSettings(StepSettings):
    omitted_when_empty = ("run_label",)

    run_label: str = ""


class AuthEmailForm(StepForm):
    settings_class = AuthEmailSettings

    run_label = run_label_field()


class SupabaseAuthEmailTrigger(StepKind):
    kind = "supabase_auth_email"
    label = "Supabase auth email"
    description = (
        "Starts a run when Supabase Auth asks for an email (sign-up, magic link, recovery, invite, "
        "email change, reauthentication) through its Send Email hook."
    )
    is_trigger = True
    receives_auth_email_hook = True
    form_class = AuthEmailForm

    def default_config(self) -> dict[str, Any]:
        return {}

    def summary(self, config: dict[str, Any]) -> str:
        return "when Supabase Auth sends an email"

    def node_summary(self, step: Step) -> str:
        return f"Send Email hook: POST {hook_path(step.version.workflow_id)}"

    def sample_item(self, config: dict[str, Any]) -> dict[str, Any]:
        return auth_email_item(as_json(sample_body()))

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
        return [
            "action",
            "email",
            "new_email",
            "user",
            *TOKEN_FIELDS,
            "code",
            "confirmation_url",
            "current_email",
            "current_code",
            "current_confirmation_url",
        ]
