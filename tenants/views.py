"""Accounts: sign up, sign in (rate limited), invitations, members, switching tenants, and API keys."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from tenants.forms import (
    AcceptInviteForm,
    ApiKeyForm,
    InviteForm,
    RateLimitedAuthenticationForm,
    SignUpForm,
    unique_slug,
)
from tenants.middleware import switch_tenant
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.permissions import admins_only
from tenants.scoping import get_for_tenant_or_404

INVITE_SALT = "rowbell.invite"


class SignInView(auth_views.LoginView):
    form_class = RateLimitedAuthenticationForm
    template_name = "tenants/signin.html"
    redirect_authenticated_user = True


def signup(request: HttpRequest) -> HttpResponse:
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
def switch(request: HttpRequest, tenant_id: int) -> HttpResponse:
    membership = Membership.objects.filter(user=request.user, tenant_id=tenant_id).first()
    if membership is None:
        raise Http404("Not found")
    switch_tenant(request, membership)
    return redirect("workflows:dashboard")


@login_required
def members(request: HttpRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    can_manage = request.membership.can_publish
    form = InviteForm(request.POST or None, inviter_role=request.membership.role)
    if request.method == "POST":
        if (denied := admins_only(request, "manage members")) is not None:
            return denied
        if form.is_valid():
            send_invite(request, form.cleaned_data["email"], form.cleaned_data["role"])
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("tenants:members")
    people = Membership.objects.filter(tenant=request.tenant).select_related("user").order_by("created_at")
    context = {"form": form, "people": people, "can_manage": can_manage, "roles": Role.choices}
    return render(request, "tenants/members.html", context)


def _managed_membership(request: HttpRequest, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(tenant=request.tenant, pk=membership_id).select_related("user").first()
    )
    if membership is None:
        raise Http404("Not found")
    return membership


def _owner_rule_broken(request: HttpRequest, target: Membership, new_role: str | None) -> str:
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
def change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    target = _managed_membership(request, membership_id)
    if (denied := admins_only(request, "manage members")) is not None:
        return denied
    role = request.POST.get("role", "")
    if role not in Role.values:
        messages.error(request, "Choose owner, admin or member.")
    elif problem := _owner_rule_broken(request, target, role):
        messages.error(request, problem)
    else:
        target.role = role
        target.save(update_fields=["role"])
        messages.success(request, f"{target.user.get_username()} is now {target.get_role_display().lower()}.")
    return redirect("tenants:members")


@login_required
@require_POST
def remove_member(request: HttpRequest, membership_id: int) -> HttpResponse:
    target = _managed_membership(request, membership_id)
    if (denied := admins_only(request, "manage members")) is not None:
        return denied
    if problem := _owner_rule_broken(request, target, None):
        messages.error(request, problem)
    else:
        target.delete()
        messages.success(request, f"Removed {target.user.get_username()} from {request.tenant.name}.")
    return redirect("tenants:members")


def invite_token(tenant: Tenant, email: str, role: str) -> str:
    return signing.dumps({"tenant": tenant.pk, "email": email, "role": role}, salt=INVITE_SALT)


def send_invite(request: HttpRequest, email: str, role: str) -> None:
    token = invite_token(request.tenant, email, role)
    link = request.build_absolute_uri(reverse("tenants:accept_invite", args=[token]))
    send_mail(
        f"{request.user.get_username()} invited you to {request.tenant.name} on Rowbell",
        f"You are invited to join {request.tenant.name} as {role}.\n\n"
        f"Set your password and join here (the link is valid for 7 days):\n{link}\n",
        None,
        [email],
    )


def _read_invite(token: str) -> dict:
    try:
        data = signing.loads(token, salt=INVITE_SALT, max_age=settings.INVITE_MAX_AGE_SECONDS)
    except signing.BadSignature as exc:
        raise Http404("This invitation link is invalid or has expired.") from exc
    if not Tenant.objects.filter(pk=data["tenant"]).exists():
        raise Http404("This invitation's team no longer exists.")
    return data


def accept_invite(request: HttpRequest, token: str) -> HttpResponse:
    invite = _read_invite(token)
    tenant = Tenant.objects.get(pk=invite["tenant"])
    if request.user.is_authenticated:
        if request.method == "POST":
            membership, _ = Membership.objects.get_or_create(
                user=request.user, tenant=tenant, defaults={"role": invite["role"]}
            )
            switch_tenant(request, membership)
            return redirect("workflows:dashboard")
        return render(request, "tenants/accept_invite.html", {"tenant": tenant, "invite": invite})
    form = AcceptInviteForm(request.POST or None, initial={"username": invite["email"].split("@")[0]})
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                form.cleaned_data["username"], invite["email"], form.cleaned_data["password"]
            )
            membership = Membership.objects.create(user=user, tenant=tenant, role=invite["role"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        switch_tenant(request, membership)
        messages.success(request, f"You joined {tenant.name}.")
        return redirect("workflows:dashboard")
    return render(request, "tenants/accept_invite.html", {"tenant": tenant, "invite": invite, "form": form})


@login_required
def api_keys(request: HttpRequest) -> HttpResponse:
    """Everyone sees the tenant's keys; admins and owners create them (the key is shown on this one answer,
    never again) and revoke them."""
    if request.tenant is None:
        raise Http404("Not found")
    form = ApiKeyForm(request.POST or None)
    new_key = ""
    if request.method == "POST":
        if (denied := admins_only(request, "create API keys")) is not None:
            return denied
        if form.is_valid():
            _api_key, new_key = ApiKey.issue(request.tenant, form.cleaned_data["name"], request.user)
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
def revoke_api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = get_for_tenant_or_404(ApiKey, request.tenant, pk=key_id)
    if (denied := admins_only(request, "revoke API keys")) is not None:
        return denied
    if api_key.revoke():
        messages.success(request, f"Revoked “{api_key.name}”: requests with it are now refused.")
    else:
        messages.info(request, f"“{api_key.name}” was already revoked.")
    return redirect("tenants:api_keys")
