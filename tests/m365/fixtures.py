"""Django-side fixtures of the Microsoft 365 connector tests: settings pointed at the local fake (over HTTPS
with its test CA) and a registered connection. Imported by ``tests/m365/conftest.py``."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365.client import forget_apps
from m365.models import M365Connection
from m365.services import connect_tenant


@pytest.fixture
def m365_settings(fake_m365, settings):
    """Every Microsoft endpoint pointed at the fake; short waits so throttling tests stay quick."""
    settings.M365_AUTHORITY_HOST = fake_m365.authority_host
    settings.M365_GRAPH_URL = fake_m365.graph_url
    settings.M365_MANAGEMENT_URL = fake_m365.management_url
    settings.M365_CA_BUNDLE = fake_m365.ca_bundle
    settings.M365_TIMEOUT_SECONDS = 5
    settings.M365_MAX_RETRY_AFTER_SECONDS = 5
    settings.M365_SETTLE_SECONDS = 0
    forget_apps()
    yield fake_m365
    forget_apps()


@pytest.fixture
def m365_connection(m365_settings, db) -> M365Connection:
    """Contoso, connected with the fake's app registration and client secret."""
    return connect_fake(m365_settings)


def connect_fake(
    fake,
    *,
    name: str = "Contoso",
    actor=None,
    credential_type: str = M365Connection.Credential.SECRET,
    secret: str | None = None,
) -> M365Connection:
    """Connect ``name`` through the service with the fake's app registration and ``secret`` (a client
    secret or a certificate PEM; the fake's client secret when not given)."""
    app_registration = {"directory_id": fake.directory_id, "client_id": fake.client_id}
    secret = fake.client_secret if secret is None else secret
    return connect_tenant(
        actor=actor, name=name, credential_type=credential_type, secret=secret, **app_registration
    )


def self_signed_certificate(*, with_key: bool = True) -> tuple[str, str]:
    """A fresh self-signed certificate as PEM, followed by its private key unless ``with_key`` is false;
    and its SHA-1 thumbprint as Entra shows it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soc-console")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    if with_key:
        pem += key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's thumbprint is SHA-1
    return pem, thumbprint


def assert_no_credential(text: str, *secrets: str) -> None:
    """Neither the given secrets nor any stored credential (whole, or a slice of its ciphertext) is in
    ``text`` (a page, an API response, a CSV)."""
    for secret in secrets:
        assert secret not in text
    assert "credential_ciphertext" not in text
    for ciphertext in M365Connection.objects.values_list("credential_ciphertext", flat=True):
        assert ciphertext not in text
        assert ciphertext[12:44] not in text
