import pytest


@pytest.fixture
def accepted(tenant):
    """The default tenant accepts example.com (as if a mailbox event had declared it)."""
    from mailboxes.services import declare_accepted_domains

    declare_accepted_domains(tenant, ["example.com"])
    return tenant
