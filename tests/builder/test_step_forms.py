"""Each step kind's settings are a Django form: another workspace's rows are refused by the reference
fields' querysets, stored configs are the kinds' typed settings, files round-trip, and the panel shows
what applies (a wait's current mode, a webhook's URL first)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from consent.models import EmailLayout, Topic
from integrations.models import DataSource, Sender
from tests.builder.test_builder_views import add, save
from workflows.files import export_workflow, import_workflow
from workflows.models import Step, Workflow
from workflows.steps import STEP_KINDS, ConfigError, get_kind
from workflows.steps.forms import StepForm
from workflows.steps.references import ReferenceField, reference_fields

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
URL = "postgresql://postgres@127.0.0.1:5432/nowhere"  # never connected to


@pytest.fixture
def workflow(tenant_a, owner):
    return Workflow.objects.create(tenant=tenant_a, name="Onboarding", created_by=owner)


def rows_of(tenant) -> dict[str, int]:
    """One row of every kind a step can name, in `tenant`."""
    return {
        "datasource": DataSource.objects.create(tenant=tenant, name="DB", connection_url=URL).pk,
        "sender": Sender.objects.create(tenant=tenant, name="Support", from_address="s@example.com").pk,
        "topic": Topic.objects.create(tenant=tenant, name="News").pk,
        "layout": EmailLayout.objects.create(
            tenant=tenant, name="Brand", html="{% block content %}{% endblock %}"
        ).pk,
    }


EMAIL = {"to": "{{ item.email }}", "subject": "Hi", "text": "Hello"}
QUERY = {"sql": "SELECT id FROM users", "mode": "fanout"}


@pytest.mark.parametrize(
    "kind, field, config",
    [
        ("data_query", "datasource", QUERY),
        ("database_trigger", "datasource", {"table": "users"}),
        ("send_email", "sender", EMAIL),
        ("send_email", "topic", EMAIL),
        ("send_email", "layout", EMAIL),
    ],
)
def test_another_workspaces_row_is_refused_by_the_fields_queryset(tenant_a, tenant_b, kind, field, config):
    ours, theirs = rows_of(tenant_a), rows_of(tenant_b)
    step_kind = get_kind(kind)

    assert step_kind.validate({**config, field: ours[field]}, tenant_a.pk)[field] == ours[field]
    with pytest.raises(ConfigError) as refused:
        step_kind.validate({**config, field: theirs[field]}, tenant_a.pk)
    missing = max(ours[field], theirs[field]) + 1000
    with pytest.raises(ConfigError) as gone:
        step_kind.validate({**config, field: missing}, tenant_a.pk)
    # The same words for another workspace's row and a missing one: nothing about the other is told.
    assert refused.value.errors[field] == gone.value.errors[field]
    assert "does not exist" in refused.value.errors[field]


def test_the_builder_never_stores_another_workspaces_sender(owner_client, workflow, tenant_a, tenant_b):
    ours, theirs = rows_of(tenant_a), rows_of(tenant_b)
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    save(owner_client, workflow, email, sender=ours["sender"], **EMAIL)
    response = save(owner_client, workflow, email, sender=theirs["sender"], **{**EMAIL, "subject": "Typed"})

    email.refresh_from_db()
    assert email.config["sender"] == ours["sender"]  # the refused id is not stored, not even as typed
    assert email.config["subject"] == "Typed"  # what else was typed is kept
    assert "This sender does not exist" in response.content.decode()


def test_every_kind_has_a_form_with_typed_settings_and_its_default_config_is_valid():
    for name, kind in STEP_KINDS.items():
        assert issubclass(kind.form_class, StepForm), name
        try:
            stored = kind.validate(kind.default_config())
        except ConfigError as exc:
            # Defaults that need the person's input (a data source, a URL) say which field.
            assert exc.errors, name
            continue
        settings = kind.settings(stored)
        assert settings.to_json() == stored, name  # typed settings and the stored config agree
        assert kind.validate(stored) == stored, name  # a stored config is stable


def test_export_by_name_is_the_reference_fields_own():
    found = {
        (name, field_name, type(field).__name__)
        for name, kind in STEP_KINDS.items()
        for field_name, field in reference_fields(kind.form_class).items()
    }
    assert found == {
        ("database_trigger", "datasource", "DataSourceField"),
        ("data_query", "datasource", "DataSourceField"),
        ("wait", "datasource", "DataSourceField"),
        ("send_email", "sender", "SenderField"),
        ("send_email", "topic", "TopicField"),
        ("send_email", "layout", "LayoutField"),
    }
    assert all(
        isinstance(f, ReferenceField) for f in reference_fields(get_kind("send_email").form_class).values()
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_example_files_import_export_and_import_again_unchanged(tenant_a, path):
    data = json.loads(path.read_text())
    first = export_workflow(import_workflow(data, tenant_a))
    second = export_workflow(import_workflow(first, tenant_a))

    def configs(node):
        return [node["config"], *(c for child in node["children"] for c in configs(child))]

    assert configs(first["trigger"]) == configs(second["trigger"])
    # Every setting the file gave is kept as written (kinds add their defaults, never change a value).
    for given, kept in zip(configs(data["trigger"]), configs(first["trigger"]), strict=True):
        assert {key: kept[key] for key in given} == given


def test_a_file_with_every_reference_round_trips_by_name(tenant_a, tenant_b):
    rows_of(tenant_a)
    rows_of(tenant_b)
    names = {"sender": "Support", "topic": "News", "layout": "Brand"}
    data = {
        "format": "rowbell.workflow/1",
        "name": "All references",
        "trigger": {
            "kind": "webhook_trigger",
            "config": {"sample": {"email": "a@example.com"}},
            "children": [
                {"kind": "data_query", "config": {**QUERY, "datasource": {"name": "DB"}}, "children": []},
                {
                    "kind": "send_email",
                    "config": {
                        **EMAIL,
                        "allow_unsubscribe": True,
                        **{key: {"name": name} for key, name in names.items()},
                    },
                    "children": [],
                },
            ],
        },
    }
    exported = export_workflow(import_workflow(data, tenant_b))
    query, email = exported["trigger"]["children"]
    assert query["config"]["datasource"] == {"name": "DB"}
    assert {key: email["config"][key] for key in names} == {key: {"name": n} for key, n in names.items()}
    stored = Step.objects.get(version__workflow__tenant=tenant_b, kind="send_email").config
    assert stored["sender"] == Sender.objects.get(tenant=tenant_b).pk


def test_the_wait_panel_shows_only_the_current_modes_fields(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    wait = add(owner_client, workflow, "wait", trigger)
    page = owner_client.get(f"/workflows/{workflow.pk}/?step={wait.pk}").content.decode()
    assert 'id="f-amount"' in page and 'id="f-unit"' in page
    assert 'id="f-field"' not in page and 'id="f-offset_amount"' not in page

    response = save(owner_client, workflow, wait, mode="until", field="trial_ends_at", offset_amount="1")
    panel = response.content.decode()
    assert response["HX-Retarget"] == "#panel"  # the mode changed: the panel is drawn again
    assert 'id="f-field"' in panel and 'id="f-offset_direction"' in panel
    assert 'id="f-amount"' not in panel
    wait.refresh_from_db()
    assert wait.config == {
        "mode": "until",
        "field": "trial_ends_at",
        "offset_amount": 1,
        "offset_unit": "days",
        "offset_direction": "before",
    }


def test_the_webhook_panel_starts_with_how_to_call_it_and_the_node_shows_the_path(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    page = owner_client.get(f"/workflows/{workflow.pk}/?step={trigger.pk}").content.decode()
    panel = page[page.index('id="panel"') :]
    assert panel.index("Calling this webhook") < panel.index('id="step-form"')
    node = re.search(rf'id="node-summary-{trigger.pk}"[^>]*>([^<]*)<', page)
    assert node and node.group(1) == f"POST /hooks/{workflow.pk}/"


def test_a_slack_url_is_never_stored_in_the_clear_not_even_in_an_unfinished_draft(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    slack = add(owner_client, workflow, "slack_message", trigger)
    url = "https://hooks.slack.com/services/T0/B0/secret-part"

    save(owner_client, workflow, slack, webhook_url=url, text="Hi {{ item.email ")  # the text is wrong
    slack.refresh_from_db()
    assert url not in json.dumps(slack.config) and "webhook_url" not in slack.config
    assert slack.config["text"] == "Hi {{ item.email "  # kept as typed

    save(owner_client, workflow, slack, webhook_url="", text="Hi {{ item.email }}")  # the box stays empty
    slack.refresh_from_db()
    assert get_kind("slack_message").validate(slack.config) == slack.config
    assert get_kind("slack_message").settings(slack.config).webhook_url_encrypted


def test_the_schedule_panel_shows_only_what_its_frequency_reads(owner_client, workflow):
    trigger = add(owner_client, workflow, "schedule_trigger")
    page = owner_client.get(f"/workflows/{workflow.pk}/?step={trigger.pk}").content.decode()
    assert 'id="f-time"' in page and 'id="f-cron"' not in page and 'name="config-weekdays"' not in page

    response = save(owner_client, workflow, trigger, frequency="cron", cron="0 9 * * 1-5", timezone="UTC")
    panel = response.content.decode()
    assert response["HX-Retarget"] == "#panel"
    assert 'id="f-cron"' in panel and 'id="f-time"' not in panel
    trigger.refresh_from_db()
    assert trigger.config == {"frequency": "cron", "cron": "0 9 * * 1-5", "timezone": "UTC"}


def test_a_template_box_is_as_tall_as_its_text(owner_client, workflow):
    trigger = add(owner_client, workflow, "webhook_trigger")
    email = add(owner_client, workflow, "send_email", trigger)
    save(owner_client, workflow, email, to="{{ item.email }}", subject="Hi", text="one\ntwo\nthree")
    page = owner_client.get(f"/workflows/{workflow.pk}/?step={email.pk}").content.decode()

    def rows(name: str) -> str:
        return re.search(rf'<textarea id="f-{name}" rows="(\d+)"', page).group(1)

    assert (rows("subject"), rows("html"), rows("text")) == ("1", "1", "3")
