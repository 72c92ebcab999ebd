"""Connecting a Microsoft 365 tenant: credentials encrypted at rest and never logged, "test connection"
naming missing permissions, certificate credentials, and the beat fan-out."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from core.models import AuditEvent, Tenant
from m365 import crypto, services
from m365.exceptions import M365Error
from m365.models import M365Connection, PullCursor, Source
from m365.pull import pull_connection
from m365.services import connect_tenant, disconnect
from m365.tasks import beat_pull
from tests.m365 import fake_m365 as fake
from tests.m365.fixtures import connect_fake, self_signed_certificate

pytestmark = pytest.mark.django_db

GRAPH = "https://graph.microsoft.com"
MANAGEMENT = "https://manage.office.com"


def test_the_secret_is_stored_encrypted_and_audited_without_it(m365_connection, m365_settings):
    secret = m365_settings.client_secret
    assert secret not in m365_connection.credential_ciphertext
    assert crypto.decrypt(m365_connection.credential_ciphertext) == secret
    assert m365_connection.tenant.connector_kind == Tenant.ConnectorKind.M365
    created = AuditEvent.objects.get(action="m365.connection.created")
    assert secret not in str(created.after) and m365_connection.credential_ciphertext not in str(
        created.after
    )


def test_a_changed_encryption_key_is_a_clear_error_not_a_crash(m365_connection, settings):
    from cryptography.fernet import Fernet

    settings.CONNECTOR_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(M365Error, match="cannot be decrypted"):
        crypto.decrypt(m365_connection.credential_ciphertext)


def test_a_key_rotation_keeps_old_ciphertext_readable(settings):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONNECTOR_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("s3cret-Value~abc")
    settings.CONNECTOR_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == "s3cret-Value~abc"
    rotated = crypto.rotate(token)
    settings.CONNECTOR_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "s3cret-Value~abc"


def test_test_connection_names_each_missing_permission(m365_connection, m365_settings):
    m365_settings.granted_roles[GRAPH] = ["User.Read.All", "Domain.Read.All", "AuditLog.Read.All"]
    m365_settings.granted_roles[MANAGEMENT] = []

    result = services.test_connection(m365_connection)

    assert not result.ok
    missing = {req.least for req in result.missing}
    assert "ExchangeMessageTrace.Read.All" in missing
    assert "ActivityFeed.Read" in missing
    assert "MailboxSettings.ReadWrite" in missing
    assert "User.Read.All" not in missing
    assert "ExchangeMessageTrace.Read.All" in result.message and "ActivityFeed.Read" in result.message
    m365_connection.refresh_from_db()
    assert m365_connection.test_ok is False
    assert "ActivityFeed.Read" in m365_connection.missing_permissions


def test_test_connection_passes_with_every_permission(m365_connection):
    result = services.test_connection(m365_connection)
    assert result.ok, result.message
    assert result.missing == []


def test_a_wrong_secret_is_reported_without_the_secret(m365_settings, db):
    connection = connect_fake(m365_settings, name="Wrong", secret="not-the-right-secret")
    result = services.test_connection(connection)
    assert not result.ok
    assert "invalid_client" in result.message
    assert "not-the-right-secret" not in result.message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("directory_id", "not a tenant!", "directory"),
        ("client_id", "", "client"),
        ("secret", "short", "secret"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(m365_settings, db, field, value, message):
    values = {
        "name": "Fabrikam",
        "directory_id": m365_settings.directory_id,
        "client_id": m365_settings.client_id,
        "credential_type": "secret",
        "secret": m365_settings.client_secret,
        field: value,
    }
    with pytest.raises(M365Error, match=message):
        connect_tenant(actor=None, **values)
    assert not Tenant.objects.filter(name="Fabrikam").exists()
    assert not M365Connection.objects.exists()


def test_the_same_tenant_cannot_be_connected_twice(m365_connection, m365_settings):
    with pytest.raises(M365Error, match="connected already"):
        connect_fake(m365_settings, name="Contoso again")
    assert not Tenant.objects.filter(name="Contoso again").exists()


def test_a_certificate_credential_signs_in(m365_settings, db):
    pem, thumbprint = self_signed_certificate()
    m365_settings.certificate_thumbprints = {thumbprint}
    connection = connect_fake(m365_settings, name="Cert", credential_type="certificate", secret=pem)
    assert connection.certificate_thumbprint == thumbprint
    assert "PRIVATE KEY" not in connection.credential_ciphertext
    assert services.test_connection(connection).ok
    token_requests = [r for r in m365_settings.requests if r.path.endswith("/token")]
    assert token_requests and "client_assertion" in token_requests[-1].form


def test_a_certificate_without_its_key_is_refused(m365_settings, db):
    certificate_only, _ = self_signed_certificate(with_key=False)
    with pytest.raises(M365Error, match="private key"):
        connect_fake(m365_settings, name="Cert", credential_type="certificate", secret=certificate_only)


def test_secrets_never_reach_the_logs(m365_connection, m365_settings, caplog):
    m365_settings.domains = [fake.domain("contoso.com")]
    m365_settings.users = [fake.user("alice@contoso.com")]
    m365_settings.throttle("/graph/v1.0/users", times=1, retry_after=1)
    m365_settings.expire_tokens()
    bad = fake.sign_in("alice@contoso.com", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), ip="bogus")
    m365_settings.sign_ins = [bad]
    caplog.set_level(logging.DEBUG)

    services.test_connection(m365_connection)
    pull_connection(m365_connection, force=True)

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert "rejected" in logged  # the run did log
    assert m365_settings.client_secret not in logged
    assert m365_connection.credential_ciphertext not in logged
    for token in m365_settings.issued_tokens():
        assert token not in logged


def test_beat_enqueues_a_pull_of_every_enabled_connection_only(m365_connection, m365_settings, db):
    m365_settings.domains = [fake.domain("contoso.com")]
    assert beat_pull() == 1  # in-process here: the pull ran
    assert PullCursor.objects.filter(connection=m365_connection, source=Source.DOMAINS).get().last_success_at

    m365_connection.enabled = False
    m365_connection.save()
    assert beat_pull() == 0


def test_disconnecting_keeps_the_organisation_and_forgets_the_credential(m365_connection):
    tenant = disconnect(m365_connection, actor=None)
    assert tenant.connector_kind == Tenant.ConnectorKind.BUILTIN
    assert not M365Connection.objects.exists()
