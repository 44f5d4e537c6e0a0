"""Accounts: sign up, sign in (rate limited), invitations, members and switching tenants."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from tenants.forms import AcceptInviteForm, InviteForm, RateLimitedAuthenticationForm, SignUpForm, unique_slug
from tenants.middleware import switch_tenant
from tenants.models import Membership, Role, Tenant

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


def _require_admin(request: HttpRequest) -> HttpResponse | None:
    if request.membership is None or not request.membership.can_publish:
        return HttpResponseForbidden("Only admins and owners manage members.")
    return None


@login_required
def members(request: HttpRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    can_manage = request.membership.can_publish
    form = InviteForm(request.POST or None, inviter_role=request.membership.role)
    if request.method == "POST":
        if (denied := _require_admin(request)) is not None:
            return denied
        if form.is_valid():
            send_invite(request, form.cleaned_data["email"], form.cleaned_data["role"])
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("tenants:members")
    people = Membership.objects.filter(tenant=request.tenant).select_related("user").order_by("created_at")
    return render(request, "tenants/members.html", {"form": form, "people": people, "can_manage": can_manage})


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
