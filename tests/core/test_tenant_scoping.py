"""One tenant scoping for the API (``core.permissions.TenantScopedMixin``) and one form of the tenant filter
(``core.filters.TenantFilter``: a slug, or an id for older links)."""

from __future__ import annotations

import importlib

import pytest

from core.filters import tenant_named
from core.models import ApiToken
from core.permissions import TenantScopedMixin
from core.services import create_api_token
from notifications.services import create_endpoint

API_URL_MODULES = [
    f"{app}.api.urls"
    for app in (
        "alerts",
        "incidents",
        "investigations",
        "mailboxes",
        "mailflow",
        "m365",
        "notifications",
        "restricted_users",
    )
]


def test_every_api_viewset_is_scoped_to_the_tenant_of_its_token():
    viewsets = [
        viewset
        for module in API_URL_MODULES
        for _, viewset, _ in importlib.import_module(module).router.registry
    ]
    assert len(viewsets) >= 10
    unscoped = [v.__name__ for v in viewsets if not issubclass(v, TenantScopedMixin)]
    assert unscoped == []


@pytest.mark.django_db
def test_a_read_token_lists_only_its_own_tenants_webhook_endpoints(
    client, administrator, tenant, other_tenant, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    own, _ = create_endpoint(tenant, actor=administrator, name="ours", url="https://127.0.0.1/ours")
    foreign, _ = create_endpoint(
        other_tenant, actor=administrator, name="theirs", url="https://127.0.0.1/theirs"
    )
    _, raw = create_api_token(tenant, actor=administrator, name="siem", scope=ApiToken.Scope.READ)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    listed = client.get("/api/v1/webhooks/", **auth)
    assert listed.status_code == 200, listed.content
    assert [row["id"] for row in listed.json()["results"]] == [own.pk]
    assert client.get(f"/api/v1/webhooks/{foreign.pk}/", **auth).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/mailboxes/", "/api/v1/restrictions/", "/api/v1/investigations/"])
def test_the_tenant_filter_takes_a_slug_or_an_id_and_refuses_an_unknown_one(
    reader_client, tenant, other_tenant, url
):
    for key in (other_tenant.slug, str(other_tenant.pk)):
        assert reader_client.get(url, {"tenant": key}).status_code == 200
    assert reader_client.get(url, {"tenant": "nobody"}).status_code == 400
    assert reader_client.get(url, {"tenant": "x\x00"}).status_code == 400


@pytest.mark.django_db
def test_a_tenant_is_named_by_slug_before_id(tenant, other_tenant):
    from core.models import Tenant

    numeric = Tenant.objects.create(name="Numbered", slug=str(other_tenant.pk))
    assert tenant_named(str(other_tenant.pk)) == numeric
    assert tenant_named(f" {other_tenant.slug} ") == other_tenant
    assert tenant_named(str(2**70)) is None
    assert tenant_named("nul\x00") is None
