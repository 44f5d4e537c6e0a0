"""The email settings pages, /settings/email/: providers (how mail leaves) and senders (who it is from).

Every member reads the lists; admins and owners add, change, test and delete, and only they see a provider's
tracking webhook URL (it carries the webhook's basic-auth password). Secrets are never shown back in full.
Each change is in the audit log (never a secret).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import RestrictedError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations import clock
from integrations.channels.base import ChannelError
from integrations.channels.email import EmailChannel
from integrations.email_forms import ProviderForm, SenderForm, TestSendForm
from integrations.models import Provider, Sender
from integrations.providers.registry import PROVIDER_KINDS, get_kind
from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404

logger = logging.getLogger(__name__)
MANAGE = "manage email providers and senders"


CHANNEL = "email"  # these pages show the email channel's providers


def kinds_in_order():
    kinds = [kind for kind in PROVIDER_KINDS.values() if kind.channel == CHANNEL]
    return sorted(kinds, key=lambda kind: (kind.key != "smtp", kind.label))


def webhook_url(request: TenantRequest, provider: Provider) -> str:
    """The URL to give the ESP, with the basic-auth credentials in it (anymail's way)."""
    base = request.build_absolute_uri(reverse("email_tracking", args=[provider.webhook_token]))
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{provider.webhook_credentials}@{rest}"


@login_required
def email_settings(request: TenantRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    providers = list(Provider.objects.for_tenant(request.tenant).filter(channel=CHANNEL).order_by("name"))
    senders = list(Sender.objects.for_tenant(request.tenant).select_related("provider").order_by("name"))
    context = {
        "providers": providers,
        "senders": senders,
        "kinds": kinds_in_order(),
        "platform_from": settings.DEFAULT_FROM_EMAIL,
    }
    return render(request, "integrations/email/settings.html", context)


@login_required
@admins_only(MANAGE)
def provider_add(request: TenantRequest) -> HttpResponse:
    """`?kind=postmark`: the form of that kind of provider."""
    kind_key = request.GET.get("kind", "")
    if kind_key not in PROVIDER_KINDS or PROVIDER_KINDS[kind_key].channel != CHANNEL:
        raise Http404("No such provider kind")
    kind = get_kind(kind_key)
    form = ProviderForm(kind, request.tenant, request.POST or None)
    if request.method == "POST" and form.is_valid():
        provider = form.save()
        record_for(request, "email_provider.created", provider, kind=kind.key)
        messages.success(request, f"Added {provider.name}. Send a test email to check it.")
        return redirect("email:provider", provider.pk)
    return render(request, "integrations/email/provider_form.html", {"form": form, "kind": kind})


@login_required
@admins_only(MANAGE, writes_only=True)
def provider_detail(request: TenantRequest, provider_id: int) -> HttpResponse:
    provider = get_for_tenant_or_404(Provider.objects.filter(channel=CHANNEL), request.tenant, pk=provider_id)
    kind = provider.kind_module
    can_manage = request.membership is not None and request.membership.can_publish
    form = ProviderForm(kind, request.tenant, request.POST or None, provider=provider)
    if request.method == "POST" and form.is_valid():
        changed = sorted(set(form.changed_data) - {spec.name for spec in kind.fields if spec.secret})
        secrets_changed = sorted(
            spec.name for spec in kind.fields if spec.secret and form.cleaned_data.get(spec.name)
        )
        form.save()
        record_for(
            request, "email_provider.changed", provider, fields=changed, secrets_replaced=secrets_changed
        )
        messages.success(request, f"Saved {provider.name}.")
        return redirect("email:provider", provider.pk)
    context = {
        "provider": provider,
        "kind": kind,
        "form": form,
        "can_manage": can_manage,
        "test_form": TestSendForm(provider, initial={"to": request.user.email}),
        "webhook_url": webhook_url(request, provider) if can_manage and kind.tracking_view else "",
    }
    return render(request, "integrations/email/provider_detail.html", context)


@login_required
@require_POST
@admins_only(MANAGE)
def provider_test(request: TenantRequest, provider_id: int) -> HttpResponse:
    """Send one email through the provider now and say, in words, what it answered."""
    provider = get_for_tenant_or_404(Provider.objects.filter(channel=CHANNEL), request.tenant, pk=provider_id)
    form = TestSendForm(provider, request.POST)
    if not form.is_valid():
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"Test email not sent: {error}")
        return redirect("email:provider", provider.pk)
    ok, answer = send_test_email(provider, form.cleaned_data["sender"], form.cleaned_data["to"])
    provider.last_test_ok, provider.last_test_message, provider.last_tested_at = ok, answer, clock.now()
    provider.save(update_fields=["last_test_ok", "last_test_message", "last_tested_at"])
    record_for(request, "email_provider.tested", provider, ok=ok)
    return redirect(reverse("email:provider", args=[provider.pk]) + "#test")


def send_test_email(provider: Provider, sender: Sender | None, to: str) -> tuple[bool, str]:
    """(accepted?, the provider's answer in words). Never raises: a broken provider is what it reports."""
    message = {
        "to": to,
        "subject": f"Rowbell test email through {provider.name}",
        "text": f"This test email went through the email provider “{provider.name}” ({provider.kind_module.label}).",
        "from": sender.from_header if sender else settings.DEFAULT_FROM_EMAIL,
        "reply_to": sender.reply_to if sender else "",
        "provider": provider,
    }
    channel = EmailChannel()
    try:
        provider_id = channel.send(message)
    except ChannelError as exc:
        retry = "a temporary problem; sending would be retried" if not exc.permanent else "not retried"
        return False, f"Refused ({retry}): {exc.message}"
    except Exception as exc:  # a provider library's surprise must still be an answer on the page
        logger.exception("Test send through provider %s", provider.pk)
        return False, f"Failed with an unexpected error: {type(exc).__name__}: {exc}"
    finally:
        channel.close()
    return (
        True,
        f"Accepted by {provider.kind_module.label}; its message id is {provider_id or '(none given)'}.",
    )


@login_required
@require_POST
@admins_only(MANAGE)
def provider_delete(request: TenantRequest, provider_id: int) -> HttpResponse:
    provider = get_for_tenant_or_404(Provider.objects.filter(channel=CHANNEL), request.tenant, pk=provider_id)
    try:
        with transaction.atomic():
            provider.delete()
    except RestrictedError:
        names = ", ".join(sorted(s.name for s in provider.senders.all()))
        messages.error(request, f"{provider.name} is used by these senders: {names}. Change them first.")
        return redirect("email:provider", provider.pk)
    record_for(
        request,
        "email_provider.deleted",
        label=provider.name,
        object_type="emailprovider",
        object_id=provider_id,
    )
    messages.success(request, f"Deleted {provider.name}.")
    return redirect("email:settings")


@login_required
@admins_only(MANAGE)
def sender_form(request: TenantRequest, sender_id: int | None = None) -> HttpResponse:
    sender = get_for_tenant_or_404(Sender, request.tenant, pk=sender_id) if sender_id else None
    form = SenderForm(request.tenant, request.POST or None, instance=sender)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save(commit=False)
            saved.tenant = request.tenant
            if saved.is_default:
                Sender.objects.for_tenant(request.tenant).exclude(pk=saved.pk).update(is_default=False)
            saved.save()
        action = "sender.changed" if sender else "sender.created"
        record_for(request, action, saved, fields=sorted(form.changed_data))
        messages.success(request, f"Saved the sender {saved.name}.")
        return redirect("email:settings")
    return render(request, "integrations/email/sender_form.html", {"form": form, "sender": sender})


@login_required
@require_POST
@admins_only(MANAGE)
def sender_delete(request: TenantRequest, sender_id: int) -> HttpResponse:
    sender = get_for_tenant_or_404(Sender, request.tenant, pk=sender_id)
    sender.delete()
    record_for(request, "sender.deleted", label=sender.name, object_type="sender", object_id=sender_id)
    messages.success(
        request, f"Deleted the sender {sender.name}. Email steps that chose it now fail until changed."
    )
    return redirect("email:settings")
