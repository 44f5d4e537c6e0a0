"""Tenant B's owner walks EVERY route in the URLconf with tenant A's ids, GET and POST.

The routes come from django.urls.get_resolver(), not from a list kept here: a route added later is walked
without editing this test. Each path parameter is filled with the id of tenant A's object of that name
(one of each kind is created below); a parameter name the test does not know fails the walk and says so.

- A route that names an object answers only 403, 404 or 405.
- A route that names none (a list, "new") may answer, but with nothing of tenant A's in its body.
- Public or tenant-less routes (sign-in, webhooks that authenticate by signature, the admin with its
  own staff login...) are the explicit exceptions below, each with its reason; they are walked too, and
  must not answer 5xx or show anything of tenant A's.
- Afterwards nothing of tenant A's has changed.
API routes are walked with tenant B's API key (the API takes no session).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from consent.models import EmailLayout, Suppression, Topic, Unsubscribe
from integrations.models import DataSource, EventDelivery, EventEndpoint, Provider, Sender
from runs.models import BulkOperation, CancelTombstone, Delivery, Run, StepExecution
from tenants.models import ApiKey, Invitation, Membership
from tests.engine.conftest import build_workflow, email, webhook
from workflows.models import PublishPreview, Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft

pytestmark = pytest.mark.django_db

# Everything of tenant A's that a page could show carries this marker.
MARK = "acme-secret"

# Route (namespace:name, or a whole namespace) -> why it is not tenant-scoped.
PUBLIC = {
    "admin": "Django admin: its own staff login (tests/test_admin.py); tenant members are sent to it",
    "django_rq": "RQ dashboard under the admin: staff only",
    "api-schema": "the OpenAPI schema: public, no tenant data",
    "webhook": "inbound webhooks authenticate by the workflow's signature, not by a session",
    "email_tracking": "an ESP's tracking webhook: its token names the provider, basic auth authenticates it",
    "tenants:signup": "creates a new tenant: for people signed out",
    "tenants:login": "sign-in page",
    "tenants:logout": "signs out whoever is signed in",
    "tenants:password_reset": "password reset by email: for people signed out",
    "tenants:password_reset_done": "password reset: 'sent' page",
    "tenants:password_reset_confirm": "password reset link: its token authenticates",
    "tenants:accept_invite": "an invitation link: its token is the secret that names the tenant",
    "consent:unsubscribe": "an email's unsubscribe link: its signed token names the tenant and recipient",
    "consent:preferences": "an email's preference link: its signed token names the tenant and recipient",
}


@dataclass
class Route:
    name: str  # namespace:name ("" when the route has none)
    namespace: str
    pattern: str
    params: list[str]


def walk(resolver: URLResolver, namespace: str = "", prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from walk(entry, inner, prefix + str(entry.pattern))
        else:
            params = list(entry.pattern.regex.groupindex)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            yield Route(name, namespace, prefix + str(entry.pattern), params)


def all_routes() -> list[Route]:
    return list(walk(get_resolver()))


def public_reason(route: Route) -> str | None:
    return PUBLIC.get(route.name) or PUBLIC.get(route.namespace.split(":")[0])


@pytest.fixture
def acme(tenant_a, owner, member, tenant_database) -> dict:
    """One of each of tenant A's objects, each marked, by the path parameter that names it."""
    workflow = build_workflow(
        tenant_a,
        webhook([email(name=f"{MARK} welcome", to="ann@acme-secret.example")]),
        name=f"{MARK} onboarding",
    )
    version = workflow.published_version
    draft_step = get_or_create_draft(workflow).steps.get(kind="send_email")
    run = Run.objects.create(
        tenant=tenant_a, workflow=workflow, version=version, event_key=f"{MARK}-event", payload={"m": MARK}
    )
    execution = StepExecution.objects.create(
        tenant=tenant_a,
        run=run,
        step=version.steps.get(kind="send_email"),
        item_key="0",
        status="failed",
        error=f"{MARK} boom",
    )
    delivery = Delivery.objects.create(
        tenant=tenant_a,
        step_execution=execution,
        run=run,
        channel="email",
        recipient="ann@acme-secret.example",
        status=Delivery.Status.HELD,
        content={"to": "ann@acme-secret.example", "subject": MARK, "text": MARK, "html": ""},
    )
    source = DataSource.objects.create(tenant=tenant_a, name=f"{MARK} DB", connection_url=tenant_database)
    key, _secret = ApiKey.issue(tenant_a, f"{MARK} key", owner)
    endpoint = EventEndpoint.objects.create(
        tenant=tenant_a, url="https://acme-secret.example/hook", events=["run.failed"]
    )
    EventDelivery.objects.create(
        tenant=tenant_a, endpoint=endpoint, event_type="run.failed", event_id="evt_1", payload={"m": MARK}
    )
    provider = Provider(tenant=tenant_a, kind="postmark", name=f"{MARK} Postmark")
    provider.secret_values = {"server_token": f"{MARK}-token"}
    provider.save()
    sender = Sender.objects.create(
        tenant=tenant_a, name=f"{MARK} support", from_address="support@acme-secret.example", provider=provider
    )
    invitation, invitation_token = Invitation.issue(tenant_a, "new@acme.example", "member", invited_by=owner)
    topic = Topic.objects.create(tenant=tenant_a, name=f"{MARK} tips")
    layout = EmailLayout.objects.create(
        tenant=tenant_a, name=f"{MARK} layout", html="{% block content %}{% endblock %}"
    )
    suppression = Suppression.objects.create(tenant=tenant_a, address="gone@acme-secret.example", detail=MARK)
    Unsubscribe.objects.create(tenant=tenant_a, address="ann@acme-secret.example", topic=topic)
    tombstone = CancelTombstone.objects.create(
        tenant=tenant_a, workflow=workflow, key=f"{MARK}-order", until=run.created_at + timedelta(days=1)
    )
    operation = BulkOperation.objects.create(
        tenant=tenant_a, name=f"{MARK} retry", action="retry", filter_digest="x", filters={"error": MARK}
    )
    preview = PublishPreview.objects.create(
        tenant=tenant_a, workflow=workflow, draft=get_or_create_draft(workflow), token="t", error=MARK
    )
    return {
        "preview_id": preview.pk,
        "operation_id": operation.pk,
        "tombstone_id": tombstone.pk,
        "topic_id": topic.pk,
        "layout_id": layout.pk,
        "suppression_id": suppression.pk,
        "workflow_id": workflow.pk,
        "version_id": version.pk,
        "step_id": draft_step.pk,
        "run_id": run.pk,
        "execution_id": execution.pk,
        "delivery_id": delivery.pk,
        "datasource_id": source.pk,
        "key_id": key.pk,
        "endpoint_id": endpoint.pk,
        "membership_id": Membership.objects.get(user=member).pk,
        "tenant_id": tenant_a.pk,
        "invitation_id": invitation.pk,
        "provider_id": provider.pk,
        "channel": "email",  # the provider pages of a channel (/settings/providers/<channel>/)
        "sender_id": sender.pk,
        # Tokens of links (public routes, walked for leaks). A valid invitation's token is a bearer secret
        # that lets its holder join, so B walks one it made up while A's invitation is pending.
        "token": "B" * len(invitation_token),
        "uidb64": urlsafe_base64_encode(force_bytes(owner.pk)),
        # The admin's own ids, and the RQ dashboard's.
        "object_id": workflow.pk,
        "id": owner.pk,
        "url": "workflows/workflow/",  # the admin's catch-all (an unknown admin address)
        "content_type_id": ContentType.objects.get_for_model(Workflow).pk,
        "app_label": "workflows",
        "queue_index": 0,
        "scheduler_index": 0,
        "connection_index": 0,
        "job_id": "no-such-job",
        "result_id": "no-such-result",
        "key": "no-such-worker",
        "scheduler_name": "no-such-scheduler",
        "cron_job_name": "no-such-cron-job",
    }


# A `pk` means the object of the router's resource.
PK_BY_ROUTE = {
    "api-workflow-": "workflow_id",
    "api-run-": "run_id",
    "api-topic-": "topic_id",
    "api-layout-": "layout_id",
    "api-suppression-": "suppression_id",
    "api-cancel-": "tombstone_id",
    "api-bulk-operation-": "operation_id",
    "api-message-": "delivery_id",
    "api-sender-": "sender_id",
    "api-provider-": "provider_id",
}


def kwargs_for(route: Route, ids: dict) -> dict:
    kwargs = {}
    for param in route.params:
        name = param
        if param == "pk":
            name = next((v for prefix, v in PK_BY_ROUTE.items() if route.name.startswith(prefix)), "")
        assert name in ids, f"{route.pattern}: no id for <{param}>; add tenant A's object to `acme`"
        kwargs[param] = ids[name]
    if route.name == "tenants:password_reset_confirm":
        kwargs["token"] = "set-password"  # Django's own step for a checked link; a wrong one for ours
    if route.namespace in ("django_rq", "admin") and "token" in kwargs:
        kwargs["token"] = "notatoken"  # the RQ dashboard's stats token (letters only)
    return kwargs


def url_of(route: Route, ids: dict) -> str:
    kwargs = kwargs_for(route, ids)
    if route.name:
        return reverse(route.name, kwargs=kwargs)
    # An unnamed route (the admin's redirect to an object's change page): fill its regex by hand.
    path = route.pattern
    for param, value in kwargs.items():
        path = re.sub(rf"<(\w+:)?{param}>|\(\?P<{param}>[^)]*\)", str(value), path)
    return "/" + path.replace("^", "").replace("$", "")


def snapshot(tenant) -> list:
    """Everything of tenant A's that an action could change (B's own new rows are B's business)."""
    fields = {
        Workflow: ("name", "status", "published_version"),
        WorkflowVersion: ("state", "revision"),
        Step: ("name", "config", "parent"),
        Run: ("status",),
        BulkOperation: ("status", "processed"),
        StepExecution: ("status", "attempts"),
        Delivery: ("status",),
        DataSource: ("name", "connection_url"),
        ApiKey: ("name", "revoked_at"),
        EventEndpoint: ("url", "active", "secret"),
        EventDelivery: ("status",),
        Provider: ("name", "settings", "secrets", "last_tested_at"),
        Sender: ("name", "from_address", "provider", "is_default"),
        Membership: ("user", "role"),
        Topic: ("name", "description"),
        EmailLayout: ("name", "html", "is_default"),
        Suppression: ("address", "reason"),
        Unsubscribe: ("address", "topic"),
    }
    return [
        list(model.objects.filter(tenant=tenant).order_by("pk").values_list("pk", *names))
        for model, names in fields.items()
    ]


def post_data(ids: dict) -> dict:
    """A's ids under every name a form reads, and the values forms want."""
    return {
        **{name: value for name, value in ids.items() if name.endswith("_id")},
        "ids": [ids["delivery_id"]],
        "all": "1",
        "workflow": ids["workflow_id"],
        "name": "hijacked",
        "role": "member",
        "kind": "send_email",
        "anchor": ids["step_id"],
        "mode": "child",
        "item": "{}",
        "url": "https://globex.example/hook",
        "events": ["run.failed"],
        "sandbox": "",
    }


def test_tenant_b_reaches_nothing_of_tenant_a_on_any_route(client, outsider, tenant_a, tenant_b, acme):
    # Django's test client raises a view's exception: a 500 on any route fails the walk with its traceback.
    api = Client(headers={"Authorization": f"Bearer {ApiKey.issue(tenant_b, 'Globex', outsider)[1]}"})
    before = snapshot(tenant_a)
    walked, public = 0, []
    for route in all_routes():
        url = url_of(route, acme)
        person = api if url.startswith("/api/v1/") else client
        reason = public_reason(route)
        # A channel ("email") is a name, not an object of tenant A's: its provider list is a list.
        names_an_object = bool(set(route.params) - {"channel"})
        for method in ("get", "post"):
            if person is not api:
                client.force_login(outsider)  # a logout or a switch on the way must not end the walk
            if method == "post":
                response = person.post(url, post_data(acme))
            else:  # a list filtered by A's workflow shows nothing of A's
                response = person.get(url, {} if names_an_object else {"workflow": acme["workflow_id"]})
            raw = b"".join(response.streaming_content) if response.streaming else response.content
            body = raw.decode(errors="replace").lower()
            where = f"{method.upper()} {url} ({route.name or route.pattern})"
            assert response.status_code < 500, where
            assert MARK not in body, f"{where} shows tenant A's data"
            if reason is None and names_an_object:
                assert response.status_code in (403, 404, 405), f"{where}: {response.status_code}"
        walked += 1
        if reason:
            public.append(route.name or route.pattern)
    assert snapshot(tenant_a) == before
    # Every route of the URLconf was walked, and the exceptions really are the public ones.
    assert walked == len(all_routes()) > 100
    outside_admin = {name for name in public if not name.startswith(("admin", "django_rq"))}
    assert outside_admin == set(PUBLIC) - {"admin", "django_rq"}
    assert walked - len(public) > 50  # the tenant's own routes, each walked under the strict rule
