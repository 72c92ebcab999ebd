"""Issue 21 on the simulator's tenant with ``evasive`` on: every attack shaped to stay under the thresholds is
alerted at medium or higher and investigated; the benign look-alikes raise nothing at medium or higher beyond
the sign-in policy's own alert for a traveller's first sign-in abroad (its semantics are unchanged)."""

from datetime import UTC, datetime

import pytest

from alerts.models import Alert
from investigations.models import Investigation
from mailflow.ingest import ingest_events
from mailflow.scenarios_evasive import EvasiveScenario
from mailflow.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday afternoon
MEDIUM_PLUS = ("medium", "high")


@pytest.fixture(scope="module")
def simulation():
    return simulate(SimulationConfig(end=NOW, mailboxes=40, days=15, compromised=10, seed=21, evasive=True))


@pytest.fixture
def simulated(simulation, tenant, time_machine, django_capture_on_commit_callbacks):
    time_machine.move_to(NOW, tick=False)
    for start in range(0, len(simulation.events), 5000):
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest_events(tenant, simulation.events[start : start + 5000], source="simulator")
        assert result.ok, result.errors[:3]
    return simulation


def test_the_simulator_adds_the_evasive_kinds_only_with_the_flag(simulation):
    kinds = {v.scenario for v in simulation.ground_truth.compromised}
    assert set(EvasiveScenario) <= kinds
    assert set(simulation.ground_truth.benign_lookalikes) == {
        "invoice_clerk", "traveller", "weekly_marketer", "all_staff"
    }  # fmt: skip
    plain = simulate(SimulationConfig(end=NOW, mailboxes=40, days=15, compromised=10, seed=21))
    assert not {v.scenario for v in plain.ground_truth.compromised} & set(EvasiveScenario)
    assert plain.ground_truth.benign_lookalikes == {}


def test_every_evasive_attack_is_alerted_at_medium_or_higher_and_investigated(simulated):
    for victim in simulated.ground_truth.compromised:
        alerts = Alert.objects.filter(mailbox__address=victim.address, severity__in=MEDIUM_PLUS)
        assert alerts.exists(), victim.scenario
        assert Investigation.objects.filter(mailbox__address=victim.address).exists(), victim.scenario
    # The clean lure after a new-country sign-in: the sequence alert, high (a lookalike link).
    [lure] = [v for v in simulated.ground_truth.compromised if v.scenario == EvasiveScenario.EVASIVE_LURE]
    sequence = Alert.objects.get(mailbox__address=lure.address, policy__kind="sequence")
    assert sequence.severity == "high"
    assert {"first_contact_recipients", "lookalike_domains", "finance_lure"} <= set(sequence.details["kinds"])
    # Spam to colleagues: its clean-up is proposed, counted in mailboxes as well as copies.
    [spray] = [v for v in simulated.ground_truth.compromised if v.scenario == EvasiveScenario.INTERNAL_SPRAY]
    investigation = Investigation.objects.get(mailbox__address=spray.address)
    soft_delete = investigation.actions.get(action_type="soft_delete_messages")
    assert 30 <= soft_delete.target["internal_mailboxes"] < soft_delete.target["internal_copies"]


def test_the_benign_look_alikes_raise_nothing_at_medium_or_higher(simulated):
    lookalikes = simulated.ground_truth.benign_lookalikes
    for kind, addresses in lookalikes.items():
        alerts = Alert.objects.filter(mailbox__address__in=addresses, severity__in=MEDIUM_PLUS)
        if kind == "traveller":  # the sign-in policy's own alert on the first sign-in abroad, nothing else
            alerts = alerts.exclude(policy__kind="sign_in")
        assert list(alerts.values_list("mailbox__address", "policy__name")) == [], kind
