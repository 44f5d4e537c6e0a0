"""Send window settings through workflow files and the workspace page: every send kind takes them, they
survive export and import, nonsense is refused with a message naming the field, and nothing is lost."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.test_registries import SAMPLES, references, the_step, workflow_file  # noqa: F401 (a fixture)
from workflows.files import WorkflowFileError, export_workflow, import_workflow
from workflows.models import Workflow
from workflows.steps import STEP_KINDS
from workflows.steps.send_kind import SendKind

pytestmark = pytest.mark.django_db
SEND_KINDS = sorted(name for name, kind in STEP_KINDS.items() if isinstance(kind, SendKind))
WINDOW = {
    "send_window": "mon-fri 09:00-18:00; not fri 12:00-13:00",
    "send_window_zone": "{{ item.timezone }}",
}


def test_every_sending_kind_is_covered():
    assert SEND_KINDS == ["http_request", "send_email", "slack_message"]


@pytest.mark.parametrize("kind", SEND_KINDS)
def test_a_window_survives_export_and_import(kind, tenant_a, references):  # noqa: F811
    config = {**SAMPLES[kind], **WINDOW, "urgent": True}
    exported = export_workflow(import_workflow(workflow_file(kind, config), tenant_a))
    step = the_step(exported, kind)["config"]
    assert {key: step[key] for key in (*WINDOW, "urgent")} == {**WINDOW, "urgent": True}


@pytest.mark.parametrize("kind", SEND_KINDS)
def test_no_window_leaves_the_file_as_it_was(kind, tenant_a, references):  # noqa: F811
    step = the_step(export_workflow(import_workflow(workflow_file(kind, SAMPLES[kind]), tenant_a)), kind)
    assert not {"send_window", "send_window_zone", "urgent"} & set(step["config"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("send_window", "weekdays 9 to 5", "write days and a span"),
        ("send_window", "mon-fri 09:00-25:00", "is not a time of day"),
        ("send_window", ["mon"], "must be text"),
        ("send_window_zone", "{{ item.timezone", "Template error"),
        ("urgent", "very", "must be true or false"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(field, value, message, tenant_a, references):  # noqa: F811
    config = {**SAMPLES["send_email"], field: value}
    with pytest.raises(WorkflowFileError) as refused:
        import_workflow(workflow_file("send_email", config), tenant_a)
    assert message in str(refused.value.errors["trigger/0"][field])
    assert not Workflow.objects.exists()  # nothing half-imported


def test_always_is_kept_as_written(tenant_a, references):  # noqa: F811
    config = {**SAMPLES["send_email"], "send_window": "  Always "}
    step = the_step(
        export_workflow(import_workflow(workflow_file("send_email", config), tenant_a)), "send_email"
    )
    assert step["config"]["send_window"] == "always"


def test_the_sending_defaults_page_refuses_nonsense_and_members_only_read(
    owner_client, member_client, tenant_a
):
    url = reverse("workflows:sending_defaults")
    assert member_client.get(url).status_code == 200
    assert member_client.post(url, {"time_zone": "Europe/Berlin", "send_window": ""}).status_code == 403
    for data, message in [
        ({"time_zone": "Nowhere/City", "send_window": ""}, "is not a time zone"),
        ({"time_zone": "Europe/Berlin", "send_window": "nights"}, "write days and a span"),
        ({"time_zone": "x" * 5000, "send_window": ""}, "Ensure this value has at most 64 characters"),
        ({"send_window": ""}, "This field is required"),
    ]:
        response = owner_client.post(url, data)
        assert response.status_code == 200 and message in response.content.decode(), data
    # A NUL byte is refused before the view (the project's NUL input guard): a 400, nothing saved.
    assert owner_client.post(url, {"time_zone": "UTC", "send_window": "mon\x00"}).status_code == 400
    tenant_a.refresh_from_db()
    assert (tenant_a.time_zone, tenant_a.send_window) == ("UTC", "")
    response = owner_client.post(url, {"time_zone": " Asia/Tokyo ", "send_window": "mon-fri   09:00-18:00"})
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert (tenant_a.time_zone, tenant_a.send_window) == ("Asia/Tokyo", "mon-fri 09:00-18:00")
