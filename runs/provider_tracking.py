"""The tracking webhook of one provider, of any channel: `POST /hooks/providers/<webhook token>/` (email's
providers were given `/hooks/email/<webhook token>/`, the same view).

The token names the provider (and so the tenant and the channel); it is unguessable but travels in URLs,
so it is not the credential. The provider's kind reads the request (`ProviderKind.read_tracking`): it
authenticates it with this provider's own secrets (email's ESPs: HTTP basic auth with the provider's
webhook credentials, put in the URL given to the ESP, plus Mailgun's HMAC signature and SendGrid's
signed-webhook key when set, through anymail's own view for that ESP) and parses it into channel-neutral
events, which runs/tracking.py stores.

Answers: 401 (nothing read, nothing stored) for missing or wrong credentials or signature; 400 for a body
that cannot be parsed; 200 for everything else, including events about unknown messages and replays, so
that the provider does not retry them forever. 404 for an unknown token or a provider kind without
webhooks.
"""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.models import Provider
from integrations.providers.registry import PROVIDER_KINDS
from integrations.providers.tracking import TrackingRefused, TrackingUnreadable
from runs.tracking import record_events

logger = logging.getLogger(__name__)


def _unauthorized(reason: str) -> HttpResponse:
    response = JsonResponse({"error": reason}, status=401)
    # Amazon SNS (and browsers) only send basic auth after a challenge.
    response["WWW-Authenticate"] = 'Basic realm="Rowbell delivery tracking"'
    return response


@csrf_exempt
def tracking_webhook(request: HttpRequest, token: str) -> HttpResponse:
    provider = Provider.objects.filter(webhook_token=token).select_related("tenant").first()
    if provider is None:
        raise Http404("No such webhook")
    kind = PROVIDER_KINDS.get(provider.kind)  # a kind taken out of the registry: nothing reads its webhook
    if kind is None or not kind.has_tracking_webhook:
        raise Http404("This provider has no tracking webhook")
    if request.method in ("HEAD", "GET"):
        return HttpResponse()  # some providers check that the URL answers when it is saved
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST, HEAD"})
    try:
        events = kind.read_tracking(provider, request)
    except TrackingRefused as exc:
        return _unauthorized(str(exc) or "Wrong credentials or signature.")
    except TrackingUnreadable as exc:
        logger.info("Tracking webhook of provider %s unreadable: %s", provider.pk, exc)
        return JsonResponse({"error": f"Unreadable {kind.label} webhook: {str(exc)[:200]}"}, status=400)
    outcome = record_events(provider, events)
    return JsonResponse(
        {"stored": outcome.stored, "unknown": outcome.unknown, "duplicate": outcome.duplicate}, status=200
    )
