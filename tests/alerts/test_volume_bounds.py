"""The minute counters only decide whose messages the volume detectors read (issue 17): on simulated tenants,
batch by batch, the sending-limit and sending-pattern detectors give exactly the same detections (users,
evidence, details, breaches) with the counters' bounds as without them, i.e. as the detectors that read
every touched user's messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.detectors import sending_limit, sending_pattern, volume_bounds
from alerts.services import ensure_default_policies
from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from mailflow.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


def everyone(policy, mailboxes, start, end):
    return mailboxes


def detections_both_ways(monkeypatch, detector, policy, mailboxes, start, end):
    bounded = detector.detect(policy, mailboxes, start, end)
    with monkeypatch.context() as patched:
        patched.setattr(volume_bounds, "may_exceed_sending_limits", everyone)
        patched.setattr(volume_bounds, "may_show_sending_patterns", everyone)
        unbounded = detector.detect(policy, mailboxes, start, end)
    return bounded, unbounded


@pytest.mark.parametrize("seed", [11, 3])
def test_bounded_detectors_find_what_reading_every_message_finds(tenant, time_machine, monkeypatch, seed):
    time_machine.move_to(NOW, tick=False)
    simulation = simulate(SimulationConfig(end=NOW, mailboxes=40, days=8, compromised=4, seed=seed))
    batches = []
    for start in range(0, len(simulation.events), 1500):  # detection is not run: nothing commits here
        result = ingest_events(tenant, simulation.events[start : start + 1500], source="simulator")
        assert result.ok, result.errors[:3]
        batches.append((sorted(result.affected_mailbox_ids), *result.time_range))
    policies = ensure_default_policies(tenant)
    found = skipped = 0
    for kind, detector in (("sending_limit", sending_limit), ("sending_pattern", sending_pattern)):
        policy = policies[kind]
        for ids, start, end in batches:
            mailboxes = list(Mailbox.objects.filter(pk__in=ids).order_by("pk"))
            bounded, unbounded = detections_both_ways(monkeypatch, detector, policy, mailboxes, start, end)
            assert bounded == unbounded, (kind, start, end)
            found += len(bounded)
            skipped += len(mailboxes) - len(
                (
                    volume_bounds.may_exceed_sending_limits
                    if kind == "sending_limit"
                    else volume_bounds.may_show_sending_patterns
                )(policy, mailboxes, start, end)
            )
    assert found >= 2  # the compromised users' bursts are found both ways
    assert skipped > found  # and most touched users were never read
