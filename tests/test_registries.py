"""Every registered extension point is covered: each step kind (workflows/steps STEP_KINDS), channel
(integrations/channels CHANNELS) and provider kind (integrations/providers/registry.py PROVIDER_KINDS) has a usable
config, survives a workflow file's export and import, has its templates and its tracking help, and the
tests that walk a registry by hand list exactly what it holds. A kind added to a registry without a line
here, or without its templates, fails this module rather than going untested."""

from __future__ import annotations

import pytest
from django.template.loader import get_template

from integrations.channels.registry import CHANNELS
from integrations.crypto import decrypt
from integrations.models import DataSource
from integrations.providers.registry import PROVIDER_KINDS as KINDS
from tests.emailing import test_sending, test_tracking
from tests.emailing.conftest import make_sender
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
    "wait": {"mode": "duration", "amount": 2, "unit": "hours"},
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
    "send_email": {"sender": {"name": "Support"}, "to": "{{ item.email }}", "subject": "Hi", "text": "Hello"},
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


@pytest.mark.parametrize("key", sorted(KINDS))
def test_a_provider_kinds_fields_are_required_or_have_a_default(key):
    kind = KINDS[key]
    assert kind.label and kind.fields
    for field in kind.fields:
        assert field.label, field.name
        if field.choices and field.default:
            assert field.default in dict(field.choices), field.name
    names = [field.name for field in kind.fields]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("key", sorted(KINDS))
def test_a_provider_kind_with_tracking_webhooks_says_how_to_set_them_up(key):
    kind = KINDS[key]
    if kind.tracking_view is not None:
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
    assert set(test_tracking.CASES) == {key for key, kind in KINDS.items() if kind.tracking_view}
