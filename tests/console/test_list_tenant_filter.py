"""The queues of a single-tenant deployment leave out the Tenant filter; with a second tenant it is there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import Tenant

pytestmark = pytest.mark.django_db

QUEUES = ["console:alert_list", "console:incidents", "console:investigations", "console:action_center"]


@pytest.mark.parametrize("url_name", QUEUES)
def test_the_tenant_filter_shows_only_with_several_tenants(operator_client, tenant, url_name):
    single = operator_client.get(reverse(url_name))
    assert single.status_code == 200
    assert 'name="tenant"' not in single.content.decode()
    assert single.context["single_tenant"] is True

    Tenant.objects.create(slug="other", name="Other organisation")
    several = operator_client.get(reverse(url_name))
    assert 'name="tenant"' in several.content.decode()
    assert not several.context.get("single_tenant")
