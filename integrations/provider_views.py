"""A tenant's providers, per channel: the list, add and change (the kind's credentials form), send a test,
delete. `/settings/providers/<channel>/...`; email's keep their addresses under /settings/email/
(integrations/email_urls.py routes them here with `channel="email"`, next to the senders).

Every member reads; admins and owners add, change, test and delete, and only they see a provider's
tracking webhook URL (it carries the webhook's basic-auth password). Secrets are never shown back in
full. Each change is in the audit log (never a secret): `email_provider.<verb>` for email's, as it always
was, `provider.<verb>` with the channel in its details for every other channel's.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import RestrictedError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations import clock, ratelimit
from integrations.channels.base import Channel
from integrations.channels.registry import CHANNELS
from integrations.models import Provider
from integrations.providers.base import ProviderKind
from integrations.providers.registry import PROVIDER_KINDS
from integrations.providers.test_send import TestSendForm, channel_of, send_test
from tenants.audit import ACTIONS, record_for
from tenants.permissions import admins_only, members_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404

MANAGE = "manage providers"


def channel_or_404(channel: str) -> Channel:
    """The channel, when a tenant can add providers of it."""
    if channel not in CHANNELS or not kinds_of(channel):
        raise Http404("No providers for this channel")
    return CHANNELS[channel]()


def kinds_of(channel: str) -> list[ProviderKind]:
    """The kinds a tenant can add for `channel`, in the registry's order (the menu's)."""
    return [kind for kind in PROVIDER_KINDS.values() if kind.channel == channel]


def page_url(request: HttpRequest, name: str, channel: str, **kwargs: object) -> str:
    """The URL of one of these pages under the address the request came by: /settings/providers/<channel>/
    or, for email's, /settings/email/ (whose routes pass `channel` as a default, which reverse() matches)."""
    namespace = request.resolver_match.namespace if request.resolver_match else "providers"
    return reverse(f"{namespace}:{name}", kwargs={"channel": channel, **kwargs})


def page_urls(request: HttpRequest, channel: str, provider: Provider | None = None) -> dict[str, str]:
    urls = {"list": page_url(request, "settings", channel), "add": page_url(request, "provider_add", channel)}
    if provider is not None:
        for key, name in (("detail", "provider"), ("test", "provider_test"), ("delete", "provider_delete")):
            urls[key] = page_url(request, name, channel, provider_id=provider.pk)
    return urls


def webhook_url(request: HttpRequest, provider: Provider) -> str:
    """The URL to give the provider, with the basic-auth credentials in it (anymail's way, for every kind)."""
    route = provider.kind_module.tracking_url_name
    base = request.build_absolute_uri(reverse(route, args=[provider.webhook_token]))
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{provider.webhook_credentials}@{rest}"


def audit(
    request: HttpRequest, channel: str, verb: str, target: Provider | None = None, **details: Any
) -> None:
    """Email's provider actions keep the names the audit log always had (`email_provider.<verb>`); every
    other channel's are `provider.<verb>` with the channel in the details."""
    named = f"{channel}_provider.{verb}"
    action = named if named in ACTIONS else f"provider.{verb}"
    if action != named:
        details["channel"] = channel
    record_for(request, action, target, **details)


def tenant_provider(request: TenantRequest, channel: str, provider_id: int) -> Provider:
    return get_for_tenant_or_404(Provider.objects.filter(channel=channel), request.tenant, pk=provider_id)


@login_required
@members_only
def provider_list(request: MemberRequest, channel: str) -> HttpResponse:
    found = channel_or_404(channel)
    providers = list(Provider.objects.for_tenant(request.tenant).filter(channel=channel).order_by("name"))
    for provider in providers:
        provider.page_url = page_url(request, "provider", channel, provider_id=provider.pk)  # type: ignore[attr-defined]
    context = {
        "channel": found,
        "providers": providers,
        "kinds": kinds_of(channel),
        "urls": page_urls(request, channel),
    }
    return render(request, "integrations/providers/list.html", context)


@login_required
@admins_only(MANAGE)
def provider_add(request: MemberRequest, channel: str) -> HttpResponse:
    """`?kind=postmark`: the credentials form of that kind of provider."""
    found = channel_or_404(channel)
    kind = PROVIDER_KINDS.get(request.GET.get("kind", ""))
    if kind is None or kind.channel != channel:
        raise Http404("No such provider kind")
    others = Provider.objects.for_tenant(request.tenant)
    form = kind.form(request.POST or None, others=others)
    if request.method == "POST" and form.is_valid():
        provider = form.apply(Provider(tenant=request.tenant, kind=kind.key))
        provider.save()
        audit(request, channel, "created", provider, kind=kind.key)
        messages.success(request, f"Added {provider.name}. Send a test {found.test_noun} to check it.")
        return redirect(page_url(request, "provider", channel, provider_id=provider.pk))
    context = {"form": form, "kind": kind, "channel": found, "urls": page_urls(request, channel)}
    return render(request, "integrations/providers/form.html", context)


@login_required
@admins_only(MANAGE, writes_only=True)
def provider_detail(request: MemberRequest, channel: str, provider_id: int) -> HttpResponse:
    provider = tenant_provider(request, channel, provider_id)
    kind = provider.kind_module
    found = channel_of(provider)
    can_manage = request.membership is not None and request.membership.can_publish
    others = Provider.objects.for_tenant(request.tenant).exclude(pk=provider.pk)
    form = kind.form(request.POST or None, provider=provider, others=others)
    if request.method == "POST" and form.is_valid():
        changed, replaced = form.changed_settings(), form.replaced_secrets()
        form.apply(provider).save()
        audit(request, channel, "changed", provider, fields=changed, secrets_replaced=replaced)
        messages.success(request, f"Saved {provider.name}.")
        return redirect(page_url(request, "provider", channel, provider_id=provider.pk))
    context = {
        "provider": provider,
        "kind": kind,
        "channel": found,
        "form": form,
        "can_manage": can_manage,
        "test_form": TestSendForm(provider, initial={"to": found.test_recipient_initial(request.user)}),
        "webhook_url": webhook_url(request, provider) if can_manage and kind.has_tracking_webhook else "",
        "urls": page_urls(request, channel, provider),
        "limit_line": ratelimit.limit_line(provider.rate_limit, ratelimit.queued(provider)),
    }
    return render(request, "integrations/providers/detail.html", context)


@login_required
@require_POST
@admins_only(MANAGE)
def provider_test(request: MemberRequest, channel: str, provider_id: int) -> HttpResponse:
    """Send one message through the provider now and say, in words, what it answered."""
    provider = tenant_provider(request, channel, provider_id)
    detail = page_url(request, "provider", channel, provider_id=provider.pk)
    form = TestSendForm(provider, request.POST)
    if not form.is_valid():
        error = "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items())
        messages.error(request, f"Test {channel_of(provider).test_noun} not sent: {error}")
        return redirect(detail)
    ok, answer = send_test(provider, form.cleaned_data)
    provider.last_test_ok, provider.last_test_message, provider.last_tested_at = ok, answer, clock.now()
    provider.save(update_fields=["last_test_ok", "last_test_message", "last_tested_at"])
    audit(request, channel, "tested", provider, ok=ok)
    return redirect(detail + "#test")


@login_required
@require_POST
@admins_only(MANAGE)
def provider_delete(request: MemberRequest, channel: str, provider_id: int) -> HttpResponse:
    provider = tenant_provider(request, channel, provider_id)
    try:
        with transaction.atomic():
            provider.delete()
    except RestrictedError:
        names = ", ".join(sorted(s.name for s in provider.senders.all()))
        messages.error(request, f"{provider.name} is used by these senders: {names}. Change them first.")
        return redirect(page_url(request, "provider", channel, provider_id=provider.pk))
    audit(
        request,
        channel,
        "deleted",
        label=provider.name,
        object_type=f"{channel}provider",
        object_id=provider_id,
    )
    messages.success(request, f"Deleted {provider.name}.")
    return redirect(page_url(request, "settings", channel))
