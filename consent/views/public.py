"""The hosted pages a recipient reaches from an email's unsubscribe link: no sign-in, no JavaScript.

- `GET /email/unsubscribe/<token>/` names the topic and offers two buttons (this topic, everything);
  a GET never changes anything, so link scanners in mail gateways unsubscribe no one.
- `POST` of the same URL: the RFC 8058 one-click request (`List-Unsubscribe=One-Click` in the body,
  sent by the mail client, without cookies or a CSRF token, hence csrf_exempt: the signed token is the
  authority) unsubscribes at once; the page's own buttons post `action`.
- `/email/preferences/<token>/` lists the tenant's topics to switch off and back on.
An altered link gets a page saying so (400). Pages carry the tenant's name, not Rowbell's.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from consent.models import Topic, Unsubscribe
from consent.subscriptions import preferences as read_preferences
from consent.subscriptions import resubscribe, unsubscribe
from consent.tokens import BadLink, Link, read_token
from tenants.models import Tenant

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


def _private(response: HttpResponse) -> HttpResponse:
    """The token is in the URL: keep it out of referrers, caches and search engines."""
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _bad_link(request: HttpRequest, status: int = 400) -> HttpResponse:
    return _private(render(request, "consent/bad_link.html", status=status))


def _resolve(token: str) -> tuple[Link, Tenant, Topic | None, bool]:
    """(link, tenant, topic, topic_gone); raises BadLink, or Tenant.DoesNotExist for a deleted tenant."""
    link = read_token(token)
    tenant = Tenant.objects.get(pk=link.tenant_id)
    topic = None
    if link.topic_id is not None:
        topic = Topic.objects.filter(tenant=tenant, pk=link.topic_id).first()
    return link, tenant, topic, link.topic_id is not None and topic is None


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link, tenant, topic, topic_gone = _resolve(token)
    except BadLink:
        return _bad_link(request)
    except Tenant.DoesNotExist:
        return _bad_link(request, status=404)
    if request.method == "POST":
        if request.POST.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
            unsubscribe(tenant.pk, link.address, topic, Unsubscribe.Source.ONE_CLICK)
            return _private(HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8"))
        action = request.POST.get("action")
        if action == "unsubscribe":
            unsubscribe(tenant.pk, link.address, topic, Unsubscribe.Source.PAGE)
        elif action == "unsubscribe_all":
            unsubscribe(tenant.pk, link.address, None, Unsubscribe.Source.PAGE)
        else:
            return _bad_link(request)
        return redirect(reverse("consent:preferences", args=[token]) + f"?done={action}")
    everything, _topics = read_preferences(tenant.pk, link.address)
    subscribed = not everything and not (
        topic is not None
        and Unsubscribe.objects.filter(tenant=tenant, address=link.address, topic=topic).exists()
    )
    context = {
        "tenant": tenant,
        "topic": topic,
        "topic_gone": topic_gone,
        "address": link.address,
        "token": token,
        "subscribed": subscribed,
    }
    return _private(render(request, "consent/unsubscribe.html", context))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def preferences_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link, tenant, _topic, _gone = _resolve(token)
    except BadLink:
        return _bad_link(request)
    except Tenant.DoesNotExist:
        return _bad_link(request, status=404)
    if request.method == "POST":
        action = request.POST.get("action", "")
        topic = None
        if request.POST.get("topic"):
            topic_pk = _int(request.POST["topic"])
            topic = Topic.objects.filter(tenant=tenant, pk=topic_pk).first() if topic_pk is not None else None
            if topic is None:
                return _bad_link(request)
        if action == "subscribe":
            resubscribe(tenant.pk, link.address, topic)
        elif action == "unsubscribe":
            unsubscribe(tenant.pk, link.address, topic, Unsubscribe.Source.PAGE)
        else:
            return _bad_link(request)
        return redirect(reverse("consent:preferences", args=[token]) + "?done=saved")
    everything, topics = read_preferences(tenant.pk, link.address)
    context = {
        "tenant": tenant,
        "address": link.address,
        "token": token,
        "everything": everything,
        "topics": topics,
        "done": request.GET.get("done", ""),
    }
    return _private(render(request, "consent/preferences.html", context))


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None
