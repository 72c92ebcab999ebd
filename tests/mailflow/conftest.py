import pytest


@pytest.fixture
def accepted(tenant):
    """The default tenant accepts example.com (as if a mailbox event had declared it)."""
    from mailboxes.services import declare_accepted_domains

    declare_accepted_domains(tenant, ["example.com"])
    return tenant


@pytest.fixture
def ingest_token(tenant, administrator):
    from core.services import create_api_token

    _, raw = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    return raw


@pytest.fixture
def token_client(client):
    """A client that sends ``Authorization: Bearer <raw>``."""

    def make(raw: str):
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
        return client

    return make
