"""Accounts: sign up, rate-limited sign in, password reset and invitations by real email, switching tenants."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from tenants.models import Invitation, Membership, Role, Tenant
from tests.support import PASSWORD, make_user, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache(redis_conn):
    cache.clear()
    yield
    cache.clear()


def test_sign_up_creates_the_tenant_and_its_owner(client):
    response = client.post(
        "/accounts/signup/",
        {
            "organisation": "Initech",
            "username": "peter",
            "email": "peter@initech.test",
            "password": "tps-reports-2026!",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/"
    tenant = Tenant.objects.get(name="Initech")
    membership = Membership.objects.get(tenant=tenant)
    assert membership.user.username == "peter" and membership.role == Role.OWNER
    assert "Initech" in client.get("/").content.decode()


def test_sign_up_errors_say_what_to_fix_and_keep_the_input(client, owner):
    response = client.post(
        "/accounts/signup/",
        {"organisation": "Acme 2", "username": "olivia", "email": "x@y.test", "password": "123"},
    )
    html = response.content.decode()
    assert "This username is taken" in html and "too short" in html
    assert 'value="Acme 2"' in html
    assert not Tenant.objects.filter(name="Acme 2").exists()


def test_failed_sign_ins_are_rate_limited_per_username_and_address(client, owner, settings):
    settings.SIGNIN_MAX_FAILURES = 3
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
        assert "Please enter a correct username and password" in response.content.decode()
    locked = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out by someone else's guesses.
    other = client.post(
        "/accounts/login/", {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9"
    )
    assert other.status_code == 302


def test_password_reset_by_email(client, owner, mailbox):
    response = client.post("/accounts/password-reset/", {"email": "olivia@example.com"})
    assert response.status_code == 302
    assert len(mailbox.messages) == 1 and mailbox.messages[0]["To"] == "olivia@example.com"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailbox.body()).group(1)
    form_page = client.get(link, follow=True)
    assert "Set a new password" in form_page.content.decode()
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a-new-long-pass-77", "new_password2": "a-new-long-pass-77"},
    )
    assert done.status_code == 302
    assert client.login(username="olivia", password="a-new-long-pass-77")


def test_invite_a_member_who_sets_a_password(client, owner, tenant_a, mailbox):
    signed_in(client, owner)
    response = client.post("/members/", {"email": "newbie@example.com", "role": "member"})
    assert response.status_code == 302
    assert mailbox.messages[0]["To"] == "newbie@example.com"
    link = re.search(r"http://testserver(/accounts/invite/\S+/)", mailbox.body()).group(1)
    client.logout()
    assert "Join Acme" in client.get(link).content.decode()
    joined = client.post(link, {"username": "newbie", "password": "fresh-and-long-99"})
    assert joined.status_code == 302
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert Membership.objects.get(user=user).tenant == tenant_a
    assert Membership.objects.get(user=user).role == Role.MEMBER
    # The link worked once: it is now used, by this account.
    assert Invitation.objects.get().accepted_by == user
    assert client.get(link).status_code == 410


def test_tampered_invite_is_404_and_members_cannot_invite(client, member, mailbox):
    assert client.get("/accounts/invite/not-a-token/").status_code == 404
    signed_in(client, member)
    assert client.post("/members/", {"email": "x@example.com", "role": "admin"}).status_code == 403
    assert mailbox.messages == []


def test_switch_between_tenants(client, owner, tenant_b, outsider):
    Membership.objects.create(user=owner, tenant=tenant_b, role=Role.MEMBER)
    signed_in(client, owner)
    assert "Acme" in client.get("/").content.decode().split("<main")[1]
    client.post(f"/accounts/switch/{tenant_b.pk}/")
    assert "<h1>Globex</h1>" in client.get("/").content.decode()
    other = Tenant.objects.create(name="Hooli", slug="hooli")
    make_user("gavin", other, Role.OWNER)
    assert client.post(f"/accounts/switch/{other.pk}/").status_code == 404


def test_roles_are_managed_by_admins_and_a_team_keeps_an_owner(client, owner, member, admin, outsider):
    own = Membership.objects.get(user=owner)
    members = Membership.objects.get(user=member)
    signed_in(client, member)
    assert client.post(f"/members/{own.pk}/role/", {"role": "member"}).status_code == 403
    client.logout()
    signed_in(client, admin)
    page = client.get("/members/").content.decode()
    row = page[page.index(f'id="role-{members.pk}"') :].split("</select>")[0]
    assert [value for value, _ in Role.choices] == ["owner", "admin", "member"]
    assert '<option value="owner">Owner</option><option value="admin">Admin</option>' in row
    assert '<option value="member" selected>Member</option>' in row
    client.post(f"/members/{members.pk}/role/", {"role": "admin"})
    members.refresh_from_db()
    assert members.role == Role.ADMIN
    client.post(f"/members/{members.pk}/role/", {"role": "owner"})  # only owners make owners
    members.refresh_from_db()
    assert members.role == Role.ADMIN
    client.logout()
    signed_in(client, owner)
    page = client.post(f"/members/{own.pk}/role/", {"role": "member"}, follow=True).content.decode()
    assert "A team needs an owner" in page
    own.refresh_from_db()
    assert own.role == Role.OWNER
    client.post(f"/members/{members.pk}/remove/")
    assert not Membership.objects.filter(pk=members.pk).exists()
    other = Membership.objects.get(user=outsider)
    assert client.post(f"/members/{other.pk}/remove/").status_code == 404
    assert client.post(f"/members/{other.pk}/role/", {"role": "member"}).status_code == 404
    assert Membership.objects.filter(pk=other.pk, role=Role.OWNER).exists()
