"""Django-side fixtures of the Microsoft 365 connector tests: settings pointed at the local fake (over HTTPS
with its test CA) and a registered connection. Imported by ``tests/m365/conftest.py``."""

from __future__ import annotations

import pytest

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
    fake = m365_settings
    return connect_tenant(
        actor=None,
        name="Contoso",
        directory_id=fake.directory_id,
        client_id=fake.client_id,
        credential_type=M365Connection.Credential.SECRET,
        secret=fake.client_secret,
    )


def assert_no_credential(text: str, *secrets: str) -> None:
    """Neither the given secrets nor any stored credential (whole, or a slice of its ciphertext) is in
    ``text`` (a page, an API response, a CSV)."""
    for secret in secrets:
        assert secret not in text
    assert "credential_ciphertext" not in text
    for ciphertext in M365Connection.objects.values_list("credential_ciphertext", flat=True):
        assert ciphertext not in text
        assert ciphertext[12:44] not in text
