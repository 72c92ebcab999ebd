"""Fixtures of the Microsoft 365 connector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_m365 import FakeM365


# The fake Microsoft 365 (tests/m365/fake_m365.py): a fresh tenant per test, served over HTTPS on 127.0.0.1.
# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's ``verify`` (what MSAL's ``verify=``
# sets), so with those set the fake's CA would be ignored; unset them for the test.
@pytest.fixture
def fake_m365(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeM365]:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    fake = FakeM365().start()
    yield fake
    fake.stop()


# Django-side fixtures: settings pointed at the fake, a registered connection.
from .fixtures import m365_connection, m365_settings  # noqa: E402, F401
