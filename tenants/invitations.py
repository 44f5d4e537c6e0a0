"""Invitations: issue one (replacing the address's open one), email its link, accept it exactly once, and
revoke the links a removed member held or sent. The views in tenants/views.py call these."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from tenants.audit import record
from tenants.models import Invitation, Membership, Tenant, hash_invitation_token

logger = logging.getLogger(__name__)


class InvitationRefused(Exception):
    """Why this invitation cannot be accepted here and now, in words for the person holding the link."""


@dataclass
class Unusable:
    """What the link's page says when the link no longer works."""

    title: str
    message: str
    status: int


def find_by_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("tenant", "invited_by")
        .filter(token_hash=hash_invitation_token(token))
        .first()
    )


def why_unusable(invitation: Invitation | None) -> Unusable | None:
    """None when the link can be accepted now; otherwise the page to show instead."""
    if invitation is None:
        return Unusable(
            "This invitation link is not valid",
            "Check that you opened the whole link from the email, or ask the team for a new invitation.",
            404,
        )
    team = invitation.tenant.name
    state = invitation.state()
    if state == "accepted":
        return Unusable(
            "This invitation has already been used",
            f"Each invitation link works once. If you joined {team} with it, sign in; otherwise ask an admin "
            f"of {team} to invite you again.",
            410,
        )
    if state == "revoked":
        return Unusable(
            "This invitation was withdrawn",
            f"An admin of {team} revoked it or sent a newer one. Ask them to invite you again.",
            410,
        )
    if state == "expired":
        return Unusable(
            "This invitation has expired",
            f"It was valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Ask an admin of {team} to invite "
            "you again.",
            410,
        )
    return None


def existing_member(tenant: Tenant, email: str) -> Membership | None:
    return (
        Membership.objects.filter(tenant=tenant, user__email__iexact=email.strip())
        .select_related("user")
        .first()
    )


def invite(tenant: Tenant, inviter, email: str, role: str) -> tuple[Invitation, str, int]:
    """A new invitation for `email` (revoking the address's open one: one live link per address); the
    row, the link's token and how many were replaced. IntegrityError when a parallel invite won."""
    with transaction.atomic():
        replaced = 0
        for old in (
            Invitation.objects.for_tenant(tenant).open().filter(email__iexact=email).select_for_update()
        ):
            replaced += old.revoke()
        invitation, token = Invitation.issue(tenant, email, role, invited_by=inviter)
        record(tenant, inviter, "invitation.created", invitation, role=role, replaced=replaced)
    return invitation, token, replaced


def email_link(request: HttpRequest, invitation: Invitation, token: str) -> str:
    """Send the link; "" when sent, else why not (the invitation stays pending and can be sent again)."""
    link = request.build_absolute_uri(reverse("tenants:accept_invite", args=[token]))
    days = max(1, round((invitation.expires_at - timezone.now()).total_seconds() / 86400))
    tenant = invitation.tenant
    try:
        send_mail(
            f"{request.user.get_username()} invited you to {tenant.name} on Rowbell",
            f"You are invited to join {tenant.name} as {invitation.role}.\n\n"
            f"Join here (the link works once, for {invitation.email}, for {days} days):\n{link}\n",
            None,
            [invitation.email],
        )
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("Invitation email to %s failed: %s", invitation.email, exc)
        return str(exc) or exc.__class__.__name__
    return ""


def revoke(invitation: Invitation, actor) -> bool:
    if not invitation.revoke():
        return False
    record(invitation.tenant, actor, "invitation.revoked", invitation)
    return True


def revoke_links_of(tenant: Tenant, user) -> int:
    """A member is leaving: the open links addressed to them, and those they sent, stop working."""
    held_or_sent = Q(invited_by=user)
    if user.email:
        held_or_sent |= Q(email__iexact=user.email)
    now = timezone.now()
    return Invitation.objects.filter(tenant=tenant).open().filter(held_or_sent).update(revoked_at=now)


def refusal_for(invitation: Invitation, user) -> str:
    """Why the signed-in `user` cannot accept ("" when they can): the account that accepts has the
    invited address, or has none yet and takes it."""
    tenant = invitation.tenant
    if Membership.objects.filter(user=user, tenant=tenant).exists():
        return f"You are already a member of {tenant.name}."
    if user.email and not invitation.addressed_to(user.email):
        return (
            f"This invitation is for {invitation.email}, and you are signed in as {user.get_username()} "
            f"({user.email}). Sign out and open the link again to join with an account for {invitation.email}, "
            f"or ask an admin of {tenant.name} to invite {user.email}."
        )
    if not user.email and _address_taken(invitation.email, but=user):
        return (
            f"This invitation is for {invitation.email}, which another account uses. Sign in with that "
            "account to accept it."
        )
    return ""


def _address_taken(email: str, but) -> bool:
    return get_user_model().objects.filter(email__iexact=email).exclude(pk=but.pk).exists()


def accept_as(invitation: Invitation, user) -> Membership:
    """`user` (signed in) joins: InvitationRefused unless the link is still pending and theirs."""
    if problem := refusal_for(invitation, user):
        raise InvitationRefused(problem)
    with transaction.atomic():
        _claim(invitation)
        membership = _join(invitation, user)
        if not user.email:  # the account takes the invited address
            user.email = invitation.email
            user.save(update_fields=["email"])
    return membership


def accept_with_new_account(invitation: Invitation, username: str, password: str) -> Membership:
    """A new account with the invited address joins; InvitationRefused when someone used the link first."""
    with transaction.atomic():
        _claim(invitation)
        user = get_user_model().objects.create_user(username, invitation.email, password)
        return _join(invitation, user)


def _claim(invitation: Invitation) -> None:
    """The conditional UPDATE that makes accepting single-use (see Invitation.claim)."""
    if not invitation.claim():
        raise InvitationRefused(_used_meanwhile(invitation))


def _join(invitation: Invitation, user) -> Membership:
    Invitation.objects.filter(pk=invitation.pk).update(accepted_by=user)
    invitation.accepted_by = user
    membership = Membership.objects.create(user=user, tenant=invitation.tenant, role=invitation.role)
    record(invitation.tenant, user, "invitation.accepted", invitation, role=invitation.role)
    return membership


def _used_meanwhile(invitation: Invitation) -> str:
    invitation.refresh_from_db()
    unusable = why_unusable(invitation)
    return f"{unusable.title}. {unusable.message}" if unusable else "This invitation cannot be accepted now."
