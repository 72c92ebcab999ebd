"""Every page is login-protected and every permission is checked on the server (DESIGN section 8)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from console.context_processors import NAVIGATION
from core.models import ApiToken
from core.roles import ADMINISTRATOR, OPERATOR, READER, ROLE_NAMES

pytestmark = pytest.mark.django_db

NAV_URLS = [reverse(name) for _, name, _ in NAVIGATION]


@pytest.mark.parametrize("url", [*NAV_URLS, reverse("console:api_tokens")])
def test_anonymous_visitors_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize("url", NAV_URLS)
def test_every_role_can_open_every_navigation_page(reader_client, operator_client, administrator_client, url):
    for client in (reader_client, operator_client, administrator_client):
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", NAV_URLS)
def test_a_signed_in_user_without_a_role_is_refused(nobody_client, url):
    assert nobody_client.get(url).status_code == 403


def test_the_navigation_lists_every_page_for_a_reader(reader_client):
    html = reader_client.get(reverse("console:dashboard")).content.decode()
    for label, _, _ in NAVIGATION:
        assert f">{label}</a>" in html


def test_roles_are_synced_as_groups_after_migrate():
    assert set(Group.objects.filter(name__in=ROLE_NAMES).values_list("name", flat=True)) == set(ROLE_NAMES)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (READER, {"core.view_console", "core.view_auditevent"}, {"core.add_apitoken", "core.change_tenant"}),
        (OPERATOR, {"core.view_console"}, {"core.add_apitoken", "core.change_tenant"}),
        (ADMINISTRATOR, {"core.view_console", "core.add_apitoken", "core.change_tenant"}, set()),
    ],
)
def test_each_role_gets_exactly_what_the_role_map_allows(role, allowed, refused):
    from tests.conftest import make_user

    user = make_user(f"user-{role.split()[-1]}", role)
    assert all(user.has_perm(p) for p in allowed)
    assert not any(user.has_perm(p) for p in refused)
    # Nobody may rewrite history.
    assert not user.has_perm("core.change_auditevent")
    assert not user.has_perm("core.delete_auditevent")


def test_a_reader_sees_tokens_but_cannot_create_one(reader_client, tenant):
    page = reader_client.get(reverse("console:api_tokens"))
    assert page.status_code == 200
    assert "Create token" not in page.content.decode()
    forged = reader_client.post(
        reverse("console:api_tokens"), {"name": "x", "tenant": tenant.pk, "scope": "ingest"}
    )
    assert forged.status_code == 403
    assert not ApiToken.objects.exists()


def test_an_operator_cannot_revoke_a_token(operator_client, administrator, tenant):
    from core.services import create_api_token

    token, _ = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    assert operator_client.post(reverse("console:api_token_revoke", args=[token.pk])).status_code == 403
    token.refresh_from_db()
    assert token.is_active


def test_an_administrator_creates_a_token_shown_once_and_stored_hashed(administrator_client, tenant):
    response = administrator_client.post(
        reverse("console:api_tokens"), {"name": "gateway", "tenant": tenant.pk, "scope": "ingest"}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    raw = response.context["new_token"]
    assert raw.startswith(f"soc_{token.prefix}_")
    assert raw not in (token.key_hash, token.prefix)
    assert ApiToken.objects.authenticate(raw) == token
    # The next view of the page does not show it again.
    assert raw not in administrator_client.get(reverse("console:api_tokens")).content.decode()


def test_an_administrator_revokes_a_token_and_it_stops_authenticating(
    administrator_client, administrator, tenant
):
    from core.services import create_api_token

    token, raw = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    response = administrator_client.post(reverse("console:api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert ApiToken.objects.authenticate(raw) is None
