"""Detection on the simulator's tenant: each compromised user raises what its scenario should, the benign
newsletter owner (a few hundred external recipients every weekday) is neither alerted nor restricted."""

from datetime import UTC, datetime

import pytest

from alerts.models import Alert
from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from mailflow.simulator import Scenario, SimulationConfig, simulate
from restricted_users.models import Restriction

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday afternoon

EXPECTED = {
    Scenario.OUTBOUND_PHISH: {"Email sending limit exceeded", "User restricted from sending email"},
    Scenario.SLOW_SPAM: {"Email sending limit exceeded", "User restricted from sending email"},
    Scenario.BEC_FORWARDING: {"Suspicious email forwarding activity", "Suspicious inbox manipulation rule"},
    Scenario.DELEGATION_IMAP: {
        "Mailbox delegation added",
        "Activity from infrequent country / impossible travel",
    },
}
RESTRICTED = {Scenario.OUTBOUND_PHISH, Scenario.SLOW_SPAM}


@pytest.fixture
def simulated(tenant, time_machine, django_capture_on_commit_callbacks):
    time_machine.move_to(NOW, tick=False)
    simulation = simulate(SimulationConfig(end=NOW, mailboxes=40, days=8, compromised=4, seed=11))
    for start in range(0, len(simulation.events), 5000):
        # Each batch's commit enqueues alerts.evaluate, run in-process here.
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest_events(tenant, simulation.events[start : start + 5000], source="simulator")
        assert result.ok, result.errors[:3]
    return simulation


def _alert_names(address: str) -> set[str]:
    return set(Alert.objects.filter(mailbox__address=address).values_list("policy__name", flat=True))


def test_each_compromised_user_raises_the_alerts_of_its_scenario(simulated):
    for victim in simulated.ground_truth.compromised:
        names = _alert_names(victim.address)
        assert EXPECTED[victim.scenario] <= names, (victim.scenario, names)
        restricted = Restriction.objects.active().filter(mailbox__address=victim.address).exists()
        assert restricted == (victim.scenario in RESTRICTED), victim.scenario


def test_the_newsletter_owner_is_neither_alerted_nor_restricted(simulated):
    owner = simulated.ground_truth.newsletter_owner
    assert Mailbox.objects.filter(address=owner).exists()
    assert _alert_names(owner) == set()
    assert not Restriction.objects.filter(mailbox__address=owner).exists()


def test_no_benign_user_is_restricted_or_alerted_for_sending(simulated):
    victims = {v.address for v in simulated.ground_truth.compromised}
    benign_restricted = Restriction.objects.exclude(mailbox__address__in=victims)
    assert list(benign_restricted.values_list("mailbox__address", flat=True)) == []
    sending_alerts = Alert.objects.exclude(mailbox__address__in=victims).filter(
        policy__kind__in=["sending_limit", "sending_pattern", "forwarding", "inbox_manipulation"]
    )
    assert list(sending_alerts.values_list("mailbox__address", "policy__name")) == []
