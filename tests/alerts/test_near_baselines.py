"""Issue 17: the sign-in and sending-pattern detectors read their baselines near the batch (sign-ins from the
travel horizon, messages a day back; the whole look-back or the 7-day baseline only for the users whose
near read flags something) and find a user's first sign-in / first message by an index probe. On simulated
tenants (plain and with the evasive scenarios of issue 21), batch by batch, both give exactly the detections
of the detectors as they were: the whole look-back read for every touched user and ``MIN(time)`` over the
user's history."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Min

from alerts.detectors import sending_pattern, sign_in
from alerts.services import ensure_default_policies
from mailboxes.models import Mailbox, SignIn
from mailflow.ingest import ingest_events
from mailflow.models import MessageEvent
from mailflow.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


def first_sign_ins_by_min(tenant_id: int, mailbox_ids: list[int]) -> dict[int, datetime]:
    return dict(
        SignIn.objects.filter(tenant_id=tenant_id, mailbox_id__in=mailbox_ids, result=SignIn.Result.SUCCESS)
        .values("mailbox_id")
        .annotate(first=Min("time"))
        .values_list("mailbox_id", "first")
    )


def first_messages_by_min(tenant_id: int, sender_ids: set[int]) -> dict[int, datetime]:
    return dict(
        MessageEvent.objects.filter(tenant_id=tenant_id, sender_id__in=sender_ids)
        .values("sender_id")
        .annotate(first=Min("time"))
        .values_list("sender_id", "first")
    )


def detections_both_ways(monkeypatch, detector, policy, mailboxes, start, end, calls):
    with monkeypatch.context() as spied:  # count the second reads of the near path (results untouched)
        for module, name in ((sign_in, "_last_seen_before"), (sign_in, "sign_in_history")):
            spied.setattr(module, name, counted(getattr(module, name), calls, name))
        spied.setattr(sending_pattern, "_sent_by", counted(sending_pattern._sent_by, calls, "_sent_by"))
        near = detector.detect(policy, mailboxes, start, end)
    with monkeypatch.context() as patched:
        # As the detectors were: every touched user's whole look-back (7 days and an hour of messages)
        # and MIN(time) for the first sign-in / message.
        patched.setattr(sign_in, "_near_span", lambda ahead, reach: reach)
        patched.setattr(sign_in, "first_successful_sign_ins", first_sign_ins_by_min)
        patched.setattr(
            sending_pattern, "_near_span", lambda: sending_pattern.BASELINE_SPAN + timedelta(hours=1)
        )
        patched.setattr(sending_pattern, "first_messages", first_messages_by_min)
        whole = detector.detect(policy, mailboxes, start, end)
    return near, whole


def counted(function, calls: Counter, name: str):
    def call(*args, **kwargs):
        calls[name] += 1
        return function(*args, **kwargs)

    return call


def ingest_in_batches(tenant, events, size):
    batches = []
    for start in range(0, len(events), size):  # detection is not run: nothing commits here
        result = ingest_events(tenant, events[start : start + size], source="simulator")
        assert result.ok, result.errors[:3]
        batches.append((sorted(result.affected_mailbox_ids), *result.time_range))
    return batches


@pytest.mark.parametrize(
    "config",
    [
        SimulationConfig(end=NOW, mailboxes=40, days=12, compromised=4, seed=11),
        SimulationConfig(end=NOW, mailboxes=40, days=15, compromised=10, seed=21, evasive=True),
    ],
    ids=["plain", "evasive"],
)
def test_near_baselines_find_what_the_whole_look_back_finds(tenant, time_machine, monkeypatch, config):
    time_machine.move_to(NOW, tick=False)
    batches = ingest_in_batches(tenant, simulate(config).events, 1500)
    policies = ensure_default_policies(tenant)
    rules: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for kind, detector in (("sign_in", sign_in), ("sending_pattern", sending_pattern)):
        policy = policies[kind]
        for ids, start, end in batches:
            mailboxes = list(Mailbox.objects.filter(pk__in=ids).order_by("pk"))
            near, whole = detections_both_ways(monkeypatch, detector, policy, mailboxes, start, end, calls)
            assert near == whole, (kind, start, end)
            rules.update(reason["rule"] for d in near for reason in d.details["reasons"])
    # Both ways found every kind of hit whose baseline moved: new countries, travel, volume spikes.
    assert {"infrequent_country", "impossible_travel", "volume_spike"} <= set(rules), rules
    # … and the near path took each of its second reads: a country's last sighting before the near read,
    # a traveller's whole look-back (a second sign_in_history in a batch), a flagged sender's 7 days.
    sign_in_batches = sum(1 for ids, _, _ in batches if ids)
    assert calls["_last_seen_before"] > 0, calls
    assert calls["sign_in_history"] > sign_in_batches, calls
    assert calls["_sent_by"] > len(batches), calls


def test_the_probes_give_the_first_sign_in_and_message_of_every_user(tenant, time_machine):
    time_machine.move_to(NOW, tick=False)
    config = SimulationConfig(end=NOW, mailboxes=20, days=9, compromised=2, seed=5)
    ingest_in_batches(tenant, simulate(config).events, 5000)
    ids = list(Mailbox.objects.filter(tenant=tenant).values_list("pk", flat=True))
    by_min = first_sign_ins_by_min(tenant.pk, ids)
    assert by_min and sign_in.first_successful_sign_ins(tenant.pk, ids) == by_min
    by_min = first_messages_by_min(tenant.pk, set(ids))
    assert by_min and sending_pattern.first_messages(tenant.pk, set(ids)) == by_min
