"""Invitations as an attacker would try them: one link, two people; a removed member's old link; a user of
another tenant with someone else's link; expired, revoked and replaced links; two accepts at once; and who
may invite whom. Links travel by real email (aiosmtpd)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from tenants import invitations
from tenants.models import Invitation, Membership, Role
from tests.builder import conftest as builder
from tests.support import free_port, signed_in

mailbox = builder.mailbox  # fixture

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "fresh-and-long-99"


def invite(client: Client, mailbox, email: str, role: str = "member") -> str:
    """Invite through the Members page as the signed-in `client`; the link's path from the email."""
    response = client.post("/members/", {"email": email, "role": role})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert mailbox.messages[-1]["To"] == email
    return re.search(r"http://testserver(/accounts/invite/\S+/)", mailbox.body()).group(1)


def join_as_new(link: str, username: str, **extra) -> tuple[Client, object]:
    client = Client()
    return client, client.post(link, {"username": username, "password": NEW_PASSWORD, **extra})


def users_named(username: str):
    return get_user_model().objects.filter(username=username)


def test_the_link_is_stored_only_as_a_hash(client, owner, mailbox):
    link = invite(signed_in(client, owner), mailbox, "newbie@example.com")
    token = link.rstrip("/").rsplit("/", 1)[1]

    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.values().get())


def test_one_admin_link_makes_one_admin(client, owner, mailbox, tenant_a):
    link = invite(signed_in(client, owner), mailbox, "boss@example.com", role="admin")

    _, joined = join_as_new(link, "boss")
    _, again = join_as_new(link, "stranger")

    assert joined.status_code == 302
    assert Membership.objects.get(user__username="boss", tenant=tenant_a).role == Role.ADMIN
    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    assert not users_named("stranger").exists()
    assert Client().get(link).status_code == 410


def test_a_removed_member_cannot_rejoin_with_their_old_link(client, owner, mailbox, tenant_a):
    link = invite(signed_in(client, owner), mailbox, "temp@example.com")
    temp_client, _ = join_as_new(link, "temp")
    membership = Membership.objects.get(user__username="temp")

    client.post(f"/members/{membership.pk}/remove/")
    assert not Membership.objects.filter(user__username="temp").exists()

    page = temp_client.get(link)
    assert page.status_code == 410 and "already been used" in page.content.decode()
    assert temp_client.post(link).status_code == 410
    assert not Membership.objects.filter(user__username="temp", tenant=tenant_a).exists()


def test_removing_a_member_kills_the_links_they_held_and_sent(client, owner, admin, member, mailbox):
    # A link addressed to max that was never used (issued before he joined some other way).
    _held, held_token = Invitation.issue(owner.memberships.get().tenant, "MAX@example.com", Role.ADMIN, owner)
    sent_link = invite(signed_in(Client(), admin), mailbox, "friend-of-ada@example.com", role="admin")
    signed_in(client, owner)

    client.post(f"/members/{Membership.objects.get(user=member).pk}/remove/")
    client.post(f"/members/{Membership.objects.get(user=admin).pk}/remove/")

    assert Client().get(f"/accounts/invite/{held_token}/").status_code == 410
    gone = Client().get(sent_link)
    assert gone.status_code == 410 and "withdrawn" in gone.content.decode()
    assert join_as_new(sent_link, "friend")[1].status_code == 410
    assert not users_named("friend").exists()


def test_a_user_of_another_tenant_cannot_use_a_link_addressed_to_someone_else(
    client, owner, outsider, mailbox, tenant_a
):
    link = invite(signed_in(client, owner), mailbox, "newbie@example.com", role="admin")
    eve = signed_in(Client(), outsider)

    page = eve.get(link)
    posted = eve.post(link)

    for response in (page, posted):
        assert response.status_code == 409
        text = response.content.decode()
        assert "This invitation is for newbie@example.com" in text and "eve@example.com" in text
    assert not Membership.objects.filter(user=outsider, tenant=tenant_a).exists()
    # The invitation is untouched: the person it is for can still join.
    assert join_as_new(link, "newbie")[1].status_code == 302


def test_a_signed_in_user_with_the_invited_address_joins_whatever_its_case(
    client, owner, outsider, mailbox, tenant_a, tenant_b
):
    link = invite(signed_in(client, owner), mailbox, "Eve@EXAMPLE.com")
    eve = signed_in(Client(), outsider)

    assert "Join Acme" in eve.get(link).content.decode()
    assert eve.post(link).status_code == 302

    assert Membership.objects.get(user=outsider, tenant=tenant_a).role == Role.MEMBER
    assert Membership.objects.get(user=outsider, tenant=tenant_b).role == Role.OWNER
    assert Invitation.objects.get().accepted_by == outsider


def test_a_new_account_gets_the_invited_address_whatever_is_posted(client, owner, mailbox):
    link = invite(signed_in(client, owner), mailbox, "newbie@example.com")

    page = Client().get(link).content.decode()
    _, joined = join_as_new(link, "newbie", email="attacker@evil.test")

    assert "newbie@example.com" in page and 'name="email"' not in page
    assert joined.status_code == 302
    assert users_named("newbie").get().email == "newbie@example.com"


def test_an_expired_link_says_so(client, owner, mailbox):
    link = invite(signed_in(client, owner), mailbox, "late@example.com")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))

    page = Client().get(link)
    _, posted = join_as_new(link, "late")

    assert page.status_code == 410 and "has expired" in page.content.decode()
    assert posted.status_code == 410
    assert not users_named("late").exists()
    assert "Expired" in client.get("/members/").content.decode()


def test_a_revoked_link_stops_working_and_leaves_the_list(client, admin, mailbox):
    link = invite(signed_in(client, admin), mailbox, "nope@example.com")
    invitation = Invitation.objects.get()
    assert "nope@example.com" in client.get("/members/").content.decode()

    revoked = client.post(f"/members/invitations/{invitation.pk}/revoke/", follow=True).content.decode()

    assert "Revoked the invitation to nope@example.com" in revoked
    assert "Pending invitations" not in revoked
    page = Client().get(link)
    assert page.status_code == 410 and "withdrawn" in page.content.decode()
    assert join_as_new(link, "nope")[1].status_code == 410


def test_inviting_an_address_again_replaces_its_link(client, owner, mailbox):
    signed_in(client, owner)
    old = invite(client, mailbox, "twice@example.com")
    new = invite(client, mailbox, "TWICE@example.com", role="admin")

    assert Client().get(old).status_code == 410
    assert Invitation.objects.pending().count() == 1
    _, joined = join_as_new(new, "twice")
    assert joined.status_code == 302
    assert Membership.objects.get(user__username="twice").role == Role.ADMIN


def test_inviting_an_existing_member_is_refused(client, owner, member, mailbox):
    response = signed_in(client, owner).post("/members/", {"email": "MAX@example.com", "role": "admin"})

    assert response.status_code == 200
    assert "MAX@example.com is already a member of Acme" in response.content.decode()
    assert not Invitation.objects.exists() and mailbox.messages == []


def test_an_already_member_with_the_address_is_told_so(client, owner, member):
    _invitation, token = Invitation.issue(
        owner.memberships.get().tenant, "max@example.com", Role.ADMIN, owner
    )
    max_client = signed_in(Client(), member)

    response = max_client.post(f"/accounts/invite/{token}/")

    assert response.status_code == 409 and "already a member of Acme" in response.content.decode()
    assert Membership.objects.get(user=member).role == Role.MEMBER


def test_who_may_invite_whom(client, owner, admin, member, outsider, mailbox):
    assert (
        signed_in(Client(), member)
        .post("/members/", {"email": "x@example.com", "role": "member"})
        .status_code
        == 403
    )

    ada = signed_in(Client(), admin)
    refused = ada.post("/members/", {"email": "x@example.com", "role": "owner"})
    assert "Only an owner can invite an owner" in refused.content.decode()
    assert not Invitation.objects.exists() and mailbox.messages == []

    invite(signed_in(client, owner), mailbox, "heir@example.com", role="owner")
    heir = Invitation.objects.get()
    ada.post(f"/members/invitations/{heir.pk}/revoke/")
    heir.refresh_from_db()
    assert heir.revoked_at is None  # only owners unmake owners
    assert signed_in(Client(), member).post(f"/members/invitations/{heir.pk}/revoke/").status_code == 403
    assert signed_in(Client(), outsider).post(f"/members/invitations/{heir.pk}/revoke/").status_code == 404
    heir.refresh_from_db()
    assert heir.revoked_at is None


def test_unknown_and_mangled_links_are_a_clear_404(client):
    for token in ["not-a-token", "x" * 500]:
        response = client.get(f"/accounts/invite/{token}/")
        assert response.status_code == 404
        assert "This invitation link is not valid" in response.content.decode()
    # A NUL anywhere in an address is refused before any view (common/input_guard.py), saying where.
    response = client.get("/accounts/invite/%00/")
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_an_email_that_cannot_be_sent_is_said_not_a_500(client, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2

    page = signed_in(client, owner).post(
        "/members/", {"email": "a@example.com", "role": "member"}, follow=True
    )

    assert page.status_code == 200
    assert "its email could not be sent" in page.content.decode()
    assert Invitation.objects.pending().filter(email="a@example.com").exists()


@pytest.mark.django_db(transaction=True)
def test_two_accepts_at_once_admit_one_person(owner, tenant_a):
    """The first accept has claimed the invitation and not committed yet when the second arrives: the
    second waits for the row, then finds the link used, and creates nothing."""
    invitation, token = Invitation.issue(tenant_a, "race@example.com", Role.ADMIN, owner)
    link = f"/accounts/invite/{token}/"
    second: dict = {}

    def accept_too() -> None:
        try:
            second["response"] = Client().post(link, {"username": "racer2", "password": NEW_PASSWORD})
        finally:
            connection.close()

    with transaction.atomic():
        invitations.accept_with_new_account(invitation, "racer1", NEW_PASSWORD)
        other = threading.Thread(target=accept_too)
        other.start()
        time.sleep(0.5)
        assert other.is_alive(), "the second accept should wait for the first one's row lock"
    other.join(timeout=30)

    assert second["response"].status_code == 409
    assert "already been used" in second["response"].content.decode()
    assert list(
        Membership.objects.filter(tenant=tenant_a, role=Role.ADMIN).values_list("user__username", flat=True)
    ) == ["racer1"]
    assert not users_named("racer2").exists()


def test_the_members_page_lists_pending_invitations(client, admin, member, mailbox):
    invite(signed_in(client, admin), mailbox, "soon@example.com", role="admin")

    managed = client.get("/members/").content.decode()
    seen = signed_in(Client(), member).get("/members/").content.decode()

    assert "Pending invitations" in managed and "soon@example.com" in managed and "Revoke" in managed
    assert "soon@example.com" in seen and "/revoke/" not in seen
