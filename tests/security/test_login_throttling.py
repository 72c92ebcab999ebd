"""Row 5 of issue 15: wrong passwords are throttled on /login/ and the admin login (django-axes): after the
limit, the username+address pair is locked out for the cool-off even with the right password, the page says
so (429, not a stack trace), each lockout is one audit row, and another address is not affected. Every role
can change its own password from the user menu."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from core.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # conftest.make_user's


def sign_in(
    client: Client, username: str, password: str, address: str = "203.0.113.9", path="/login/", **headers
):
    """Post the sign-in form from ``address`` (the peer's address), with any extra request ``headers``."""
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def fail(client: Client, username: str, times: int, **kwargs):
    return [sign_in(client, username, f"wrong-password-{i}", **kwargs) for i in range(times)]


def test_the_right_password_signs_in(reader):
    response = sign_in(Client(), reader.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/"


def test_after_the_limit_even_the_right_password_is_refused_with_the_lockout_page(reader, settings):
    client = Client()
    answers = fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    assert [a.status_code for a in answers[:-1]] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[-1].status_code == 429
    response = sign_in(client, reader.username, PASSWORD)
    assert response.status_code == 429
    text = response.content.decode()
    assert "Sign-in locked" in text and "Try again in 15 minutes" in text
    assert "_auth_user_id" not in client.session


def test_thirty_wrong_passwords_are_not_all_answered(reader, settings):
    client = Client()
    answers = fail(client, reader.username, 30)
    assert sum(a.status_code == 200 for a in answers) == settings.AXES_FAILURE_LIMIT - 1
    assert sign_in(client, reader.username, PASSWORD).status_code == 429


def test_the_lockout_ends_after_the_cool_off(reader, settings):
    client = Client()
    fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=5)):
        response = sign_in(client, reader.username, PASSWORD)
    assert response.status_code == 302


def test_attempts_during_the_lockout_do_not_extend_it(reader, settings):
    client = Client()
    fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        assert sign_in(client, reader.username, "still-wrong").status_code == 429
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=5)):
        assert sign_in(client, reader.username, PASSWORD).status_code == 302


def test_another_address_is_not_locked_out(reader, settings):
    fail(Client(), reader.username, settings.AXES_FAILURE_LIMIT, address="203.0.113.9")
    assert sign_in(Client(), reader.username, PASSWORD, address="198.51.100.20").status_code == 302


def test_a_forwarded_for_header_does_not_change_the_address_without_a_proxy(reader, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, reader.username, "nope", "203.0.113.9", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert sign_in(client, reader.username, PASSWORD).status_code == 429


def test_behind_a_proxy_the_address_the_proxy_saw_counts_not_the_one_the_client_wrote(reader, settings):
    settings.BEHIND_TLS_PROXY = True
    settings.TRUSTED_PROXY_COUNT = 1
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        # The client forges a different left-most entry each time; the proxy appends the real address.
        sign_in(
            client, reader.username, "nope", "10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 198.51.100.77"
        )
    locked = sign_in(client, reader.username, PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.77")
    assert locked.status_code == 429
    other = sign_in(Client(), reader.username, PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.78")
    assert other.status_code == 302
    assert AuditEvent.objects.get(action="core.login.locked_out").after["ip_address"] == "198.51.100.77"


def test_each_lockout_is_one_audit_row(reader, settings):
    client = Client()
    fail(client, reader.username, settings.AXES_FAILURE_LIMIT + 3)
    [row] = AuditEvent.objects.filter(action="core.login.locked_out")
    assert row.after["username"] == reader.username
    assert row.after["ip_address"] == "203.0.113.9"
    assert row.after["path"] == "/login/"
    assert row.actor_label == "anonymous@203.0.113.9"


def test_the_admin_login_is_throttled_too(settings, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    answers = fail(client, "root", settings.AXES_FAILURE_LIMIT, path="/admin/login/")
    assert answers[-1].status_code == 429
    assert sign_in(client, "root", PASSWORD, path="/admin/login/").status_code == 429
    assert AuditEvent.objects.filter(action="core.login.locked_out", after__path="/admin/login/").count() == 1


@pytest.mark.parametrize("persona", ["reader", "operator", "administrator"])
def test_every_role_changes_its_password_from_the_user_menu(persona, request):
    user = request.getfixturevalue(persona)
    client = Client()
    client.force_login(user)
    menu = client.get("/").content.decode()
    assert 'href="/account/password/"' in menu
    assert client.get("/account/password/").status_code == 200
    response = client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-long-phrase-42",
            "new_password2": "a-new-long-phrase-42",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/account/password/done/"
    assert client.get("/account/password/done/").status_code == 200  # still signed in
    user.refresh_from_db()
    assert user.check_password("a-new-long-phrase-42")
    assert AuditEvent.objects.filter(action="core.login.password_changed", actor=user).count() == 1


def test_a_wrong_old_password_changes_nothing(reader):
    client = Client()
    client.force_login(reader)
    response = client.post(
        "/account/password/",
        {
            "old_password": "not-it",
            "new_password1": "a-new-long-phrase-42",
            "new_password2": "a-new-long-phrase-42",
        },
    )
    assert response.status_code == 200 and "error" in response.content.decode()
    reader.refresh_from_db()
    assert reader.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="core.login.password_changed").exists()


def test_signed_out_visitors_are_sent_to_sign_in(db):
    response = Client().get("/account/password/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
