"""Issue 17, goal 2: detection whose cost follows the new events raises the alerts of the detectors as they
were.

The same simulated stream (plain tenants of two seeds, and one with the evasive, held-out-style scenarios of
issue 21) goes into two tenants batch by batch, each batch evaluated as ``alerts.evaluate`` does. One tenant
runs detection as it is; the other as it was before issue 17: every touched user's messages read (no minute
counters), the sign-in and sending-pattern baselines over the whole look-back, the sequence detector reading
every touched user's sign-in look-back (no pre-filter), the contact baseline folded in Python, every message
with a URL or an external recipient matched for lookalikes. Both must raise the same alerts: policy, user,
severity, evidence and detail keys.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Q

from alerts import contacts
from alerts.detectors import lookalike, sending_pattern, sequence, sign_in, volume_bounds
from alerts.models import Alert, AlertEvidence, KnownContact
from alerts.services import evaluate_mailboxes
from core.models import Tenant
from mailflow.ingest import ingest_events
from mailflow.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
CONFIGS = [
    SimulationConfig(end=NOW, mailboxes=40, days=9, compromised=4, seed=11),
    SimulationConfig(end=NOW, mailboxes=40, days=9, compromised=4, seed=3),
    SimulationConfig(end=NOW, mailboxes=40, days=12, compromised=10, seed=21, evasive=True),
]


def everyone(policy, mailboxes, start, end):
    return mailboxes


def every_signed_in_user(policy, mailboxes, limits, start, end, until):
    """The sequence detector without its pre-filter: every touched user's sign-in look-back is read."""
    return mailboxes, sequence._activity(policy, [m.pk for m in mailboxes], start, until)


def as_before_issue_17(patched: pytest.MonkeyPatch) -> None:
    patched.setattr(volume_bounds, "may_exceed_sending_limits", everyone)
    patched.setattr(volume_bounds, "may_show_sending_patterns", everyone)
    patched.setattr(sign_in, "_near_span", lambda ahead, reach: reach)
    patched.setattr(sending_pattern, "_near_span", lambda: sending_pattern.BASELINE_SPAN + timedelta(hours=1))
    patched.setattr(sequence, "_may_fire", every_signed_in_user)
    patched.setattr(contacts, "_learn_in_sql", contacts._learn_in_python)
    patched.setattr(lookalike, "_naming_a_lookalike", lambda sent, matcher: Q())


def stream_in_batches(tenant: Tenant, events: list[dict], size: int = 1500) -> None:
    """Ingest ``events`` in batches, each evaluated as ``alerts.evaluate`` does after its commit."""
    for start in range(0, len(events), size):
        result = ingest_events(tenant, events[start : start + size], source="simulator")
        assert result.ok, result.errors[:3]
        if result.affected_mailbox_ids and result.time_range is not None:
            evaluate_mailboxes(tenant.pk, sorted(result.affected_mailbox_ids), *result.time_range)


def alerts_of(tenant: Tenant) -> dict[tuple[str, str], list[tuple]]:
    """(policy kind, user) -> the alerts' severity, evidence count and evidence (kind, event id, time)."""
    found: dict[tuple[str, str], list[tuple]] = {}
    for alert in Alert.objects.filter(tenant=tenant).select_related("policy", "mailbox").order_by("pk"):
        evidence = sorted(
            AlertEvidence.objects.filter(alert=alert).values_list("kind", "event_id", "at"),
        )
        found.setdefault((alert.policy.kind, alert.mailbox.address), []).append(
            (alert.severity, alert.evidence_count, evidence, sorted(alert.details))
        )
    return found


@pytest.mark.parametrize("config", CONFIGS, ids=["plain-11", "plain-3", "evasive-21"])
def test_detection_raises_the_alerts_of_the_detectors_before_issue_17(time_machine, monkeypatch, config):
    time_machine.move_to(NOW, tick=False)
    events = simulate(config).events
    now = Tenant.objects.create(name="Detection now", slug="now")
    stream_in_batches(now, events)
    before = Tenant.objects.create(name="Detection before issue 17", slug="before")
    with monkeypatch.context() as patched:
        as_before_issue_17(patched)
        stream_in_batches(before, events)
    current, reference = alerts_of(now), alerts_of(before)
    assert current == reference
    kinds = Counter(kind for kind, _ in current)
    # Both found the compromised users' sending, sign-ins and mailbox changes, so the comparison has teeth.
    assert {"sending_limit", "sign_in"} <= set(kinds), kinds
    if config.evasive:
        assert {"sending_pattern", "sequence"} <= set(kinds), kinds


@pytest.mark.parametrize("config", CONFIGS[::2], ids=["plain-11", "evasive-21"])
def test_the_contact_baseline_is_the_same_learnt_in_sql_and_in_python(time_machine, config):
    time_machine.move_to(NOW, tick=False)
    tenant = Tenant.objects.create(name="Contacts", slug="contacts")
    events = simulate(config).events
    batches = []
    for start in range(0, len(events), 1500):
        result = ingest_events(tenant, events[start : start + 1500], source="simulator")
        assert result.ok, result.errors[:3]
        batches.append((sorted(result.affected_mailbox_ids), *result.time_range))

    def learnt(learn) -> list[tuple]:
        KnownContact.objects.filter(tenant=tenant).delete()
        for ids, start, end in batches:
            known = set(KnownContact.objects.filter(mailbox_id__in=ids).values_list("mailbox_id", flat=True))
            learn(tenant.pk, ids, [pk for pk in ids if pk not in known], start, end)
        return sorted(
            KnownContact.objects.filter(tenant=tenant).values_list(
                "mailbox_id", "kind", "value", "first_seen", "first_event_id"
            )
        )

    in_sql = learnt(contacts._learn_in_sql)
    in_python = learnt(contacts._learn_in_python)
    assert in_sql == in_python
    assert {kind for _, kind, *_ in in_sql} == {KnownContact.Kind.DOMAIN, KnownContact.Kind.RECIPIENT}
