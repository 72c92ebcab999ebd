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


@pytest.mark.parametrize(
    ("cap", "count", "capped", "says"),
    [
        (3, 3, True, "More than 3 results"),  # past the cap: counted up to it
        (5, 5, False, "5 results"),  # within the cap: exact
    ],
)
def test_a_list_counts_up_to_the_cap_and_says_more_than_past_it(
    reader_client, five_alerts, monkeypatch, cap, count, capped, says
):
    monkeypatch.setattr(CappedPaginator, "cap", cap)

    response = reader_client.get("/alerts/")

    assert response.context["result_count"] == count
    assert response.context["result_count_capped"] is capped
    html = response.content.decode()
    assert says in html
    assert ("More than" in html) is capped


def test_pages_stop_at_the_cap(reader_client, five_alerts, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    monkeypatch.setattr("console.views.alerts.AlertListView.paginate_by", 2)

    assert reader_client.get("/alerts/?page=2").status_code == 200
    assert reader_client.get("/alerts/?page=3").status_code == 404
