"""Tenant scoping: two tenants' rows never mix, and another tenant's id is a 404."""

import pytest
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants.middleware import TenantMiddleware, switch_tenant
from tenants.models import Membership, Role, Tenant
from tenants.scoping import get_for_tenant_or_404, tenant_queryset
from workflows.models import Workflow


@pytest.fixture
def workflows(tenant_a, tenant_b):
    a = [Workflow.objects.create(tenant=tenant_a, name=f"A{i}") for i in range(3)]
    b = [Workflow.objects.create(tenant=tenant_b, name=f"B{i}") for i in range(2)]
    return a, b


def test_scoping_helper_returns_only_the_tenants_rows(tenant_a, tenant_b, workflows):
    a, b = workflows
    assert set(tenant_queryset(Workflow, tenant_a)) == set(a)
    assert set(Workflow.objects.for_tenant(tenant_b)) == set(b)
    assert list(tenant_queryset(Workflow, None)) == []


def test_another_tenants_id_is_not_found(tenant_a, tenant_b, workflows):
    a, b = workflows
    assert get_for_tenant_or_404(Workflow, tenant_a, pk=a[0].pk) == a[0]
    with pytest.raises(Http404):
        get_for_tenant_or_404(Workflow, tenant_a, pk=b[0].pk)
    with pytest.raises(Http404):
        get_for_tenant_or_404(Workflow, tenant_a, pk="not-a-number")


def test_middleware_sets_the_current_tenant_and_switches(owner, outsider, tenant_a, tenant_b):
    Membership.objects.create(user=owner, tenant=tenant_b, role=Role.MEMBER)
    seen = {}

    def view(request):
        seen["tenant"] = request.tenant
        return None

    request = RequestFactory().get("/")
    request.user = owner
    request.session = {}
    TenantMiddleware(view)(request)
    assert seen["tenant"] == tenant_a

    switch_tenant(request, Membership.objects.get(user=owner, tenant=tenant_b))
    TenantMiddleware(view)(request)
    assert seen["tenant"] == tenant_b

    # A session pointing at a tenant the user does not belong to falls back to their own.
    request.user = outsider
    request.session = {"tenant_id": tenant_a.pk}
    TenantMiddleware(view)(request)
    assert seen["tenant"] == tenant_b


def test_anonymous_request_has_no_tenant():
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.session = {}
    seen = {}
    TenantMiddleware(lambda r: seen.setdefault("tenant", r.tenant))(request)
    assert seen["tenant"] is None


def test_the_tenant_switcher_reads_the_memberships_the_middleware_loaded(client, owner, tenant_a, tenant_b):
    """One query for the user's memberships per page, however many tenants the switcher lists."""
    Membership.objects.create(user=owner, tenant=tenant_b, role=Role.MEMBER)
    initech = Tenant.objects.create(name="Initech", slug="initech")
    Membership.objects.create(user=owner, tenant=initech, role=Role.ADMIN)
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/").content.decode()
    for tenant in (tenant_a, tenant_b, initech):
        assert f'action="{reverse("tenants:switch", args=[tenant.pk])}"' in page
        assert f">{tenant.name}</button>" in page
    membership_queries = [q["sql"] for q in queries if 'FROM "tenants_membership"' in q["sql"]]
    assert len(membership_queries) == 1, membership_queries  # the middleware's; the switcher adds none


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/workflows/new/"),
        ("post", "/workflows/{workflow}/duplicate/"),
        ("post", "/activity/messages/release/"),
        ("post", "/activity/messages/discard/"),
        ("get", "/settings/providers/email/"),
        ("get", "/members/"),
    ],
)
def test_a_signed_in_user_without_a_tenant_gets_a_404_from_member_views(client, owner, tenant_a, method, url):
    """`members_only` and `admins_only` let only a member of the current tenant through (the views then
    take a MemberRequest); someone whose last membership was removed finds nothing there, and nothing
    of a tenant they left."""
    workflow = Workflow.objects.create(tenant=tenant_a, name="Welcome")
    Membership.objects.filter(user=owner).delete()
    client.force_login(owner)
    response = getattr(client, method)(url.format(workflow=workflow.pk), {"name": "Mine", "all": "1"})
    assert response.status_code == 404
    assert Workflow.objects.count() == 1
