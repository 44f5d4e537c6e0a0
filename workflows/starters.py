"""Starter workflows made in one click. So far one: Supabase auth emails.

`create_auth_email_starter(tenant, user)` makes an unpublished workflow: the Supabase auth-email trigger,
a branch on the item's `action` with one path per action that carries a token or a link (sign-up,
magic link, recovery, invite, email change, reauthentication), and one email on each path, from the
tenant's default sender (or its first) in the workspace's default layout. Other action types (the
`*_notification` ones) match no path and end there; a path can be added for them in the builder.
"""

from __future__ import annotations

from django.db import transaction

from integrations.models import Sender
from integrations.supabase_hook import ACTIONS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft
from workflows.steps import get_kind

LINK = '<p><a href="{{ item.confirmation_url }}">%s</a></p><p>Or enter this code: <strong>{{ item.code }}</strong></p>'
BODIES: dict[str, str] = {
    "signup": "<p>Welcome! Confirm your email address to finish signing up.</p>" + LINK % "Confirm my email",
    "magiclink": "<p>Here is your link to sign in.</p>" + LINK % "Sign in",
    "recovery": "<p>Someone asked to reset your password. If it was you:</p>"
    + LINK % "Choose a new password",
    "invite": "<p>You have been invited to join.</p>" + LINK % "Accept the invitation",
    "email_change": "<p>Confirm the change of your email address to {{ item.new_email }}.</p>"
    + LINK % "Confirm the change",
    "reauthentication": "<p>Enter this code to confirm it is you: <strong>{{ item.code }}</strong></p>",
}
IGNORED = "<p>If you did not ask for this, you can ignore this email.</p>"
CURRENT_ADDRESS = (
    "<p>Confirm that your email address changes to {{ item.new_email }}.</p>"
    '<p><a href="{{ item.current_confirmation_url }}">Confirm the change</a></p>'
    "<p>Or enter this code: <strong>{{ item.current_code }}</strong></p>"
)


@transaction.atomic
def create_auth_email_starter(tenant, user=None) -> Workflow:
    workflow = Workflow.objects.create(tenant=tenant, name="Supabase auth emails", created_by=user)
    draft = get_or_create_draft(workflow)
    root = _step(draft, None, 0, "supabase_auth_email", {}, "Supabase auth email")
    paths = [
        {
            "id": action,
            "label": label,
            "match": "rule",
            "field": "action",
            "operator": "equals",
            "value": action,
        }
        for action, label in ACTIONS.items()
    ]
    branch = _step(draft, root, 0, "branch", {"paths": paths, "otherwise": False}, "Which email")
    sender = Sender.objects.for_tenant(tenant).order_by("-is_default", "pk").first()
    for position, (action, subject) in enumerate(ACTIONS.items()):
        config = {
            "to": "{{ item.email }}",
            "subject": subject,
            "html": BODIES[action] + IGNORED,
            "sender": sender.pk if sender else None,
        }
        email = _step(draft, branch, position, "send_email", config, subject, path=action)
        if action == "email_change":
            _current_address_email(draft, email, config)
    return workflow


def _current_address_email(draft, after: Step, config: dict) -> None:
    """Secure email change: the current address confirms too (a filter keeps it to such requests)."""
    only_secure = _step(
        draft, after, 0, "condition", {"expression": "item.current_email != ''"}, "Secure email change"
    )
    current = {
        **config,
        "to": "{{ item.current_email }}",
        "subject": "Confirm the change of your email address",
        "html": CURRENT_ADDRESS + IGNORED,
    }
    _step(draft, only_secure, 0, "send_email", current, "To the current address")


def _step(draft, parent, position: int, kind: str, config: dict, name: str, path: str = "") -> Step:
    return Step.objects.create(
        tenant=draft.tenant,
        version=draft,
        parent=parent,
        position=position,
        kind=kind,
        name=name,
        config=get_kind(kind).validate(config, draft.tenant_id),
        path=path,
    )
