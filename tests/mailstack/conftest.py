"""Fixtures of the self-hosted mail tests: a tenant connected to its mail servers (secrets in clear for the
test's requests), an accepted domain with two mailboxes, a clean Redis keyspace. The real servers are in
:mod:`tests.mailstack.servers`."""

from __future__ import annotations

import base64

import pytest

DOMAIN = "example.test"


def basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"server:{secret}".encode()).decode()


@pytest.fixture
def mail_redis():
    """The test Redis db without mailstack, disabled-account or restriction keys, before and after."""
    from restricted_users import state

    client = state.get_redis()
    assert client is not None

    def clear() -> None:
        for pattern in ("soc:mailstack:*", "soc:disabled:*", "soc:restricted:*", "soc:policy:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)

    clear()
    yield client
    clear()


@pytest.fixture
def mailboxes(tenant):
    from mailboxes.models import AcceptedDomain, Mailbox

    AcceptedDomain.objects.get_or_create(tenant=tenant, domain=DOMAIN)
    return {
        name: Mailbox.objects.get_or_create(tenant=tenant, address=f"{name}@{DOMAIN}")[0]
        for name in ("ann", "bob")
    }


@pytest.fixture
def connected(tenant, administrator, mailboxes, mail_redis, settings):
    """The default tenant connected (kind ``mailstack``); ``.secrets`` holds the two secrets in clear."""
    from mailstack.endpoints import forget_configs
    from mailstack.services import connect_mail_servers

    settings.MAILSTACK_DOVEADM_API_KEY = "test-api-key"
    connection, secrets = connect_mail_servers(
        tenant, actor=administrator, doveadm_url="http://127.0.0.1:10880/doveadm/v1"
    )
    connection.secrets = secrets
    yield connection
    forget_configs()
