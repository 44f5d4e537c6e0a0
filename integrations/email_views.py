"""The email settings page, /settings/email/: senders (who mail is from) and the email channel's providers
(how it leaves; their own pages are every channel's, integrations/provider_views.py).

Every member reads the lists; admins and owners add, change and delete senders. Each change is in the
audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations.email_forms import SenderForm
from integrations.models import Provider, Sender
from integrations.provider_views import kinds_of
from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404

MANAGE = "manage email senders"


CHANNEL = "email"  # this page lists the email channel's providers (integrations/provider_views.py)


@login_required
def email_settings(request: TenantRequest, channel: str = CHANNEL) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    providers = list(Provider.objects.for_tenant(request.tenant).filter(channel=CHANNEL).order_by("name"))
    for provider in providers:
        provider.page_url = reverse("email:provider", args=[provider.pk])  # type: ignore[attr-defined]
    senders = list(Sender.objects.for_tenant(request.tenant).select_related("provider").order_by("name"))
    context = {
        "providers": providers,
        "senders": senders,
        "kinds": kinds_of(CHANNEL),
        "platform_from": settings.DEFAULT_FROM_EMAIL,
    }
    return render(request, "integrations/email/settings.html", context)


@login_required
@admins_only(MANAGE)
def sender_form(request: MemberRequest, sender_id: int | None = None) -> HttpResponse:
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
def sender_delete(request: MemberRequest, sender_id: int) -> HttpResponse:
    sender = get_for_tenant_or_404(Sender, request.tenant, pk=sender_id)
    sender.delete()
    record_for(request, "sender.deleted", label=sender.name, object_type="sender", object_id=sender_id)
    messages.success(
        request, f"Deleted the sender {sender.name}. Email steps that chose it now fail until changed."
    )
    return redirect("email:settings")
