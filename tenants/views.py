"""Accounts: sign up, sign in (rate limited), invitations (tenants/invitations.py), members, switching tenants,
and API keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from tenants import invitations
from tenants.audit import record_for
from tenants.forms import (
    AcceptInviteForm,
    ApiKeyForm,
    InviteForm,
    RateLimitedAuthenticationForm,
    SignUpForm,
    unique_slug,
)
from tenants.middleware import switch_tenant
from tenants.models import ApiKey, Invitation, Membership, Role, Tenant
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404


class SignInView(auth_views.LoginView):
    form_class = RateLimitedAuthenticationForm
    template_name = "tenants/signin.html"
    redirect_authenticated_user = True


def signup(request: TenantRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            user = get_user_model().objects.create_user(data["username"], data["email"], data["password"])
            tenant = Tenant.objects.create(name=data["organisation"], slug=unique_slug(data["organisation"]))
            membership = Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        switch_tenant(request, membership)
        messages.success(request, f"Welcome to Rowbell. {tenant.name} is ready.")
        return redirect("workflows:dashboard")
    return render(request, "tenants/signup.html", {"form": form})


@login_required
@require_POST
def switch(request: TenantRequest, tenant_id: int) -> HttpResponse:
    membership = next((m for m in request.memberships if m.tenant_id == tenant_id), None)
    if membership is None:
        raise Http404("Not found")
    switch_tenant(request, membership)
    return redirect("workflows:dashboard")


@login_required
@admins_only("manage members", writes_only=True)
def members(request: MemberRequest) -> HttpResponse:
    can_manage = request.membership.can_publish
    form = InviteForm(request.POST or None, inviter_role=request.membership.role, tenant=request.tenant)
    if request.method == "POST" and form.is_valid() and _invite(request, form):
        return redirect("tenants:members")
    people = Membership.objects.filter(tenant=request.tenant).select_related("user").order_by("created_at")
    pending = (
        Invitation.objects.for_tenant(request.tenant)
        .open()
        .select_related("invited_by")
        .order_by("-created_at")
    )
    context = {
        "form": form,
        "people": people,
        "invitations": pending,
        "now": timezone.now(),
        "invite_days": max(1, settings.INVITE_MAX_AGE_SECONDS // 86400),
        "can_manage": can_manage,
        "roles": Role.choices,
    }
    return render(request, "tenants/members.html", context)


def _invite(request: MemberRequest, form: InviteForm) -> bool:
    """Issue and email the invitation; False (with the form's error) when a parallel one won."""
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    try:
        invitation, token, replaced = invitations.invite(request.tenant, request.user, email, role)
    except IntegrityError:
        form.add_error(
            "email", f"Another invitation to {email} was sent at the same moment; reload the page."
        )
        return False
    if problem := invitations.email_link(request, invitation, token):
        messages.error(
            request,
            f"The invitation to {email} is saved but its email could not be sent ({problem}). "
            "Invite the address again once email works: that replaces this link.",
        )
    else:
        again = " The earlier link to this address no longer works." if replaced else ""
        messages.success(request, f"Invitation sent to {email}.{again}")
    return True


def _managed_membership(request: MemberRequest, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(tenant=request.tenant, pk=membership_id).select_related("user").first()
    )
    if membership is None:
        raise Http404("Not found")
    return membership


def _owner_rule_broken(request: MemberRequest, target: Membership, new_role: str | None) -> str:
    """Why this change is not allowed ("" when it is): owners are made and unmade by owners, and a team
    always keeps one owner."""
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and request.membership.role != Role.OWNER:
        return "Only an owner can make or change an owner."
    others = Membership.objects.filter(tenant=request.tenant, role=Role.OWNER).exclude(pk=target.pk)
    if target.role == Role.OWNER and new_role != Role.OWNER and not others.exists():
        return "A team needs an owner: make someone else owner first."
    return ""


@login_required
@require_POST
@admins_only("manage members")
def change_role(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _managed_membership(request, membership_id)
    role = request.POST.get("role", "")
    if role not in Role.values:
        messages.error(request, "Choose owner, admin or member.")
    elif problem := _owner_rule_broken(request, target, role):
        messages.error(request, problem)
    else:
        previous, target.role = target.role, role
        target.save(update_fields=["role"])
        record_for(request, "member.role_changed", target.user, old=previous, new=role)
        messages.success(request, f"{target.user.get_username()} is now {target.get_role_display().lower()}.")
    return redirect("tenants:members")


@login_required
@require_POST
@admins_only("manage members")
def remove_member(request: MemberRequest, membership_id: int) -> HttpResponse:
    target = _managed_membership(request, membership_id)
    if problem := _owner_rule_broken(request, target, None):
        messages.error(request, problem)
    else:
        with transaction.atomic():
            target.delete()
            killed = invitations.revoke_links_of(request.tenant, target.user)
            record_for(request, "member.removed", target.user, revoked_invitations=killed)
        messages.success(request, f"Removed {target.user.get_username()} from {request.tenant.name}.")
    return redirect("tenants:members")


@login_required
@require_POST
@admins_only("manage members")
def revoke_invitation(request: MemberRequest, invitation_id: int) -> HttpResponse:
    invitation = get_for_tenant_or_404(Invitation, request.tenant, pk=invitation_id)
    if invitation.role == Role.OWNER and request.membership.role != Role.OWNER:
        messages.error(request, "Only an owner can revoke an invitation to become owner.")
    elif invitations.revoke(invitation, request.user):
        messages.success(request, f"Revoked the invitation to {invitation.email}: its link no longer works.")
    else:
        messages.info(request, f"The invitation to {invitation.email} was already used or revoked.")
    return redirect("tenants:members")


def accept_invite(request: TenantRequest, token: str) -> HttpResponse:
    invitation = invitations.find_by_token(token)
    if (unusable := invitations.why_unusable(invitation)) is not None:
        return render(request, "tenants/invite_unusable.html", {"unusable": unusable}, status=unusable.status)
    assert invitation is not None  # why_unusable refuses a link that finds none
    context: dict[str, Any] = {"tenant": invitation.tenant, "invitation": invitation}
    if request.user.is_authenticated:
        return _accept_signed_in(request, invitation, context)
    form = AcceptInviteForm(
        request.POST or None, email=invitation.email, initial={"username": invitation.email.split("@")[0]}
    )
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        try:
            membership = invitations.accept_with_new_account(
                invitation, form.cleaned_data["username"], form.cleaned_data["password"]
            )
        except invitations.InvitationRefused as exc:
            return _refused(request, context, str(exc))
        except IntegrityError:  # the username was taken since the form checked it; the link is unused
            form.add_error("username", "This username was just taken: choose another one.")
            return render(request, "tenants/accept_invite.html", context)
        login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        return _joined(request, membership)
    return render(request, "tenants/accept_invite.html", context)


def _accept_signed_in(request: TenantRequest, invitation: Invitation, context: dict) -> HttpResponse:
    if problem := invitations.refusal_for(invitation, request.user):
        return _refused(request, context, problem)
    if request.method == "POST":
        try:
            membership = invitations.accept_as(invitation, request.user)
        except invitations.InvitationRefused as exc:
            return _refused(request, context, str(exc))
        return _joined(request, membership)
    return render(request, "tenants/accept_invite.html", context)


def _refused(request: TenantRequest, context: dict, problem: str) -> HttpResponse:
    return render(request, "tenants/accept_invite.html", {**context, "refused": problem}, status=409)


def _joined(request: TenantRequest, membership: Membership) -> HttpResponse:
    switch_tenant(request, membership)
    messages.success(
        request, f"You joined {membership.tenant.name} as {membership.get_role_display().lower()}."
    )
    return redirect("workflows:dashboard")


@login_required
@admins_only("create API keys", writes_only=True)
def api_keys(request: MemberRequest) -> HttpResponse:
    """Everyone sees the tenant's keys; admins and owners create them (the key is shown on this one answer,
    never again) and revoke them."""
    form = ApiKeyForm(request.POST or None)
    new_key = ""
    if request.method == "POST" and form.is_valid():
        api_key, new_key = ApiKey.issue(
            request.tenant, form.cleaned_data["name"], request.user, scopes=form.cleaned_data["scopes"]
        )
        record_for(request, "api_key.created", api_key)
        form = ApiKeyForm()
    keys = (
        ApiKey.objects.for_tenant(request.tenant).select_related("created_by").order_by("-created_at", "-id")
    )
    context = {
        "form": form,
        "keys": keys,
        "new_key": new_key,
        "api_url": request.build_absolute_uri(reverse("api-workflow-list")),
    }
    response = render(request, "tenants/api_keys.html", context)
    if new_key:
        add_never_cache_headers(response)  # the page holding the key must not be kept anywhere
    return response


@login_required
@require_POST
@admins_only("revoke API keys")
def revoke_api_key(request: MemberRequest, key_id: int) -> HttpResponse:
    api_key = get_for_tenant_or_404(ApiKey, request.tenant, pk=key_id)
    if api_key.revoke():
        record_for(request, "api_key.revoked", api_key)
        messages.success(request, f"Revoked “{api_key.name}”: requests with it are now refused.")
    else:
        messages.info(request, f"“{api_key.name}” was already revoked.")
    return redirect("tenants:api_keys")
