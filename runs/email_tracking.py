"""The tracking webhook of one email provider: `POST /hooks/email/<webhook token>/`.

The token names the provider (and so the tenant); it is unguessable but travels in URLs, so it is not the
credential. The request is authenticated the way anymail authenticates that ESP, with this provider's own
secrets instead of Django settings: HTTP basic auth with the provider's webhook credentials (put in the URL
given to the ESP) for every ESP, plus Mailgun's HMAC signature and SendGrid's signed-webhook key when set.
The ESP's payload is then parsed by anymail's own tracking view for that ESP, and the events are stored by
runs/tracking.py.

Answers: 401 (nothing read, nothing stored) for missing or wrong credentials or signature; 400 for a body
that cannot be parsed; 200 for everything else, including events about unknown messages and replays, so
that the ESP does not retry them forever. 404 for an unknown token or a provider kind without webhooks.
"""

from __future__ import annotations

import logging
import warnings

from anymail.exceptions import AnymailWebhookValidationFailure
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.models import Provider
from runs.tracking import record_events

logger = logging.getLogger(__name__)


def _unauthorized(reason: str) -> HttpResponse:
    response = JsonResponse({"error": reason}, status=401)
    # Amazon SNS (and browsers) only send basic auth after a challenge.
    response["WWW-Authenticate"] = 'Basic realm="Rowbell email tracking"'
    return response


@csrf_exempt
def tracking_webhook(request: HttpRequest, token: str) -> HttpResponse:
    provider = Provider.objects.filter(webhook_token=token).select_related("tenant").first()
    if provider is None:
        raise Http404("No such webhook")
    kind = provider.kind_module
    if kind.tracking_view is None:
        raise Http404("This provider has no tracking webhook")
    if request.method in ("HEAD", "GET"):
        return HttpResponse()  # some ESPs check that the URL answers when it is saved
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST, HEAD"})
    if not request.META.get("HTTP_AUTHORIZATION"):
        return _unauthorized("Basic authentication required.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail's "insecure webhook" / "SendGrid support" warnings
        view = kind.tracking_view(**kind.tracking_kwargs(provider))
    view.setup(request)
    try:
        view.run_validators(request)
    except AnymailWebhookValidationFailure as exc:
        logger.info("Email tracking webhook of provider %s refused: %s", provider.pk, exc)
        return _unauthorized("Wrong credentials or signature.")
    except Exception as exc:  # a body anymail cannot even validate (bad JSON, wrong SNS type...)
        return JsonResponse({"error": f"Unreadable {kind.label} webhook: {_short(exc)}"}, status=400)
    try:
        events = view.parse_events(request)
    except Exception as exc:
        logger.info("Email tracking webhook of provider %s unparsable: %s", provider.pk, exc)
        return JsonResponse({"error": f"Unreadable {kind.label} webhook: {_short(exc)}"}, status=400)
    outcome = record_events(provider, events)
    return JsonResponse(
        {"stored": outcome.stored, "unknown": outcome.unknown, "duplicate": outcome.duplicate}, status=200
    )


def _short(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
