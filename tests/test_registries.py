"""Every registered extension point is covered: each step kind (workflows/steps STEP_KINDS), channel
(integrations/channels CHANNELS) and provider kind (integrations/providers/registry.py PROVIDER_KINDS) has a usable
config, survives a workflow file's export and import, has its templates and its tracking help, and the
tests that walk a registry by hand list exactly what it holds. Each provider kind (and the test-only SMS
gateway, registered as a new kind would be) gets its channel's list, its credentials form, its page with
the channel's test form, a test send that answers in words, and a tracking webhook that refuses strangers. A kind added to a registry without a line
here, or without its templates, fails this module rather than going untested."""

from __future__ import annotations

import base64

import pytest
from django import forms
from django.template.loader import get_template
from django.test import Client
from django.urls import reverse

from integrations.channels.registry import CHANNELS
from integrations.crypto import decrypt
from integrations.models import DataSource, Provider
from integrations.providers.forms import ProviderForm
from integrations.providers.registry import PROVIDER_KINDS as KINDS
from runs.models import DeliveryEvent
from tests.emailing import test_sending, test_tracking
from tests.emailing.conftest import make_sender
from tests.sms.gateway import TestSmsGateway
from tests.sms.registration import register as register_sms
from tests.support import signed_in
from workflows.files import WorkflowFileError, export_workflow, import_workflow
from workflows.models import Workflow
from workflows.steps import STEP_KINDS
from workflows.steps.send_kind import SendKind

# A small working config per step kind, as a workflow file writes it (references by name). Kinds that
# need no setting have {}; a new kind needs its line here.
SAMPLES = {
    "webhook_trigger": {},
    "database_trigger": {
        "datasource": {"name": "Shop"},
        "schema": "public",
        "table": "users",
        "operations": ["insert", "update"],
    },
    "schedule_trigger": {"frequency": "daily", "time": "08:30", "timezone": "Europe/Berlin"},
    "supabase_auth_email": {"run_label": "{{ item.email }}"},
    "wait": {"mode": "duration", "amount": 2, "unit": "hours"},
    "throttle": {"limit": 3, "amount": 1, "unit": "days", "key": "{{ item.email }}", "policy": "defer"},
    "digest": {
        "key": "{{ item.post_id }}",
        "window": "sliding",
        "amount": 10,
        "unit": "minutes",
        "max_amount": 2,
        "max_unit": "hours",
        "release_at_count": 50,
    },
    "data_query": {"datasource": {"name": "Shop"}, "sql": "SELECT id, email FROM users", "mode": "fanout"},
    "condition": {"expression": "item.plan == 'pro'"},
    "branch": {
        "paths": [
            {
                "id": "p1",
                "label": "Pro",
                "match": "rule",
                "field": "plan",
                "operator": "equals",
                "value": "pro",
            }
        ]
    },
    "send_email": {
        "sender": {"name": "Support"},
        "to": "{{ item.email }}",
        "subject": "Hi",
        "text": "Hello",
        "priority": "low",
        "over_budget": "defer",
    },
    "slack_message": {
        "webhook_url": "https://hooks.slack.com/services/T0/B0/abc",
        "text": "New: {{ item.id }}",
    },
    "http_request": {"method": "POST", "url": "https://api.example.com/hook"},
}
# Stored encrypted under `<field>_encrypted`: the file carries that token, never the plain value.
SECRET_FIELDS = {("slack_message", "webhook_url")}

ESP_KINDS = {key for key in KINDS if KINDS[key].sends_over_http}


@pytest.fixture
def references(tenant_a):
    """The rows the samples name, in tenant A."""
    DataSource.objects.create(
        tenant=tenant_a, name="Shop", connection_url="postgresql://u:p@db.example.com/shop"
    )
    make_sender(tenant_a)


def workflow_file(kind: str, config: dict) -> dict:
    """A workflow file with one step of `kind`: the trigger itself, or under a webhook trigger."""
    node = {"kind": kind, "name": f"A {kind}", "config": config, "children": []}
    if not STEP_KINDS[kind].is_trigger:
        node = {"kind": "webhook_trigger", "name": "Webhook", "config": {}, "children": [node]}
    return {"format": "rowbell.workflow/1", "name": f"Sample {kind}", "description": "", "trigger": node}


def the_step(data: dict, kind: str) -> dict:
    node = data["trigger"]
    return node if node["kind"] == kind else node["children"][0]


def test_every_step_kind_has_a_sample():
    assert set(SAMPLES) == set(STEP_KINDS)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(STEP_KINDS))
def test_a_kinds_default_config_is_usable_or_names_only_fields_the_person_must_fill(
    kind, tenant_a, references
):
    default = STEP_KINDS[kind].default_config()
    try:
        import_workflow(workflow_file(kind, default), tenant_a)
    except WorkflowFileError as refused:
        [(path, fields)] = refused.errors.items()
        assert path in ("trigger", "trigger/0"), refused.errors
        # What the default leaves open is what a person must choose, and the sample chooses it.
        assert set(fields) <= set(SAMPLES[kind]), fields


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(STEP_KINDS))
def test_a_kind_survives_export_and_import_unchanged(kind, tenant_a, tenant_b, references):
    file = workflow_file(kind, SAMPLES[kind])
    exported = export_workflow(import_workflow(file, tenant_a))
    step = the_step(exported, kind)
    assert step["kind"] == kind and step["name"] == f"A {kind}"
    for field, value in SAMPLES[kind].items():
        if (kind, field) in SECRET_FIELDS:
            assert field not in step["config"] and decrypt(step["config"][f"{field}_encrypted"]) == value
        else:
            assert step["config"][field] == value, field
    # The exported file imports again (references by name) and exports the same settings.
    again = export_workflow(import_workflow(exported, tenant_a))
    assert the_step(again, kind)["config"] == step["config"]
    # In a tenant without the named rows, a reference is an error naming the field, never a foreign id.
    if any(value == {"name": "Shop"} or value == {"name": "Support"} for value in SAMPLES[kind].values()):
        with pytest.raises(WorkflowFileError):
            import_workflow(exported, tenant_b)
    assert Workflow.objects.filter(tenant=tenant_b).count() == 0


@pytest.mark.parametrize("kind", sorted(STEP_KINDS))
def test_a_kinds_templates_exist(kind):
    if STEP_KINDS[kind].previews_in_panel:
        get_template(f"workflows/panel_preview/{kind}.html")


def test_every_send_kind_names_a_registered_channel():
    channels = {kind.channel for kind in STEP_KINDS.values() if isinstance(kind, SendKind)}
    assert channels == set(CHANNELS)  # and every channel is used by a step kind


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_a_channel_has_its_message_template(name):
    get_template(f"runs/delivery_content/{name}.html")  # not only the any.html fallback


# Every provider kind, and the test-only SMS gateway registered like a new kind would be (tests/sms/).
ALL_KINDS = {**KINDS, "test_sms": TestSmsGateway()}
# Settings that point each kind at a local port where nothing listens: its test send must come back as
# an answer in words. A new kind needs its line here.
UNREACHABLE = "http://127.0.0.1:9/"
UNREACHABLE_SETTINGS = {
    "smtp": {"host": "127.0.0.1", "port": 9, "tls": "none"},
    "amazon_ses": {"region": "us-east-1", "access_key_id": "AKIAEXAMPLE", "endpoint_url": UNREACHABLE},
    "brevo": {"api_url": UNREACHABLE},
    "mailgun": {"api_url": UNREACHABLE},
    "postmark": {"api_url": UNREACHABLE},
    "resend": {"api_url": UNREACHABLE},
    "sendgrid": {"api_url": UNREACHABLE},
    "test_sms": {"api_url": UNREACHABLE},
}
# A recipient each channel's test form refuses, and one it takes.
RECIPIENTS = {"email": ("not an address", "me@acme.example"), "sms": ("not a phone", "+15550000001")}


@pytest.fixture
def kind_registered(monkeypatch, settings):
    """Registers the SMS lines (the test-only kind); lets the kinds reach 127.0.0.1."""
    register_sms(monkeypatch)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def provider_of(tenant, key: str) -> Provider:
    provider = Provider(tenant=tenant, kind=key, name=f"A {key}", settings=UNREACHABLE_SETTINGS[key])
    provider.secret_values = {name: "secret-0123456789" for name in ALL_KINDS[key].form().secret_names}
    provider.save()
    return provider


def test_every_provider_kind_is_walked():
    assert set(UNREACHABLE_SETTINGS) == set(ALL_KINDS)
    assert {kind.channel for kind in ALL_KINDS.values()} == set(RECIPIENTS)


@pytest.mark.parametrize("key", sorted(ALL_KINDS))
def test_a_provider_kinds_credentials_form_is_a_labelled_django_form(key, kind_registered):
    kind = ALL_KINDS[key]
    form = kind.form()
    assert isinstance(form, ProviderForm) and kind.label and kind.channel in CHANNELS
    assert next(iter(form.fields)) == "name" and len(form.fields) > 1
    for name, field in form.fields.items():
        assert field.label or name == "name", name
        if isinstance(field, forms.ChoiceField) and field.initial:
            assert field.initial in dict(field.choices), name
    for name in form.secret_names:
        assert isinstance(form.fields[name].widget, forms.PasswordInput), name
    assert "<input" in form.as_div()


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(ALL_KINDS))
def test_a_provider_kinds_pages_test_send_and_webhook_answer(key, kind_registered, owner, tenant_a):
    kind = ALL_KINDS[key]
    client = signed_in(Client(), owner)
    pages = {"channel": kind.channel}
    listing = client.get(reverse("providers:settings", kwargs=pages)).content.decode()
    add = reverse("providers:provider_add", kwargs=pages) + f"?kind={key}"
    assert add.replace("&", "&amp;") in listing or add in listing
    form_page = client.get(add).content.decode()
    for name in kind.form().fields:
        assert f'name="{name}"' in form_page, name

    provider = provider_of(tenant_a, key)
    detail = reverse("providers:provider", kwargs={**pages, "provider_id": provider.pk})
    page = client.get(detail).content.decode()
    assert provider.name in page and 'name="to"' in page and "secret-0123456789" not in page
    token_url = f"{provider.webhook_token}/"
    assert (token_url in page) == kind.has_tracking_webhook

    # The test send: a recipient the channel refuses sends nothing; one it takes gets the provider's answer.
    test = reverse("providers:provider_test", kwargs={**pages, "provider_id": provider.pk})
    refused, taken = RECIPIENTS[kind.channel]
    assert client.post(test, {"to": refused}).status_code == 302
    provider.refresh_from_db()
    assert provider.last_test_ok is None
    assert client.post(test, {"to": taken}).status_code == 302
    provider.refresh_from_db()
    assert provider.last_test_ok is False and provider.last_test_message.startswith("Refused ("), (
        provider.last_test_message
    )

    # The tracking webhook: strangers get 401, a garbled body never a 5xx, and nothing is stored.
    hook = reverse("provider_tracking", args=[provider.webhook_token])
    if not kind.has_tracking_webhook:
        assert Client().post(hook, "{}", content_type="application/json").status_code == 404
        return
    assert Client().get(hook).status_code == 200
    assert Client().post(hook, "{}", content_type="application/json").status_code == 401
    auth = "Basic " + base64.b64encode(provider.webhook_credentials.encode()).decode()
    for body in ("not json", "[]", "{}", '{"a": [1, {"b": null}]}'):
        answer = Client().post(hook, body, content_type="application/json", HTTP_AUTHORIZATION=auth)
        assert answer.status_code in (200, 400, 401), (body, answer.status_code)
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize("key", sorted(ALL_KINDS))
def test_a_provider_kind_with_tracking_webhooks_says_how_to_set_them_up(key, kind_registered):
    kind = ALL_KINDS[key]
    if kind.has_tracking_webhook:
        assert len(kind.webhook_help) > 40
    else:
        assert not kind.webhook_help  # no help for a webhook that does not exist
        assert not kind.sends_over_http  # every ESP reports events


def parametrized(test, argname: str) -> set[str]:
    values = [m.args[1] for m in test.pytestmark if m.name == "parametrize" and m.args[0] == argname]
    return set(values[0])


def test_the_email_tests_cover_every_provider_kind():
    assert set(KINDS) - {"smtp"} == ESP_KINDS
    assert set(test_sending.ESP_ANSWERS) == ESP_KINDS
    assert {case[0] for case in test_sending.ESP_ERRORS} == ESP_KINDS
    assert parametrized(
        test_sending.test_an_esp_url_inside_the_network_is_refused_before_any_request, "kind"
    ) == (ESP_KINDS)
    assert set(test_tracking.CASES) == {key for key, kind in KINDS.items() if kind.has_tracking_webhook}
