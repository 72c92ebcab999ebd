"""Row 4 of issue 15: Django's admin is for superusers only. The Security administrator (staff, with the
user and token permissions of the role map) cannot reach it, so cannot make anyone a superuser, change a
group, or un-revoke / re-tenant an API token around the audited services. Superusers see core's rows
read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from core.models import ApiToken
from core.services import create_api_token, revoke_api_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_administrator(administrator):
    """The Security administrator as ``create_role_logins`` makes it: staff."""
    administrator.is_staff = True
    administrator.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(administrator)
    return administrator, client


@pytest.fixture
def superuser_client(db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "correct-horse-battery")
    client = Client()
    client.force_login(user)
    return client


def test_the_security_administrator_is_sent_to_the_admin_login_not_the_index(staff_administrator):
    _, client = staff_administrator
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    "path",
    ["/admin/auth/user/", "/admin/auth/group/", "/admin/core/apitoken/", "/admin/auth/user/{pk}/change/"],
)
def test_the_security_administrator_opens_no_admin_page(staff_administrator, path):
    user, client = staff_administrator
    response = client.get(path.format(pk=user.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_security_administrator_cannot_make_anyone_a_superuser_there(staff_administrator, reader):
    user, client = staff_administrator
    for target in (user, reader):
        response = client.post(
            f"/admin/auth/user/{target.pk}/change/",
            {"username": target.username, "is_superuser": "on", "is_staff": "on", "is_active": "on"},
        )
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        target.refresh_from_db()
        assert not target.is_superuser


def test_the_security_administrator_cannot_unrevoke_or_retenant_a_token_there(
    staff_administrator, tenant, other_tenant
):
    user, client = staff_administrator
    token, _ = create_api_token(tenant, actor=user, name="SIEM", scope=ApiToken.Scope.READ)
    revoke_api_token(token, actor=user)
    response = client.post(
        f"/admin/core/apitoken/{token.pk}/change/",
        {"name": "SIEM", "tenant": other_tenant.pk, "scope": "read", "created_at_0": "2026-01-01",
         "created_at_1": "00:00:00", "revoked_at_0": "", "revoked_at_1": ""},
    )  # fmt: skip
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.tenant == tenant


def test_the_admin_login_does_not_open_the_admin_to_the_security_administrator(administrator):
    administrator.is_staff = True
    administrator.save(update_fields=["is_staff"])
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": administrator.username, "password": "correct-horse-battery"},
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 200  # the login form again, not a redirect into the admin
    assert "superuser accounts only" in response.content.decode()
    assert "_auth_user_id" not in client.session
    page = client.get("/admin/")
    assert page.status_code == 302 and page["Location"].startswith("/admin/login/")


def test_a_superuser_sees_tokens_read_only(superuser_client, tenant, administrator):
    token, _ = create_api_token(tenant, actor=administrator, name="SIEM", scope=ApiToken.Scope.READ)
    assert superuser_client.get("/admin/").status_code == 200
    page = superuser_client.get(f"/admin/core/apitoken/{token.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert token.key_hash.encode() not in page.content
    superuser_client.post(
        f"/admin/core/apitoken/{token.pk}/change/",
        {"name": "renamed", "tenant": tenant.pk, "scope": "ingest", "revoked_at_0": timezone.now().date()},
    )
    token.refresh_from_db()
    assert token.name == "SIEM" and token.scope == ApiToken.Scope.READ
    assert superuser_client.get(f"/admin/core/apitoken/{token.pk}/delete/").status_code == 403
