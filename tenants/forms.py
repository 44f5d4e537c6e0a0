"""Account forms: sign up (a tenant and its owner), rate-limited sign in, invitations."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, UsernameField
from django.core.cache import cache
from django.utils.text import slugify

from tenants.invitations import existing_member
from tenants.models import ApiScope, Role, Tenant


class SignUpForm(forms.Form):
    organisation = forms.CharField(label="Organisation", max_length=200)
    username = forms.CharField(label="Username", max_length=150)
    email = forms.EmailField(label="Email")
    password = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken: choose another one or sign in.")
        return username

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        password = cleaned.get("password")
        if password:
            user = get_user_model()(username=cleaned.get("username", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


def unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "team"
    slug, n = base, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def signin_key(username: str) -> str:
    """The name sign-in counts failures under: the username as authentication sees it (the form's
    UsernameField strips it and NFKC-normalises it, so "charlie " and fullwidth "ｃｈａｒｌｉｅ" sign in as
    "charlie"), then casefolded, so that neither a case nor a whitespace variant starts a fresh count.
    Authentication itself is case-sensitive and usernames are unique case-insensitively (sign-up checks
    `iexact`), so folding the case here joins only names that are one account or none."""
    normalised = UsernameField().to_python(username) or ""
    return normalised.casefold()


def _attempts_key(username: str, ip: str | None) -> str:
    """The counter for this username from this address, or from every address when `ip` is None."""
    # Hashed: the username is whatever was typed, of any length and alphabet.
    where = "\0*" if ip is None else f"\0{ip}"
    digest = hashlib.sha256(f"{signin_key(username)}{where}".encode()).hexdigest()
    return f"signin-attempts:{digest}"


def _count_attempt(key: str) -> int:
    """This attempt's number within the lockout window (which starts at the first attempt)."""
    if cache.add(key, 1, settings.SIGNIN_LOCKOUT_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # the window ended between the two calls
        cache.add(key, 1, settings.SIGNIN_LOCKOUT_SECONDS)
        return 1


def _uncount_attempt(key: str) -> None:
    with contextlib.suppress(ValueError):  # the window ended meanwhile
        cache.decr(key)


class RateLimitedAuthenticationForm(AuthenticationForm):
    """Refuses to check the password after too many failures for this username from this address, or for
    this username from all addresses together (SIGNIN_ACCOUNT_MAX_FAILURES, a guesser spread over many).

    Each attempt is counted before the password is checked (an atomic INCR), so a burst of parallel
    guesses cannot all pass the check before the first failure is recorded; a successful sign-in clears
    the count."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "rate_limited": "Too many failed sign-ins. Wait %(minutes)d minutes or reset your password.",
    }

    def clean(self):
        username = self.data.get("username", "")
        if not isinstance(username, str):
            username = ""
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        key, account_key = _attempts_key(username, ip), _attempts_key(username, None)
        attempts, account_attempts = _count_attempt(key), _count_attempt(account_key)
        if attempts > settings.SIGNIN_MAX_FAILURES or account_attempts > settings.SIGNIN_ACCOUNT_MAX_FAILURES:
            raise forms.ValidationError(
                self.error_messages["rate_limited"],
                code="rate_limited",
                params={"minutes": max(1, settings.SIGNIN_LOCKOUT_SECONDS // 60)},
            )
        cleaned = super().clean()
        cache.delete(key)
        # Not cleared: a success must not give a guesser on other addresses a fresh allowance.
        _uncount_attempt(account_key)
        return cleaned


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email of the person to invite")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, inviter_role: str = Role.MEMBER, tenant: Tenant | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        if inviter_role != Role.OWNER:
            # Only owners make owners.
            cast(forms.ChoiceField, self.fields["role"]).choices = [
                c for c in Role.choices if c[0] != Role.OWNER
            ]
            self.fields["role"].error_messages["invalid_choice"] = (
                "Only an owner can invite an owner: choose admin or member."
            )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if self.tenant is not None and (member := existing_member(self.tenant, email)):
            raise forms.ValidationError(
                f"{email} is already a member of {self.tenant.name} (as {member.user.get_username()})."
            )
        return email


class AcceptInviteForm(forms.Form):
    """A new account for the invited address: the address itself is the invitation's, not a field."""

    username = forms.CharField(label="Username", max_length=150)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)

    def __init__(self, *args, email: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken: choose another one.")
        return username

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("password"):
            user = get_user_model()(username=cleaned.get("username", ""), email=self.email)
            try:
                password_validation.validate_password(cleaned["password"], user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class ApiKeyForm(forms.Form):
    # Where the key will be used, so that people know which one to revoke.
    name = forms.CharField(label="Name of the new key", max_length=100)
    # What it may do: a key that only starts runs cannot cancel or publish if it leaks.
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiScope.choices,
        initial=ApiScope.values,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Tick at least one scope: read, trigger or manage."},
    )
