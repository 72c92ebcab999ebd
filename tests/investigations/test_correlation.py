"""Opening, correlating and stopping investigations: one open investigation per user, a new trigger adds its
alert and re-runs the analyzers, our own block sender starts nothing, and only operators start or stop."""

from __future__ import annotations

from functools import partial

import pytest

from alerts.models import Alert, AlertPolicy
from core.models import AuditEvent
from investigations import services
from investigations.actions import stop_investigation
from investigations.exceptions import InvestigationError, InvestigationPermissionError
from investigations.models import Investigation, RemediationAction
from investigations.services import start_investigation_by_hand, start_investigation_for_alert
from restricted_users.services import restrict_user
from tests.builders.threads import run_together

from .builders import ALICE, BOB, OUTSIDE, hours_ago, investigation_of, mailbox

pytestmark = pytest.mark.django_db
S = Investigation.Status

FINANCE_RULE = {
    "name": "..",
    "conditions": {"subject_contains": ["invoice", "payment"]},
    "actions": {"move_to_folder": "RSS Feeds", "mark_as_read": True},
    "enabled": True,
}


def test_two_alerts_on_one_user_make_one_investigation_run_twice(telemetry, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.ingest()
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(3))
    with run_on_commit():
        telemetry.ingest_and_detect()
    first = investigation_of(ALICE)
    assert first.run_count == 1 and first.status == S.PENDING_ACTION
    telemetry.rule(ALICE, "r-1", at=hours_ago(2), **FINANCE_RULE)
    with run_on_commit():
        telemetry.ingest_and_detect()

    investigation = investigation_of(ALICE)  # still one
    assert investigation.pk == first.pk
    titles = set(investigation.alerts.values_list("title", flat=True))
    assert titles == {"Suspicious email forwarding activity", "Suspicious inbox manipulation rule"}
    assert investigation.trigger_alert.title == "Suspicious email forwarding activity"
    assert investigation.run_count == 2
    assert set(investigation.actions.values_list("action_type", flat=True)) >= {
        "turn_off_forwarding", "remove_inbox_rule",
    }  # fmt: skip
    assert AuditEvent.objects.filter(
        action="investigations.investigation.correlated", target_id=str(first.pk)
    )


def test_a_new_alert_after_the_investigation_closed_opens_another(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.everyday(ALICE)
    telemetry.ingest()
    with run_on_commit():
        clean = start_investigation_by_hand(mailbox(ALICE), actor=operator)
    clean.refresh_from_db()
    assert clean.status == S.NO_THREATS  # closed: not open any more
    telemetry.forwarding(ALICE, f"drop@{OUTSIDE}", at=hours_ago(1))
    with run_on_commit():
        telemetry.ingest_and_detect()
    investigations = list(Investigation.objects.filter(mailbox__address=ALICE).order_by("pk"))
    assert [i.pk for i in investigations][0] == clean.pk and len(investigations) == 2
    assert investigations[1].status == S.PENDING_ACTION


def test_a_redelivered_start_changes_nothing(run_on_commit, forwarding_case):
    investigation = forwarding_case
    alert = investigation.trigger_alert
    with run_on_commit() as callbacks:
        again = start_investigation_for_alert(alert.pk)
    assert again == investigation and callbacks == []
    investigation.refresh_from_db()
    assert investigation.run_count == 1


def test_our_own_block_sender_raises_no_alert_and_starts_nothing(operator, run_on_commit, forwarding_case):
    investigation = forwarding_case
    block = RemediationAction.objects.create(
        tenant=investigation.tenant, investigation=investigation, action_type="block_sender",
        target={"mailbox_id": investigation.mailbox_id}, target_label="Block", target_key="mailbox",
        status="running", expires_at=investigation.created_at,
    )  # fmt: skip
    with run_on_commit():  # what the block_sender executor does
        restrict_user(
            investigation.mailbox, policy_name=f"Investigation #{investigation.pk} (block sender)",
            reason={"investigation": investigation.pk, "action": block.pk}, expires_at=None,
            source="investigation", actor_label=f"investigation #{investigation.pk}",
        )  # fmt: skip

    assert not Alert.objects.filter(
        mailbox__address=ALICE, policy__kind=AlertPolicy.Kind.RESTRICTION
    ).exists()
    assert investigation_of(ALICE) == investigation  # nothing new opened
    investigation.refresh_from_db()
    assert investigation.run_count == 1  # and nothing re-run


def test_a_by_hand_start_raises_the_admin_alert_and_records_who(telemetry, operator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.ingest()
    with run_on_commit():
        investigation = start_investigation_by_hand(mailbox(ALICE), actor=operator, comment="user called in")
    alert = investigation.trigger_alert
    assert alert.title == "Admin triggered user compromise investigation"
    assert alert.evidence.get().kind == "manual"
    assert alert.details["requested_by"] == operator.username
    assert investigation.started_by == operator
    opened = AuditEvent.objects.get(
        action="investigations.investigation.opened", target_id=str(investigation.pk)
    )
    assert opened.actor == operator and opened.comment == "user called in"
    # Asking again while it is open correlates: a second manual event, the same investigation, run again.
    investigation.refresh_from_db()
    Investigation.objects.filter(pk=investigation.pk).update(status=S.PENDING_ACTION)
    with run_on_commit():
        again = start_investigation_by_hand(mailbox(ALICE), actor=operator)
    assert again.pk == investigation.pk
    again.refresh_from_db()
    assert again.run_count == 2
    assert sum(a.evidence_count for a in again.alerts.all()) == 2


@pytest.mark.parametrize("persona", ["reader", "nobody"])
def test_only_operators_start_investigations(telemetry, persona, request):
    telemetry.mailbox(ALICE)
    telemetry.ingest()
    with pytest.raises(InvestigationPermissionError):
        start_investigation_by_hand(mailbox(ALICE), actor=request.getfixturevalue(persona))
    assert not Investigation.objects.exists() and not Alert.objects.exists()


def test_an_administrator_may_start_one(telemetry, administrator, run_on_commit):
    telemetry.mailbox(ALICE)
    telemetry.ingest()
    with run_on_commit():
        start_investigation_by_hand(mailbox(ALICE), actor=administrator)
    assert investigation_of(ALICE).started_by == administrator


def test_only_operators_stop_investigations_and_only_open_ones(
    operator, reader, run_on_commit, forwarding_case
):
    investigation = forwarding_case
    with pytest.raises(InvestigationPermissionError):
        stop_investigation(investigation, actor=reader, comment="not mine")
    with pytest.raises(InvestigationError, match="Say why"):
        stop_investigation(investigation, actor=operator, comment="  ")
    investigation.refresh_from_db()
    assert investigation.status == S.PENDING_ACTION
    stop_investigation(investigation, actor=operator, comment="expected: travel")
    with pytest.raises(InvestigationError, match="Only an open investigation"):
        stop_investigation(investigation, actor=operator, comment="again")
    stopped = AuditEvent.objects.get(action="investigations.investigation.stopped")
    assert stopped.before == {"status": "pending_action"} and stopped.after == {
        "status": "terminated_by_user"
    }
    assert AuditEvent.objects.filter(action="investigations.action.rejected").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_triggers_open_one_investigation(tenant, operator, clock):
    """Two alerts for one user handled at the same moment by two workers: the mailbox lock makes the second
    correlate into the investigation the first opened."""
    from .builders import Telemetry

    telemetry = Telemetry(tenant)
    telemetry.mailbox(ALICE)
    telemetry.mailbox(BOB)
    telemetry.ingest()
    from tests.alerts.alert_builders import make_alert

    alerts = [
        make_alert(tenant, mailbox(ALICE), AlertPolicy.Kind.FORWARDING, event_ids=["f-1"]),
        make_alert(tenant, mailbox(ALICE), AlertPolicy.Kind.INBOX_MANIPULATION, event_ids=["r-1"]),
    ]
    Investigation.objects.all().delete()  # raising them ran nothing (no commit hook here); start afresh
    _, errors = run_together(*(partial(services.start_investigation_for_alert, alert.pk) for alert in alerts))
    assert errors == []
    investigation = investigation_of(ALICE)
    assert set(investigation.alerts.values_list("pk", flat=True)) == {a.pk for a in alerts}
