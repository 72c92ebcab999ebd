"""Row 10 (part) of issue 15: a page that shows a secret once is sent ``Cache-Control: no-store``, so no
browser history, back button or proxy keeps a copy: the new API token page, the webhook page and its API
answer (covered in tests/notifications), the Microsoft 365 credential forms."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import ApiToken

pytestmark = pytest.mark.django_db


def test_the_page_showing_a_new_api_token_is_not_stored(tenant, administrator_client):
    response = administrator_client.post(
        reverse("console:api_tokens"), {"name": "SIEM", "tenant": tenant.pk, "scope": "read"}
    )
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="SIEM").exists()
    assert "Copy it now" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


@pytest.mark.parametrize("name", ["console:api_tokens", "console:notifications", "console:m365_connect"])
def test_secret_pages_are_never_cached(administrator_client, name):
    response = administrator_client.get(reverse(name))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_an_ordinary_page_is_not_marked_no_store(administrator_client):
    assert "no-store" not in administrator_client.get(reverse("console:alert_list")).get("Cache-Control", "")
