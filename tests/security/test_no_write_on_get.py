"""Row 8 of issue 15: a GET writes nothing. Default policies are seeded by a migration and when a tenant is
created, not by reading the policy pages, the API or the schema; the OpenAPI schema needs a signed-in user."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import AlertPolicy
from alerts.policies import DEFAULT_POLICIES
from console.context_processors import NAVIGATION
from core.models import AuditEvent, Tenant

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes_during(client: Client, path: str, **params) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params)
    assert response.status_code == 200, (path, response.status_code)
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_a_new_tenant_has_its_default_policies_from_creation():
    tenant = Tenant.objects.create(name="Fabrikam", slug="fabrikam")
    kinds = set(AlertPolicy.objects.filter(tenant=tenant).values_list("kind", flat=True))
    assert kinds == {d.kind for d in DEFAULT_POLICIES}


def test_the_migration_seeds_the_policies_a_tenant_lacks(other_tenant):
    AlertPolicy.objects.filter(tenant=other_tenant, kind="forwarding").delete()
    migration = importlib.import_module("alerts.migrations.0004_seed_default_policies")
    migration.seed_default_policies(apps, None)
    migration.seed_default_policies(apps, None)  # idempotent
    assert AlertPolicy.objects.filter(tenant=other_tenant).count() == len(DEFAULT_POLICIES)


def test_reading_the_policies_of_a_tenant_without_them_creates_nothing(reader_client, other_tenant):
    AlertPolicy.objects.filter(tenant=other_tenant).delete()
    assert not writes_during(reader_client, reverse("console:policies"), tenant=other_tenant.slug)
    assert not writes_during(reader_client, "/api/v1/policies/", tenant=other_tenant.pk)
    assert not AlertPolicy.objects.filter(tenant=other_tenant).exists()


def test_the_schema_needs_a_signed_in_user(reader_client, db):
    before = (AlertPolicy.objects.count(), AuditEvent.objects.count())
    assert Client().get("/api/v1/schema/").status_code in (401, 403)
    assert (AlertPolicy.objects.count(), AuditEvent.objects.count()) == before
    assert not writes_during(reader_client, "/api/v1/schema/")


@pytest.mark.parametrize("name", [name for _, name, _ in NAVIGATION])
def test_no_navigation_page_writes_on_get(administrator_client, tenant, name):
    assert not writes_during(administrator_client, reverse(name))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/policies/",
        "/api/v1/alerts/",
        "/api/v1/webhooks/",
        "/api/v1/restrictions/",
        "/api/v1/investigations/",
        "/api/v1/mailboxes/",
        "/api/v1/m365/connections/",
    ],
)
def test_api_lists_write_nothing(reader_client, tenant, path):
    assert not writes_during(reader_client, path)
