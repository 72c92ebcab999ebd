"""``/api/v1/m365/connections/``: every role reads, administrators write; the credential is write-only and
no answer ever carries it or its ciphertext; domain errors are HTTP 400 ``{"detail": …}``."""

from __future__ import annotations

import pytest
from django.test import Client

from core.models import ApiToken, AuditEvent, Tenant
from core.services import create_api_token
from m365.models import M365Connection, PullRun, Source
from m365.services import set_enabled
from tests.m365 import fake_m365 as fake
from tests.m365 import fixtures

pytestmark = pytest.mark.django_db

# The connector's Django fixtures (settings pointed at the fake, a connected Contoso).
assert_no_credential = fixtures.assert_no_credential

CONNECTIONS = "/api/v1/m365/connections/"
JSON = "application/json"


def url(connection: M365Connection, action: str = "") -> str:
    return f"{CONNECTIONS}{connection.pk}/{action + '/' if action else ''}"


def create_payload(m365, **overrides) -> dict:
    return {
        "name": "Fabrikam",
        "directory_id": m365.directory_id,
        "client_id": m365.client_id,
        "credential_type": "secret",
        "secret": m365.client_secret,
        **overrides,
    }


# ------------------------------------------------------------------------------------------ permissions


def test_every_role_reads_and_nobody_without_one(
    m365_connection, reader_client, operator_client, administrator_client, nobody_client
):
    for client in (reader_client, operator_client, administrator_client):
        assert client.get(CONNECTIONS).status_code == 200
        assert client.get(url(m365_connection)).status_code == 200
        assert client.get(url(m365_connection, "status")).status_code == 200
    for path in (CONNECTIONS, url(m365_connection), url(m365_connection, "status")):
        assert nobody_client.get(path).status_code == 403
        assert Client().get(path).status_code in (401, 403)


def test_only_administrators_write(
    m365_settings, m365_connection, reader_client, operator_client, django_capture_on_commit_callbacks
):
    before = M365Connection.objects.values().get(pk=m365_connection.pk)
    audit_before = AuditEvent.objects.count()
    for client in (reader_client, operator_client):
        with django_capture_on_commit_callbacks() as queued:
            responses = [
                client.post(
                    CONNECTIONS, create_payload(m365_settings, directory_id="x-tenant"), content_type=JSON
                ),
                client.patch(url(m365_connection), {"enabled": False}, content_type=JSON),
                client.patch(
                    url(m365_connection),
                    {"credential_type": "secret", "secret": "another-long-secret"},
                    content_type=JSON,
                ),
                client.delete(url(m365_connection)),
                client.post(url(m365_connection, "test")),
                client.post(url(m365_connection, "pull"), {}, content_type=JSON),
            ]
        assert [r.status_code for r in responses] == [403] * len(responses)
        assert queued == []
    assert M365Connection.objects.values().get(pk=m365_connection.pk) == before
    assert AuditEvent.objects.count() == audit_before
    assert m365_settings.requests == []


def test_a_read_token_sees_only_its_own_organisation(m365_connection, administrator, other_tenant):
    _, own = create_api_token(
        m365_connection.tenant, actor=administrator, name="SIEM", scope=ApiToken.Scope.READ
    )
    _, other = create_api_token(other_tenant, actor=administrator, name="SIEM", scope=ApiToken.Scope.READ)
    _, ingest = create_api_token(
        m365_connection.tenant, actor=administrator, name="feed", scope=ApiToken.Scope.INGEST
    )

    def get(token: str, path: str):
        return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert [c["id"] for c in get(own, CONNECTIONS).json()["results"]] == [m365_connection.pk]
    assert get(other, CONNECTIONS).json()["results"] == []
    assert get(other, url(m365_connection)).status_code == 404
    assert get(ingest, CONNECTIONS).status_code == 403
    assert Client().post(url(m365_connection, "test"), HTTP_AUTHORIZATION=f"Bearer {own}").status_code == 403


# ------------------------------------------------------------------------------------------- connecting


def test_an_administrator_connects_a_tenant(m365_settings, administrator_client):
    response = administrator_client.post(CONNECTIONS, create_payload(m365_settings), content_type=JSON)

    assert response.status_code == 201
    connection = M365Connection.objects.select_related("tenant").get()
    body = response.json()
    assert body["id"] == connection.pk
    assert body["organisation"] == "Fabrikam"
    assert body["tenant"] == connection.tenant.slug
    assert body["directory_id"] == m365_settings.directory_id
    assert body["credential_type"] == "secret"
    assert body["credential_set_at"]
    assert "secret" not in body
    assert_no_credential(response.content.decode(), m365_settings.client_secret)


def test_an_existing_organisation_is_connected_by_its_slug(m365_settings, administrator_client, other_tenant):
    payload = create_payload(m365_settings, tenant=other_tenant.slug)
    del payload["name"]

    response = administrator_client.post(CONNECTIONS, payload, content_type=JSON)

    assert response.status_code == 201
    assert response.json()["organisation"] == other_tenant.name
    assert M365Connection.objects.get().tenant == other_tenant


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"directory_id": "not a GUID!"}, "The directory (tenant) ID must be a GUID or a domain."),
        ({"client_id": "{app id}"}, "The application (client) ID must be a GUID."),
        ({"secret": "Zq9-Kx"}, "The client secret looks wrong: paste the secret's Value (not its ID)."),
        (
            {"secret": "has spaces in it"},
            "The client secret looks wrong: paste the secret's Value (not its ID).",
        ),
        (
            {"credential_type": "certificate", "secret": "-----BEGIN NOTHING-----"},
            "The PEM must hold the app's certificate (BEGIN CERTIFICATE).",
        ),
        ({"name": ""}, "Give the organisation a name."),
    ],
)
def test_a_bad_value_is_a_400_with_a_clear_detail_and_nothing_written(
    m365_settings, administrator_client, overrides, detail
):
    tenants = Tenant.objects.count()
    payload = create_payload(m365_settings, **overrides)

    response = administrator_client.post(CONNECTIONS, payload, content_type=JSON)

    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert not M365Connection.objects.exists()
    assert Tenant.objects.count() == tenants
    assert_no_credential(response.content.decode(), payload["secret"])


def test_a_missing_field_is_a_400_naming_it(m365_settings, administrator_client):
    payload = create_payload(m365_settings)
    del payload["directory_id"]

    response = administrator_client.post(CONNECTIONS, payload, content_type=JSON)

    assert response.status_code == 400
    assert "directory_id" in response.json()
    assert_no_credential(response.content.decode(), m365_settings.client_secret)
    assert not M365Connection.objects.exists()


def test_a_second_connection_of_the_same_directory_is_refused(
    m365_settings, m365_connection, administrator_client
):
    response = administrator_client.post(CONNECTIONS, create_payload(m365_settings), content_type=JSON)

    assert response.status_code == 400
    assert "connected already" in response.json()["detail"]
    assert M365Connection.objects.count() == 1


# -------------------------------------------------------------------------------------- change, delete


def test_patch_disables_and_enables(m365_connection, administrator_client):
    response = administrator_client.patch(url(m365_connection), {"enabled": False}, content_type=JSON)

    assert response.status_code == 200
    assert response.json()["enabled"] is False
    m365_connection.refresh_from_db()
    assert not m365_connection.enabled
    administrator_client.patch(url(m365_connection), {"enabled": True}, content_type=JSON)
    m365_connection.refresh_from_db()
    assert m365_connection.enabled


def test_patch_replaces_the_credential_without_returning_it(m365_connection, administrator_client):
    old_ciphertext, old_set_at = m365_connection.credential_ciphertext, m365_connection.credential_set_at

    response = administrator_client.patch(
        url(m365_connection), {"credential_type": "secret", "secret": "rotated-Secret~456"}, content_type=JSON
    )

    assert response.status_code == 200
    m365_connection.refresh_from_db()
    assert m365_connection.credential_ciphertext != old_ciphertext
    assert m365_connection.credential_set_at > old_set_at
    assert response.json()["test_ok"] is None  # the new credential is untested
    assert_no_credential(response.content.decode(), "rotated-Secret~456")
    assert AuditEvent.objects.filter(action="m365.connection.credential_changed").count() == 1


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"secret": "rotated-Secret~456"}, 400),  # no credential_type
        ({"credential_type": "secret"}, 400),  # no secret
        ({"credential_type": "secret", "secret": "short"}, 400),
        ({"credential_type": "secret", "secret": "rotated-Secret~456", "enabled": False}, 200),
        ({}, 400),
    ],
)
def test_patch_changes_everything_or_nothing(m365_connection, administrator_client, payload, status):
    before = M365Connection.objects.values().get(pk=m365_connection.pk)

    response = administrator_client.patch(url(m365_connection), payload, content_type=JSON)

    assert response.status_code == status
    after = M365Connection.objects.values().get(pk=m365_connection.pk)
    if status == 400:
        assert after == before
    else:
        assert after["credential_ciphertext"] != before["credential_ciphertext"] and not after["enabled"]
    assert_no_credential(response.content.decode(), payload.get("secret", "rotated-Secret~456"))


def test_put_is_not_offered(m365_settings, m365_connection, administrator_client):
    before = M365Connection.objects.values().get(pk=m365_connection.pk)

    response = administrator_client.put(
        url(m365_connection), create_payload(m365_settings, name="Renamed"), content_type=JSON
    )

    assert response.status_code in (403, 405)
    assert M365Connection.objects.values().get(pk=m365_connection.pk) == before


def test_delete_disconnects_and_keeps_the_organisation(m365_connection, administrator_client):
    response = administrator_client.delete(url(m365_connection))

    assert response.status_code == 204
    assert not M365Connection.objects.exists()
    assert Tenant.objects.get(name="Contoso").connector_kind == Tenant.ConnectorKind.BUILTIN
    assert administrator_client.get(url(m365_connection)).status_code == 404


# ------------------------------------------------------------------------------- test, pull and status


def test_test_names_a_missing_prerequisite_beyond_the_permissions(
    m365_settings, m365_connection, administrator_client
):
    m365_settings.entra_premium = False

    body = administrator_client.post(url(m365_connection, "test")).json()

    assert body["ok"] is False and body["missing"] == []
    assert len(body["prerequisites"]) == 1 and "Entra ID P1 or P2" in body["prerequisites"][0]


def test_test_reports_ok_with_every_permission(m365_settings, m365_connection, administrator_client):
    response = administrator_client.post(url(m365_connection, "test"))

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["missing"] == [] and body["prerequisites"] == []
    assert "AuditLog.Read.All" in body["granted"] and "ActivityFeed.Read" in body["granted"]
    assert_no_credential(response.content.decode(), m365_settings.client_secret)


def test_test_names_the_missing_permissions(m365_settings, m365_connection, administrator_client):
    m365_settings.granted_roles[fake.GRAPH] = ["User.Read.All", "Domain.Read.All"]

    body = administrator_client.post(url(m365_connection, "test")).json()

    assert body["ok"] is False
    missing = {item["permission"]: item for item in body["missing"]}
    assert missing["AuditLog.Read.All"] == {
        "feature": "Read sign-ins",
        "permission": "AuditLog.Read.All",
        "also_accepted": [],
        "api": "https://graph.microsoft.com",
        "api_label": "Microsoft Graph",
    }
    assert missing["User.RevokeSessions.All"]["also_accepted"] == ["User.ReadWrite.All"]
    assert "User.Read.All" not in missing and "ActivityFeed.Read" not in missing
    assert "AuditLog.Read.All" in body["message"]
    m365_connection.refresh_from_db()
    assert "AuditLog.Read.All" in m365_connection.missing_permissions


def test_test_with_a_wrong_secret_reports_the_sign_in_error(
    m365_settings, administrator, administrator_client
):
    connection = fixtures.connect_fake(m365_settings, actor=administrator, secret="wrong-Secret-123")

    response = administrator_client.post(url(connection, "test"))

    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is False and body["missing"] == [] and body["granted"] == []
    assert body["message"].startswith("Sign-in failed.")
    assert "Invalid client secret provided" in body["message"]
    assert_no_credential(response.content.decode(), "wrong-Secret-123")


def test_pull_queues_a_forced_pull(
    m365_settings, m365_connection, administrator_client, django_capture_on_commit_callbacks
):
    m365_settings.domains = [fake.domain("contoso.com", default=True)]

    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = administrator_client.post(url(m365_connection, "pull"), {}, content_type=JSON)
    assert response.status_code == 202
    assert response.json() == {"connection": m365_connection.pk, "source": "", "queued": True}
    assert len(queued) == 1
    assert PullRun.objects.count() == len(Source)
    requested = AuditEvent.objects.get(action="m365.connection.pull_requested")
    assert (requested.actor.username, requested.after) == ("ada.admin", {"source": "all"})

    with django_capture_on_commit_callbacks(execute=True):  # nothing is due now: forced all the same
        response = administrator_client.post(url(m365_connection, "pull"), {}, content_type=JSON)
    assert PullRun.objects.count() == 2 * len(Source)


def test_pull_of_one_source(
    m365_settings, m365_connection, administrator_client, django_capture_on_commit_callbacks
):
    m365_settings.domains = [fake.domain("contoso.com", default=True)]

    with django_capture_on_commit_callbacks(execute=True):
        response = administrator_client.post(
            url(m365_connection, "pull"), {"source": "domains"}, content_type=JSON
        )

    assert response.status_code == 202
    assert list(PullRun.objects.values_list("source", flat=True)) == ["domains"]


def test_pull_refuses_an_unknown_source_and_a_disabled_connection(
    m365_connection, administrator, administrator_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        unknown = administrator_client.post(
            url(m365_connection, "pull"), {"source": "mail"}, content_type=JSON
        )
        set_enabled(m365_connection, actor=administrator, enabled=False)
        disabled = administrator_client.post(url(m365_connection, "pull"), {}, content_type=JSON)

    assert unknown.status_code == 400 and "source" in unknown.json()
    assert disabled.status_code == 400
    assert disabled.json() == {"detail": "The connection is disabled: enable it to pull."}
    assert queued == []
    assert not AuditEvent.objects.filter(action="m365.connection.pull_requested").exists()


def test_status_shows_every_source_and_the_recent_runs(
    m365_settings, m365_connection, reader_client, django_capture_on_commit_callbacks
):
    m365_settings.domains = [fake.domain("contoso.com", default=True)]
    m365_settings.users = [fake.user("alice@contoso.com"), fake.user("bob@contoso.com")]
    m365_settings.granted_roles[fake.GRAPH].remove("AuditLog.Read.All")
    from m365.pull import pull_connection

    pull_connection(m365_connection)

    response = reader_client.get(url(m365_connection, "status"))

    body = response.json()
    assert response.status_code == 200
    assert body["connection"] == m365_connection.pk and body["enabled"] is True
    cursors = {cursor["source"]: cursor for cursor in body["cursors"]}
    assert list(cursors) == list(Source.values)
    assert cursors["users"]["events_total"] == 2
    assert cursors["users"]["consecutive_failures"] == 0
    assert cursors["users"]["lag_seconds"] is not None
    assert cursors["users"]["gaps"] == []
    assert cursors["users"]["resume_pending"] is False
    assert cursors["sign_ins"]["consecutive_failures"] == 1
    assert "403" in cursors["sign_ins"]["last_error"]
    assert len(body["runs"]) == len(Source)
    failed = reader_client.get(url(m365_connection, "status"), {"status": "failed"}).json()["runs"]
    assert "sign_ins" in [run["source"] for run in failed]
    assert all(run["status"] == "failed" for run in failed)
    assert reader_client.get(url(m365_connection, "status"), {"source": "nope"}).status_code == 400
    assert_no_credential(response.content.decode(), m365_settings.client_secret)


def test_status_of_a_connection_never_pulled_lists_every_source(m365_connection, reader_client):
    body = reader_client.get(url(m365_connection, "status")).json()

    assert [cursor["source"] for cursor in body["cursors"]] == list(Source.values)
    assert all(cursor["last_attempt_at"] is None for cursor in body["cursors"])
    assert body["runs"] == []


def test_no_answer_carries_the_credential(
    m365_settings, m365_connection, administrator_client, django_capture_on_commit_callbacks
):
    secret = m365_settings.client_secret
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            administrator_client.get(CONNECTIONS),
            administrator_client.get(url(m365_connection)),
            administrator_client.post(url(m365_connection, "test")),
            administrator_client.post(url(m365_connection, "pull"), {}, content_type=JSON),
            administrator_client.get(url(m365_connection, "status")),
            administrator_client.patch(url(m365_connection), {"enabled": True}, content_type=JSON),
            administrator_client.get(CONNECTIONS, HTTP_ACCEPT="text/html"),  # the browsable API
            administrator_client.get("/api/v1/feed/"),
            administrator_client.get("/api/v1/schema/"),
        ]
    for answer in answers:
        assert answer.status_code < 500
        assert_no_credential(answer.content.decode(), secret)
