"""The audit log: every audited action leaves exactly one event naming who did it (a person, an API key,
an operator in the Django admin), in the right tenant; nothing when nothing happened; admins and owners
read it at /settings/audit/; nobody edits or deletes an event, not even in SQL."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from integrations.models import DataSource, Provider
from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tenants.audit import ACTIONS, record
from tenants.models import ApiKey, AuditEditRefused, AuditEvent, Invitation, Membership, Role
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.api.conftest import key_client
from tests.builder.test_publish_and_tenancy import webhook_workflow
from tests.engine import conftest as engine_fixtures
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.support import PASSWORD, finished_preview_token, make_user, signed_in

clock, smtp = engine_fixtures.clock, engine_fixtures.smtp

AUDIT = "/settings/audit/"


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_since(mark: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=mark).order_by("id"))


def one_event(mark: int, action: str, actor, tenant, **expected) -> AuditEvent:
    """The one event written since `mark`: this action, by this actor, in this tenant."""
    events = events_since(mark)
    assert [e.action for e in events] == [action]
    event = events[0]
    assert event.tenant_id == tenant.pk
    if isinstance(actor, ApiKey):
        assert event.actor is None and actor.prefix in event.actor_label
        assert event.via == AuditEvent.Via.API
    else:
        assert event.actor == actor and event.actor_label == actor.get_username()
    for field, value in expected.items():
        assert getattr(event, field) == value, (field, getattr(event, field))
    return event


# ---- what is recorded -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_publishing_and_unpublishing(admin, tenant_a):
    workflow = webhook_workflow(tenant_a)
    client = signed_in(Client(), admin)

    mark = last_id()
    token = finished_preview_token(workflow)
    data = {"sandbox": "on", "token": token}
    assert client.post(f"/workflows/{workflow.pk}/publish/confirm/", data).status_code == 204
    published = one_event(mark, "workflow.published", admin, tenant_a, object_id=str(workflow.pk))
    assert published.details == {"version": 1, "sandbox": True, "preview_token": token[:12], "in_flight": []}
    assert published.object_label == "Hooked"

    mark = last_id()
    client.post(f"/workflows/{workflow.pk}/unpublish/")
    one_event(mark, "workflow.unpublished", admin, tenant_a, object_type="workflow")


def test_activity_log_actions(clock, smtp, tenant_a, owner):
    workflow = build_workflow(tenant_a, webhook([email()]), name="Sandboxed", sandbox=True)
    runs = [start_run(workflow, {"email": f"p{n}@example.com", "name": "P"}, f"evt-{n}") for n in range(3)]
    work(clock)
    held = list(Delivery.objects.order_by("id").values_list("pk", flat=True))
    client = signed_in(Client(), owner)

    mark = last_id()
    client.post(reverse("runs:release_messages"), {"ids": [held[0]]})
    released = one_event(mark, "messages.released", owner, tenant_a, object_type="delivery")
    assert released.details == {"ids": [held[0]], "sent": [held[0]]}

    mark = last_id()
    client.post(reverse("runs:discard_messages"), {"ids": held[1:]})
    assert one_event(mark, "messages.discarded", owner, tenant_a).details == {"ids": held[1:]}

    mark = last_id()
    client.post(reverse("runs:replay_run", args=[runs[0].pk]))
    replayed = one_event(mark, "run.replayed", owner, tenant_a, object_id=str(runs[0].pk))
    assert Run.objects.filter(pk=replayed.details["new_run"], event_key__contains=":replay:").exists()


def test_retrying_a_failed_step(clock, smtp, tenant_a, owner):
    smtp.refuse["ann@example.com"] = "550 no such mailbox"
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    failed = StepExecution.objects.get(run=run, step__kind="send_email", status="failed")

    mark = last_id()
    signed_in(Client(), owner).post(reverse("runs:retry_execution", args=[failed.pk]))

    event = one_event(mark, "execution.retried", owner, tenant_a, object_id=str(failed.pk))
    assert event.details == {"run": run.pk}


@pytest.fixture
def onboarding(tenant_a):
    return build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Onboarding")


@pytest.mark.django_db
def test_cancelling_from_the_activity_log_and_the_api(onboarding, tenant_a, owner):
    by_person, by_program = (make_run(onboarding, f"evt-{n}", status=Run.Status.RUNNING) for n in range(2))
    api_key, key = ApiKey.issue(tenant_a, "Billing service", owner)

    mark = last_id()
    signed_in(Client(), owner).post(reverse("runs:cancel_run", args=[by_person.pk]))
    one_event(mark, "run.cancelled", owner, tenant_a, object_id=str(by_person.pk), via="web")

    mark = last_id()
    assert key_client(key).post(f"/api/v1/runs/{by_program.pk}/cancel/").status_code == 200
    event = one_event(mark, "run.cancelled", api_key, tenant_a, object_id=str(by_program.pk))
    assert event.actor_label == f"API key “Billing service” ({api_key.prefix}…)"

    mark = last_id()  # already cancelled: nothing happens, nothing is recorded
    signed_in(Client(), owner).post(reverse("runs:cancel_run", args=[by_person.pk]))
    assert key_client(key).post(f"/api/v1/runs/{by_program.pk}/cancel/").status_code == 409
    assert events_since(mark) == []


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("op", "op@example.com", PASSWORD)


def admin_action(client: Client, model: str, action: str, ids: list[int]):
    url = reverse(f"admin:runs_{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": ids, "index": 0})


@pytest.mark.django_db
def test_django_admin_actions_record_the_operator_in_each_tenant(
    onboarding, tenant_a, tenant_b, operator, redis_conn
):
    globex_flow = build_workflow(tenant_b, webhook([email(name="Welcome")]), name="Globex onboarding")
    acme_run = make_run(onboarding, "a-1", status=Run.Status.RUNNING)
    globex_run = make_run(globex_flow, "b-1", status=Run.Status.RUNNING)
    client = signed_in(Client(), operator)

    mark = last_id()
    admin_action(client, "run", "cancel_runs", [acme_run.pk, globex_run.pk])
    events = events_since(mark)
    assert sorted((e.tenant_id, e.object_id) for e in events) == sorted(
        [(tenant_a.pk, str(acme_run.pk)), (tenant_b.pk, str(globex_run.pk))]
    )
    assert {(e.action, e.actor, e.via) for e in events} == {("run.cancelled", operator, "admin")}

    failed = add_execution(acme_run, steps_of(onboarding)["Welcome"], "1", status=StepExecution.Status.FAILED)
    mark = last_id()
    admin_action(client, "stepexecution", "retry_executions", [failed.pk])
    one_event(mark, "execution.retried", operator, tenant_a, object_id=str(failed.pk), via="admin")

    def held_message(run, workflow, recipient: str) -> int:
        execution = add_execution(run, steps_of(workflow)["Welcome"], recipient)
        return add_delivery(execution, recipient, status=Delivery.Status.HELD).pk

    acme_held = [held_message(acme_run, onboarding, f"a{n}@example.com") for n in range(2)]
    globex_held = held_message(globex_run, globex_flow, "b@example.com")
    mark = last_id()
    admin_action(client, "delivery", "discard_deliveries", [*acme_held, globex_held])
    by_tenant = {e.tenant_id: e for e in events_since(mark)}
    assert len(events_since(mark)) == 2
    assert sorted(by_tenant[tenant_a.pk].details["ids"]) == sorted(acme_held)
    assert by_tenant[tenant_b.pk].details["ids"] == [globex_held]
    assert {e.action for e in by_tenant.values()} == {"messages.discarded"}


@pytest.mark.django_db
def test_operators_changing_members_and_data_sources_in_the_django_admin(
    tenant_a, owner, member, admin, operator, tenant_database
):
    client = signed_in(Client(), operator)
    membership = Membership.objects.get(user=member)
    _held, token = Invitation.issue(tenant_a, "friend@example.com", Role.MEMBER, admin)

    mark = last_id()
    client.post(
        reverse("admin:tenants_membership_change", args=[membership.pk]),
        {"user": member.pk, "tenant": tenant_a.pk, "role": "admin"},
    )
    changed = one_event(mark, "member.role_changed", operator, tenant_a, via="admin", object_label="max")
    assert changed.details == {"old": "member", "new": "admin"}

    mark = last_id()
    removal = reverse("admin:tenants_membership_delete", args=[Membership.objects.get(user=admin).pk])
    client.post(removal, {"post": "yes"})
    one_event(mark, "member.removed", operator, tenant_a, via="admin", object_label="ada")
    assert Client().get(f"/accounts/invite/{token}/").status_code == 410  # the link ada sent

    source = DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=tenant_database)
    mark = last_id()
    client.post(
        reverse("admin:integrations_datasource_change", args=[source.pk]),
        {"tenant": tenant_a.pk, "name": "Main"},
    )
    one_event(mark, "datasource.changed", operator, tenant_a, via="admin", object_label="Main")
    mark = last_id()
    client.post(reverse("admin:integrations_datasource_delete", args=[source.pk]), {"post": "yes"})
    one_event(mark, "datasource.deleted", operator, tenant_a, via="admin", object_id=str(source.pk))


@pytest.mark.django_db
def test_operators_changing_members_inline_on_the_tenant(tenant_a, owner, member, admin, operator):
    memberships = list(Membership.objects.filter(tenant=tenant_a).order_by("pk"))
    form = {"name": "Acme", "slug": "acme", "memberships-INITIAL_FORMS": len(memberships)}
    form.update({"memberships-TOTAL_FORMS": len(memberships), "memberships-MIN_NUM_FORMS": 0})
    # The tenant's sending defaults and its (empty) limits inline, as the page posts them.
    form.update({"time_zone": "UTC", "send_window": "", "limits-TOTAL_FORMS": 0, "limits-INITIAL_FORMS": 0})
    for n, membership in enumerate(memberships):
        role = "admin" if membership.user == member else membership.role
        form.update({f"memberships-{n}-id": membership.pk, f"memberships-{n}-tenant": tenant_a.pk})
        form.update({f"memberships-{n}-user": membership.user_id, f"memberships-{n}-role": role})
        if membership.user == admin:
            form[f"memberships-{n}-DELETE"] = "on"

    mark = last_id()
    response = signed_in(Client(), operator).post(
        reverse("admin:tenants_tenant_change", args=[tenant_a.pk]), form
    )

    assert response.status_code == 302
    events = {e.action: e for e in events_since(mark)}
    assert sorted(events) == ["member.removed", "member.role_changed"] and len(events_since(mark)) == 2
    assert events["member.role_changed"].object_label == "max"
    assert events["member.role_changed"].details == {"old": "member", "new": "admin"}
    assert events["member.removed"].object_label == "ada"
    assert {e.actor for e in events.values()} == {operator}


@pytest.mark.django_db
def test_members_and_invitations(tenant_a, owner, member, admin):
    client = signed_in(Client(), owner)
    membership = Membership.objects.get(user=member)

    mark = last_id()
    client.post(f"/members/{membership.pk}/role/", {"role": "admin"})
    changed = one_event(mark, "member.role_changed", owner, tenant_a, object_id=str(member.pk))
    assert changed.details == {"old": "member", "new": "admin"} and changed.object_label == "max"

    mark = last_id()
    client.post("/members/", {"email": "new@example.com", "role": "member"})
    invitation = Invitation.objects.get()
    created = one_event(mark, "invitation.created", owner, tenant_a, object_id=str(invitation.pk))
    assert created.details == {"role": "member", "replaced": 0}

    mark = last_id()
    client.post(f"/members/invitations/{invitation.pk}/revoke/")
    one_event(mark, "invitation.revoked", owner, tenant_a, object_id=str(invitation.pk))

    _invitation, token = Invitation.issue(tenant_a, "joiner@example.com", Role.MEMBER, owner)
    mark = last_id()
    Client().post(f"/accounts/invite/{token}/", {"username": "joiner", "password": "fresh-and-long-99"})
    joiner = get_user_model().objects.get(username="joiner")
    one_event(mark, "invitation.accepted", joiner, tenant_a)

    mark = last_id()
    client.post(f"/members/{Membership.objects.get(user=admin).pk}/remove/")
    one_event(mark, "member.removed", owner, tenant_a, object_label="ada")


@pytest.mark.django_db
def test_api_keys(tenant_a, owner, operator):
    client = signed_in(Client(), owner)

    mark = last_id()
    client.post("/settings/api-keys/", {"name": "Billing service", "scopes": ["read", "manage"]})
    api_key = ApiKey.objects.get()
    one_event(mark, "api_key.created", owner, tenant_a, object_id=str(api_key.pk))

    mark = last_id()
    client.post(f"/settings/api-keys/{api_key.pk}/revoke/")
    client.post(f"/settings/api-keys/{api_key.pk}/revoke/")  # again: already revoked, nothing recorded
    one_event(mark, "api_key.revoked", owner, tenant_a)

    other, _key = ApiKey.issue(tenant_a, "Cron", owner)
    mark = last_id()
    signed_in(Client(), operator).post(
        reverse("admin:tenants_apikey_changelist"), {"action": "revoke", "_selected_action": [other.pk]}
    )
    one_event(mark, "api_key.revoked", operator, tenant_a, object_id=str(other.pk), via="admin")


@pytest.mark.django_db
def test_data_sources(tenant_a, owner, tenant_database):
    client = signed_in(Client(), owner)

    mark = last_id()
    client.post("/datasources/new/", {"name": "App DB", "connection_url": tenant_database})
    source = DataSource.objects.get()
    one_event(mark, "datasource.created", owner, tenant_a, object_id=str(source.pk), object_label="App DB")

    mark = last_id()
    client.post(f"/datasources/{source.pk}/edit/", {"name": "Main DB", "connection_url": ""})
    edited = one_event(mark, "datasource.changed", owner, tenant_a, object_label="Main DB")
    assert edited.details == {"url_changed": False, "notify": False}
    assert tenant_database not in str(edited.details)  # never the secret

    mark = last_id()
    client.post(f"/datasources/{source.pk}/delete/")
    assert not DataSource.objects.exists()
    one_event(mark, "datasource.deleted", owner, tenant_a, object_id=str(source.pk), object_label="Main DB")


@pytest.mark.django_db
def test_refused_actions_record_nothing(tenant_a, owner, member, outsider):
    workflow = webhook_workflow(tenant_a)
    mark = last_id()

    signed_in(Client(), member).post(f"/workflows/{workflow.pk}/publish/confirm/")
    signed_in(Client(), member).post("/members/", {"email": "x@example.com", "role": "member"})
    signed_in(Client(), outsider).post(
        f"/members/{Membership.objects.get(user=member).pk}/role/", {"role": "owner"}
    )
    signed_in(Client(), owner).post(reverse("runs:discard_messages"), {"ids": ["999999"]})

    assert events_since(mark) == []


def test_record_refuses_an_unknown_action(tenant_a, owner):
    with pytest.raises(ValueError, match="Unknown audit action"):
        record(tenant_a, owner, "workflow.renamed")


# ---- the page -----------------------------------------------------------------------------------------


def some_events(tenant, actor, count: int, action: str = "api_key.created") -> None:
    for n in range(count):
        record(tenant, actor, action, label=f"Key {n}")


@pytest.mark.django_db
def test_admins_and_owners_read_their_tenant_only(tenant_a, tenant_b, owner, admin, outsider):
    record(tenant_a, owner, "workflow.published", label="Acme flow")
    record(tenant_b, outsider, "workflow.published", label="Globex flow")

    for person in (owner, admin):
        page = signed_in(Client(), person).get(AUDIT)
        text = page.content.decode()
        assert page.status_code == 200
        assert "Acme flow" in text and "olivia" in text and "Globex flow" not in text
        assert f'href="{AUDIT}"' in text  # in the nav
    globex = signed_in(Client(), outsider).get(AUDIT).content.decode()
    assert "Globex flow" in globex and "Acme flow" not in globex


@pytest.mark.django_db
def test_members_are_refused_and_strangers_get_404(tenant_a, owner, member):
    record(tenant_a, owner, "workflow.published", label="Acme flow")
    refused = signed_in(Client(), member).get(AUDIT)
    assert refused.status_code == 403 and "Acme flow" not in refused.content.decode()
    assert f'href="{AUDIT}"' not in signed_in(Client(), member).get("/members/").content.decode()

    nobody = get_user_model().objects.create_user("drifter", "d@example.com", PASSWORD)
    assert signed_in(Client(), nobody).get(AUDIT).status_code == 404
    anonymous = Client().get(AUDIT)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


@pytest.mark.django_db
def test_filter_by_action_and_pages(tenant_a, owner):
    some_events(tenant_a, owner, 55)
    record(tenant_a, owner, "run.cancelled", label="Run #7")
    client = signed_in(Client(), owner)

    first = client.get(AUDIT).content.decode()
    assert first.count("<tr>") == 51  # the header and 50 events, newest first
    assert first.index("Run #7") < first.index("Key 54")
    older = first.split('rel="next" href="?')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(f"{AUDIT}?{older}").content.decode()
    assert second.count("<tr>") == 7 and "Key 0" in second and 'rel="next"' not in second

    only = client.get(AUDIT, {"action": "run.cancelled"}).content.decode()
    assert "Run #7" in only and "Key 1" not in only

    for cursor in ["abc", "9" * 40, "-1"]:
        page = client.get(AUDIT, {"after": cursor})
        assert page.status_code == 200 and "is not a page position" in page.content.decode()
    assert client.get(AUDIT, {"action": "nonsense"}).status_code == 200


# ---- append-only --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_cannot_be_changed_or_deleted_in_code_or_sql(tenant_a, owner):
    event = record(tenant_a, owner, "workflow.published", label="Acme flow")

    event.object_label = "Something else"
    with pytest.raises(AuditEditRefused):
        event.save()
    with pytest.raises(AuditEditRefused):
        event.delete()
    with pytest.raises(AuditEditRefused):
        AuditEvent.objects.filter(pk=event.pk).update(action="run.cancelled")
    with pytest.raises(AuditEditRefused):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE tenants_auditevent SET actor_label = 'nobody' WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert (event.object_label, event.actor_label, event.action) == (
        "Acme flow",
        "olivia",
        "workflow.published",
    )


@pytest.mark.django_db
def test_deleting_the_actor_keeps_the_event_with_their_name(tenant_a):
    leaver = make_user("leaver", tenant_a, Role.ADMIN)
    event = record(tenant_a, leaver, "workflow.published", label="Acme flow")

    leaver.delete()

    event.refresh_from_db()
    assert event.actor is None and event.actor_label == "leaver"


@pytest.mark.django_db
def test_the_django_admin_shows_events_read_only(tenant_a, owner, operator):
    event = record(tenant_a, owner, "workflow.published", label="Acme flow")
    client = signed_in(Client(), operator)
    change_url = reverse("admin:tenants_auditevent_change", args=[event.pk])

    listing = client.get(reverse("admin:tenants_auditevent_changelist")).content.decode()
    detail = client.get(change_url).content.decode()

    assert "Acme flow" in listing and "delete_selected" not in listing
    assert "Acme flow" in detail and 'name="_save"' not in detail
    assert client.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    assert client.post(change_url, {"object_label": "Changed"}).status_code == 403
    assert (
        client.post(reverse("admin:tenants_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.object_label == "Acme flow"


@pytest.mark.django_db
def test_an_operator_can_still_delete_a_tenant_and_its_events_go_with_it(
    tenant_a, tenant_b, outsider, operator
):
    record(tenant_b, outsider, "workflow.published", label="Globex flow")
    record(tenant_a, operator, "workflow.published", label="Acme flow")

    response = signed_in(Client(), operator).post(
        reverse("admin:tenants_tenant_delete", args=[tenant_b.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert list(AuditEvent.objects.values_list("object_label", flat=True)) == ["Acme flow"]


def test_every_action_has_a_description():
    assert all(name.count(".") == 1 and text for name, text in ACTIONS.items())


@pytest.mark.django_db
def test_the_audit_page_says_each_event_in_words_and_links_its_object(admin, tenant_a):
    """#21: "Published v3 (live)", and each object a link to its page (none for a deleted one)."""
    workflow = webhook_workflow(tenant_a)
    source = DataSource.objects.create(tenant=tenant_a, name="Shop", connection_url="postgresql://x@h/db")
    record(tenant_a, admin, "workflow.published", workflow, version=3, sandbox=False)
    record(tenant_a, admin, "workflow.published", workflow, version=4, sandbox=True)
    record(tenant_a, admin, "datasource.changed", source)
    record(tenant_a, admin, "datasource.deleted", label="Old DB", object_type="datasource", object_id=99)
    html = signed_in(Client(), admin).get(reverse("tenants:audit_log")).content.decode()
    assert "Published v3 (live)" in html and "Published v4 (sandbox)" in html
    assert f'<a href="/workflows/{workflow.pk}/">' in html
    assert f'<a href="/datasources/{source.pk}/">' in html
    assert 'href="/datasources/99/"' not in html  # deleted: named, not linked


def test_provider_events_link_the_providers_page_of_their_channel(admin, tenant_a, monkeypatch):
    from tests.sms.registration import register

    register(monkeypatch)
    postmark = Provider.objects.create(tenant=tenant_a, name="Postmark", kind="postmark")
    texts = Provider.objects.create(tenant=tenant_a, channel="sms", name="Texts", kind="test_sms")
    record(tenant_a, admin, "email_provider.changed", postmark)
    record(tenant_a, admin, "provider.changed", texts, channel="sms")

    html = signed_in(Client(), admin).get(reverse("tenants:audit_log")).content.decode()

    assert f'href="/settings/providers/email/{postmark.pk}/"' in html
    assert f'href="/settings/providers/sms/{texts.pk}/"' in html
