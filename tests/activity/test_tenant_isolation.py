"""Tenant B walks every activity URL with tenant A's ids: 404 for objects, nothing of A's in lists, and
nothing of A's changes. The walk reads runs/urls.py, so a new URL is covered without editing this test."""

from __future__ import annotations

from datetime import timedelta

from django.urls import URLPattern, reverse

from runs import urls as run_urls
from runs.email_body import email_body_url
from runs.models import BulkOperation, CancelTombstone, Delivery, Run, StepExecution
from tests.activity.conftest import (
    add_delivery,
    add_execution,
    build_workflow,
    email,
    make_run,
    steps_of,
    webhook,
)
from workflows.models import PublishPreview
from workflows.publishing import get_or_create_draft


def a_history(onboarding) -> dict[str, int]:
    run = make_run(onboarding, "secret-event-key", status=Run.Status.RUNNING)
    failed = add_execution(run, steps_of(onboarding)["Welcome"], "0", status="failed", error="boom")
    delivery = add_delivery(
        add_execution(run, steps_of(onboarding)["Tell the team"], "0"), "ann@secret.example", status="held"
    )
    ids = {
        "run_id": run.pk,
        "execution_id": failed.pk,
        "delivery_id": delivery.pk,
        "workflow_id": onboarding.pk,
        "tombstone_id": CancelTombstone.objects.create(
            tenant=onboarding.tenant,
            workflow=onboarding,
            key="order:1",
            until=run.created_at + timedelta(days=1),
        ).pk,
    }
    ids["step_id"] = steps_of(onboarding)["Welcome"].pk
    # The bulk dialog lists the tenant's workflows: one of them is named so that B's copy can be checked.
    build_workflow(onboarding.tenant, webhook([email()]), name="The secret workflow")
    ids["operation_id"] = BulkOperation.objects.create(
        tenant=onboarding.tenant, name="Retry the secret ones", action="retry", filter_digest="x"
    ).pk
    ids["preview_id"] = PublishPreview.objects.create(
        tenant=onboarding.tenant, workflow=onboarding, draft=get_or_create_draft(onboarding), token="t"
    ).pk
    ids["key"] = email_body_url(onboarding.tenant_id, "<p>secret</p>").rstrip("/").rsplit("/", 1)[1]
    return ids


def snapshot():
    return (
        list(Run.objects.order_by("pk").values_list("pk", "status")),
        list(StepExecution.objects.order_by("pk").values_list("pk", "status", "attempts")),
        list(Delivery.objects.order_by("pk").values_list("pk", "status")),
    )


def test_outsider_gets_404_or_nothing_on_every_url(outsider_client, owner_client, onboarding):
    ids = a_history(onboarding)
    before = snapshot()
    walked = 0
    for pattern in run_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {name: ids[name] for name in pattern.pattern.converters}
        url = reverse(f"runs:{pattern.name}", kwargs=kwargs)
        owner_sees = owner_client.get(url)
        response = outsider_client.get(url)
        posted = outsider_client.post(
            url, {"ids": [ids["delivery_id"]], "all": "1", "workflow": ids["workflow_id"]}
        )
        if kwargs:
            assert response.status_code in (404, 405), url
            assert posted.status_code == 404, url
        elif "chart" in (response.context or {}):  # counts, not names: none of the owner's (test_charts.py)
            assert owner_sees.status_code == 200 and response.context["chart"].total == 0, url
            assert posted.status_code == 200 and posted.context["chart"].total == 0, url
        else:
            assert response.status_code in (200, 405), url
            body = response.content.decode() + posted.content.decode()
            assert "secret" not in body, url
            assert owner_sees.status_code == 405 or "secret" in owner_sees.content.decode(), url
        walked += 1
    assert walked == len(run_urls.urlpatterns) >= 11
    assert snapshot() == before


def test_signed_out_people_are_sent_to_log_in(client, onboarding):
    ids = a_history(onboarding)
    response = client.get(reverse("runs:run_detail", args=[ids["run_id"]]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
