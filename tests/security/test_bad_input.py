"""Input PostgreSQL or Python cannot take (a NUL character, JSON nested 100,000 deep) is a 400 or a form
error that says what and where, and nothing is stored or queued. Every route that takes such input:
the API's "start a run", the webhook trigger, the workflow forms, a step's autosave and the test page."""

from __future__ import annotations

import html
import json
from types import SimpleNamespace

import django_rq
import pytest
from django.test import Client

from integrations.signing import signature_headers
from runs.engine import start_run
from runs.models import Run, StepExecution
from tenants.models import ApiKey
from tests.engine.conftest import build_workflow, clock, email, smtp, webhook, work  # noqa: F401 (fixtures, used through `sink`)
from tests.support import signed_in
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft
from workflows.steps.webhook_trigger import webhook_path

pytestmark = pytest.mark.django_db

DEEP = 100_000


@pytest.fixture
def live(tenant_a):
    """Published: webhook → email."""
    return build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Welcome")


@pytest.fixture
def person(client, owner) -> Client:
    """Tenant A's owner, signed in."""
    return signed_in(client, owner)


@pytest.fixture
def api(tenant_a, owner) -> Client:
    return Client(headers={"Authorization": f"Bearer {ApiKey.issue(tenant_a, 'CI', owner)[1]}"})


def queued() -> int:
    return sum(django_rq.get_queue(name).count for name in ("default", "low"))


def nothing_stored(workflows: int = 1, steps: int | None = None) -> None:
    assert Run.objects.count() == 0
    assert Workflow.objects.count() == workflows
    if steps is not None:
        assert Step.objects.count() == steps
    assert queued() == 0


def nested(depth: int) -> str:
    """`depth` arrays inside each other: [[[...]]]."""
    return "[" * depth + "]" * depth


def start(api: Client, workflow: Workflow, body: str, **headers) -> object:
    return api.post(
        f"/api/v1/workflows/{workflow.pk}/runs/", body, content_type="application/json", headers=headers
    )


def hook(workflow: Workflow, body: str, **extra) -> object:
    raw = body.encode()
    headers = {**signature_headers(workflow.webhook_secret, raw), **extra}
    return Client().post(webhook_path(workflow.pk), raw, content_type="application/json", headers=headers)


# --- JSON bodies: the API and the webhook --------------------------------------------------------------

NUL_BODIES = [
    ('{"payload": {"name": "Ada\\u0000"}}', "$.payload.name", "value"),
    ('{"payload": {"tags": ["ok", "x\\u0000y"]}}', "$.payload.tags[1]", "value"),
    ('{"payload": {"a\\u0000b": 1}}', '$.payload["a\\u0000b"]', "key"),
    ('{"payload": {"deep": {"er": [{"\\u0000": null}]}}}', '$.payload.deep.er[0]["\\u0000"]', "key"),
]


@pytest.mark.parametrize(("body", "path", "what"), NUL_BODIES)
def test_api_refuses_a_nul_anywhere_naming_where(api, live, redis_conn, body, path, what):
    response = start(api, live, body)

    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert path in detail and "NUL" in detail and what in detail, detail
    nothing_stored()


@pytest.mark.parametrize(("body", "path", "what"), NUL_BODIES)
def test_webhook_refuses_a_nul_anywhere_naming_where(live, redis_conn, body, path, what):
    # The webhook's item is the body itself, so the path has no "payload".
    body = json.dumps(json.loads(body)["payload"])
    response = hook(live, body)

    assert response.status_code == 400, response.content
    assert path.replace(".payload", "") in response.json()["detail"]
    nothing_stored()


def test_a_nul_in_the_idempotency_key_is_400(api, live, redis_conn):
    response = start(api, live, '{"payload": {}}', **{"Idempotency-Key": "order\x007"})

    assert response.status_code == 400
    assert "Idempotency-Key contains a NUL" in response.json()["detail"]
    nothing_stored()


def test_json_nested_100000_deep_is_400_not_a_recursion_error(api, live, redis_conn):
    api_answer = start(api, live, '{"payload": {"a": ' + nested(DEEP) + "}}")
    hook_answer = hook(live, '{"a": ' + nested(DEEP) + "}")

    for response in (api_answer, hook_answer):
        assert response.status_code == 400, response.content
        assert "nests deeper than 64 levels" in response.json()["detail"]
    nothing_stored()


def test_the_depth_limit_is_json_max_depth(
    api, live, redis_conn, settings, django_capture_on_commit_callbacks
):
    settings.JSON_MAX_DEPTH = 5
    # The body and "payload" are two levels: three arrays more make five.
    too_deep = start(api, live, '{"payload": {"a": ' + nested(4) + "}}")
    assert too_deep.status_code == 400
    assert "deeper than 5 levels (at $.payload.a[0][0][0])" in too_deep.json()["detail"]
    nothing_stored()

    with django_capture_on_commit_callbacks(execute=True):
        fits = start(api, live, '{"payload": {"a": ' + nested(3) + "}}")
    assert fits.status_code == 202, fits.content
    assert Run.objects.get().payload == {"a": [[[]]]}
    assert queued() == 1  # the control: an accepted run is stored and queued


def test_a_nul_in_the_query_string_is_a_json_400_for_the_api(api, live):
    response = api.get("/api/v1/runs/", {"status": "failed\x00"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The query field “status” contains a NUL character (\\0), which cannot be stored: remove it."
    }


# --- Forms -----------------------------------------------------------------------------------------------


def test_a_nul_in_a_new_workflow_name_is_400_and_creates_nothing(person, tenant_a):
    response = person.post("/workflows/new/", {"name": "Welcome\x00"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "“name” contains a NUL character" in response.content.decode()
    nothing_stored(workflows=0)


def test_a_nul_in_a_rename_is_400_and_keeps_the_name(person, live):
    response = person.post(f"/workflows/{live.pk}/rename/", {"name": "Evil\x00"})

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
    live.refresh_from_db()
    assert live.name == "Welcome"


def test_a_nul_in_a_search_is_400(person, live):
    response = person.get("/activity/", {"q": "a\x00"})

    assert response.status_code == 400
    assert "“q” contains a NUL character" in response.content.decode()


@pytest.fixture
def draft_steps(tenant_a):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Draft", publish_it=False)
    steps = {step.kind: step for step in get_or_create_draft(workflow).steps.all()}
    return workflow, steps


def save(client, workflow, step, **fields):
    return client.post(
        f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
        {"revision": str(step.version.revision), **fields},
        headers={"HX-Request": "true"},
    )


def test_autosave_reports_a_nul_under_the_field_and_keeps_the_saved_value(person, draft_steps):
    workflow, steps = draft_steps
    send = steps["send_email"]
    before = dict(send.config)

    response = save(person, workflow, send, name="Wel\x00come", **{"config-subject": "Hi\x00"})

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("contains a NUL character") == 2  # under the name and under the subject
    send.refresh_from_db()
    assert send.name == "Welcome" and send.config == before


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ('{"email": "a\\u0000@b.c"}', "$.email contains a NUL"),
        (nested(DEEP), "nests deeper than 64 levels"),
    ],
)
def test_autosave_of_a_json_field_reports_what_cannot_be_stored(person, draft_steps, typed, words):
    workflow, steps = draft_steps
    trigger = steps["webhook_trigger"]

    response = save(person, workflow, trigger, **{"config-sample": typed})

    assert response.status_code == 200
    assert words in response.content.decode()
    trigger.refresh_from_db()
    # Kept as typed (a string, like any value that does not validate), never as JSON with a NUL in it.
    assert trigger.config["sample"] == typed


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ('{"email": "a@b.c\x00"}', "Invalid control character"),
        ('{"email": "a@b.c\\u0000"}', "$.email contains a NUL"),
        ('{"\\u0000": 1}', 'The key $["\\u0000"] contains a NUL'),
        (nested(DEEP), "nests deeper than 64 levels"),
    ],
)
def test_the_test_page_reports_an_item_it_cannot_store(person, draft_steps, item, words):
    workflow, _ = draft_steps

    response = person.post(f"/workflows/{workflow.pk}/test/", {"item": item, "skip_waits": "on"})

    assert response.status_code == 200
    assert words in html.unescape(response.content.decode())
    nothing_stored(steps=2)


def test_the_test_page_still_starts_a_run_on_a_good_item(person, draft_steps):
    workflow, _ = draft_steps

    response = person.post(f"/workflows/{workflow.pk}/test/", {"item": '{"email": "a@b.c"}'})

    assert response.status_code == 302
    assert Run.objects.get().payload == {"email": "a@b.c"}


# --- JSON from outside that the engine stores: an HTTP step's response -----------------------------------


@pytest.fixture
def sink(request):
    """The engine (real commits, clean Redis, test clock) and the SMTP sink."""
    return SimpleNamespace(clock=request.getfixturevalue("clock"), smtp=request.getfixturevalue("smtp"))


@pytest.mark.parametrize(
    ("answer", "words"),
    [('{"name": "Ann\\u0000"}', "$.name contains a NUL"), (nested(DEEP), "nests deeper than 64 levels")],
)
@pytest.mark.django_db(transaction=True)  # the engine commits
def test_an_http_response_that_cannot_be_stored_fails_the_step_clearly(
    sink, tenant_a, httpserver, answer, words
):
    httpserver.expect_request("/users").respond_with_data(answer, content_type="application/json")
    http_step = {
        "kind": "http_request",
        "config": {"method": "GET", "url": httpserver.url_for("/users"), "response": "merge"},
        "children": [email()],
    }
    run = start_run(build_workflow(tenant_a, webhook([http_step])), {"email": "a@b.co"}, "evt")

    work(sink.clock)

    execution = StepExecution.objects.get(run=run, step__kind="http_request")
    assert execution.status == "failed", execution.error
    assert words in execution.error and "cannot become the item" in execution.error
    assert sink.smtp.recipients() == []


# --- The admin's JSON fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "words"),
    [('{"subject": "Hi\\u0000"}', "$.subject contains a NUL"), (nested(DEEP), "nests deeper than 64 levels")],
)
def test_the_admin_reports_step_config_it_cannot_store(client, admin_user, draft_steps, typed, words):
    client.force_login(admin_user)
    step = draft_steps[1]["send_email"]
    before = dict(step.config)
    form = {
        "tenant": step.tenant_id,
        "version": step.version_id,
        "parent": step.parent_id,
        "position": step.position,
        "kind": step.kind,
        "name": step.name,
        "config": typed,
    }

    response = client.post(f"/admin/workflows/step/{step.pk}/change/", form)

    assert response.status_code == 200  # the form again, with the error
    assert words in html.unescape(response.content.decode())
    step.refresh_from_db()
    assert step.config == before
