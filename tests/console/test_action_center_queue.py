"""The action center as a queue: select-all and one bulk decision across action types; the History tab
(decided actions only) shows no decision panel; sortable headers; readers are told why they cannot act."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import AuditEvent
from investigations.models import RemediationAction
from tests.investigations.action_builders import make_action, make_investigation, make_mailbox

pytestmark = pytest.mark.django_db

CENTER = reverse("console:action_center")
DECIDE = reverse("console:action_decide")
Type = RemediationAction.Type


@pytest.fixture
def mixed_actions(tenant):
    investigation = make_investigation(make_mailbox(tenant))
    return [
        make_action(investigation, Type.TURN_OFF_FORWARDING, label="Forwarding to drop@evil.example"),
        make_action(investigation, Type.REVOKE_SESSIONS, label="Sessions"),
        make_action(investigation, Type.FORCE_PASSWORD_RESET, label="Password"),
    ]


def test_pending_tab_has_select_all_and_the_decision_panel(operator_client, mixed_actions):
    page = operator_client.get(CENTER).content.decode()
    assert 'data-select-all="bulk"' in page and 'id="bulk"' in page
    assert page.count('form="bulk"') == 3


def test_history_tab_has_no_decision_panel(operator_client, mixed_actions):
    page = operator_client.get(CENTER + "?status=history").content.decode()
    assert 'id="bulk"' not in page and 'data-select-all="bulk"' not in page
    assert "Decide on the selected actions" not in page


def test_one_bulk_decision_approves_actions_of_different_types(operator_client, operator, mixed_actions):
    ids = [a.pk for a in mixed_actions]
    confirm = operator_client.post(DECIDE, {"ids": ids, "decision": "reject"}).content.decode()
    assert "Reject 3 actions?" in confirm
    assert "1 × Force password reset" in confirm or "1 × Force" in confirm
    done = operator_client.post(
        DECIDE,
        {"ids": ids, "decision": "reject", "comment": "Known travel", "confirm": "yes", "next": CENTER},
    )
    assert done.status_code == 302
    assert set(RemediationAction.objects.values_list("status", flat=True)) == {
        RemediationAction.Status.REJECTED
    }
    assert AuditEvent.objects.filter(action="investigations.action.rejected").count() == 3


def test_headers_sort_the_action_center(operator_client, mixed_actions):
    page = operator_client.get(CENTER + "?status=pending&ordering=-proposed").content.decode()
    assert 'aria-sort="descending"' in page and "ordering=proposed" in page


def test_readers_are_told_who_can_decide(reader_client, mixed_actions):
    page = reader_client.get(CENTER).content.decode()
    assert 'id="bulk"' not in page and "needs a Security operator" in page
