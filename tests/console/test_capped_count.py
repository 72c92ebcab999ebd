"""A list counts its rows only up to a cap (issue 17: a COUNT over a million alerts cost more than the rest of
the page): past it the page says "More than N results" and pages stop at the cap; below it the count is
exact. The cap is lowered here so a few alerts cross it."""

from __future__ import annotations

import pytest

from console.lists import CappedPaginator
from tests.alerts.alert_builders import make_alert, make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_alerts(tenant):
    for n in range(5):
        make_alert(tenant, make_mailbox(tenant, f"user{n}@example.com"))


def test_a_list_past_the_cap_says_more_than_the_cap(reader_client, five_alerts, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)

    response = reader_client.get("/alerts/")

    assert response.context["result_count"] == 3
    assert response.context["result_count_capped"] is True
    assert "More than 3 results" in response.content.decode()


def test_a_list_within_the_cap_counts_exactly(reader_client, five_alerts, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 5)

    response = reader_client.get("/alerts/")

    assert response.context["result_count"] == 5
    assert response.context["result_count_capped"] is False
    assert "5 results" in response.content.decode()
    assert "More than" not in response.content.decode()


def test_pages_stop_at_the_cap(reader_client, five_alerts, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    monkeypatch.setattr("console.views.alerts.AlertListView.paginate_by", 2)

    assert reader_client.get("/alerts/?page=2").status_code == 200
    assert reader_client.get("/alerts/?page=3").status_code == 404
