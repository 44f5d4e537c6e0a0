"""The Supabase page: the hook URL and secret for admins, the starter one click away, and nothing of
another tenant's."""

from __future__ import annotations

import pytest

from integrations.supabase_hook import hook_secret
from workflows.models import Workflow
from workflows.starters import create_auth_email_starter

pytestmark = pytest.mark.django_db


def test_the_starter_is_one_click_and_the_page_shows_its_hook(owner_client, tenant_a):
    page = owner_client.get("/supabase/").content.decode()
    assert "No workflow answers Supabase's Send Email hook yet." in page
    answer = owner_client.post("/supabase/auth-emails/new/")
    workflow = Workflow.objects.get(tenant=tenant_a)
    assert answer.status_code == 302 and answer["Location"] == f"/workflows/{workflow.pk}/"
    draft = workflow.versions.get()
    kinds = sorted(step.kind for step in draft.steps.all())
    assert kinds == ["branch", "condition", *["send_email"] * 7, "supabase_auth_email"]
    page = owner_client.get("/supabase/").content.decode()
    assert f"http://testserver/hooks/supabase/{workflow.pk}/" in page
    assert hook_secret(workflow.webhook_secret) in page
    assert "not published" in page


def test_members_see_the_url_but_not_the_secret_and_cannot_create(member_client, tenant_a):
    workflow = create_auth_email_starter(tenant_a)
    page = member_client.get("/supabase/").content.decode()
    assert f"/hooks/supabase/{workflow.pk}/" in page
    assert hook_secret(workflow.webhook_secret) not in page
    assert member_client.post("/supabase/auth-emails/new/").status_code == 403
    assert Workflow.objects.count() == 1


def test_an_outsider_sees_none_of_the_tenants_hooks(outsider_client, tenant_a):
    workflow = create_auth_email_starter(tenant_a)
    page = outsider_client.get("/supabase/").content.decode()
    assert f"/hooks/supabase/{workflow.pk}/" not in page
    assert hook_secret(workflow.webhook_secret) not in page


def test_the_starter_url_only_takes_a_post(owner_client):
    assert owner_client.get("/supabase/auth-emails/new/").status_code == 405
    assert not Workflow.objects.exists()


def test_the_triggers_panel_names_the_hook_url_and_points_to_the_supabase_page(owner_client, tenant_a):
    workflow = create_auth_email_starter(tenant_a)
    root = workflow.versions.get().steps.get(parent=None)
    panel = owner_client.get(f"/workflows/{workflow.pk}/steps/{root.pk}/").content.decode()
    assert f"http://testserver/hooks/supabase/{workflow.pk}/" in panel and 'href="/supabase/"' in panel
