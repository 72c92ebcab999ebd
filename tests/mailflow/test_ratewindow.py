"""The rate-window module: rolling sums with half-open windows, strict limits, and the three sending limits
(DESIGN sections 5 and 9). Pure functions: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from mailflow.ratewindow import (
    DAY,
    HOUR,
    RollingSum,
    Sample,
    SendingLimits,
    SentMessage,
    find_breach,
    first_breach,
    messages_over_limits,
    rolling_max,
    rolling_sums,
    samples_over,
    window_sum,
)

DEFAULT_LIMITS = SendingLimits(external_per_hour=500, internal_per_hour=1_000, total_per_day=1_000)


def at(hh: int, mm: int = 0, ss: int = 0, *, day: int = 2) -> datetime:
    return datetime(2025, 3, day, hh, mm, ss, tzinfo=UTC)


def sent(key: str, when: datetime, *, external: int = 0, internal: int = 0) -> SentMessage:
    return SentMessage(key, when, external, internal, external + internal)


# ---------------------------------------------------------------------------------------------- rolling sums


def test_a_sample_exactly_one_window_earlier_has_left_the_window():
    samples = [Sample(at(10), "a", 300), Sample(at(11), "b", 300)]
    best = rolling_max(samples, HOUR)
    assert best is not None
    assert best.total == 300
    assert window_sum(samples, at(11), HOUR) == 300
    assert window_sum(samples, at(10, 59, 59), HOUR) == 300
    assert window_sum(samples, at(11), timedelta(hours=1, seconds=1)) == 600


def test_the_busiest_window_names_its_samples_and_bounds():
    samples = [Sample(at(9), "early", 50), Sample(at(10, 40), "a", 300), Sample(at(11, 20), "b", 201)]
    best = rolling_max(samples, HOUR)
    assert best is not None
    assert (best.total, best.start, best.end) == (501, at(10, 20), at(11, 20))
    assert [s.key for s in best.items] == ["a", "b"]


def test_the_earliest_of_equal_windows_is_the_busiest():
    samples = [Sample(at(8), "a", 10), Sample(at(12), "b", 10)]
    best = rolling_max(samples, HOUR)
    assert best is not None and best.end == at(8)
    assert rolling_max([], HOUR) is None


def test_exactly_the_limit_does_not_fire_and_one_more_does():
    samples = [Sample(at(10) + timedelta(seconds=i), f"m{i}") for i in range(500)]
    assert first_breach(samples, HOUR, 500) is None
    breach = first_breach([*samples, Sample(at(10, 30), "one-more")], HOUR, 500)
    assert breach is not None
    assert (breach.total, breach.end) == (501, at(10, 30))
    assert breach.items[-1].key == "one-more"
    assert len(breach.items) == 501


def test_a_rolling_hour_spans_a_clock_hour_boundary():
    crossing = [Sample(at(10, 40), "a", 300), Sample(at(11, 20), "b", 201)]
    breach = first_breach(crossing, HOUR, 500)
    assert breach is not None
    assert (breach.total, breach.start, breach.end) == (501, at(10, 20), at(11, 20))
    apart = [Sample(at(10), "a", 300), Sample(at(11, 1), "b", 300)]
    assert first_breach(apart, HOUR, 500) is None


def test_a_rolling_day_spans_midnight():
    samples = [Sample(at(18, day=2), "evening", 600), Sample(at(9, day=3), "morning", 401)]
    breach = first_breach(samples, DAY, 1_000)
    assert breach is not None and breach.end == at(9, day=3)
    assert first_breach([samples[0], Sample(at(18, day=3), "late", 401)], DAY, 1_000) is None


def test_simultaneous_samples_enter_together_whatever_their_order():
    forwards = [
        Sample(at(10), "a", 1),
        Sample(at(11), "b", 250),
        Sample(at(11), "c", 250),
        Sample(at(11), "d", 1),
    ]
    backwards = list(reversed(forwards))
    first = first_breach(forwards, HOUR, 500)
    second = first_breach(backwards, HOUR, 500)
    assert first is not None and second is not None
    assert first.total == second.total == 501
    assert {s.key for s in first.items} == {"b", "c", "d"}
    assert first.items == second.items


def test_a_limit_of_zero_is_off():
    samples = [Sample(at(10), "a", 10_000)]
    assert first_breach(samples, HOUR, 0) is None
    assert samples_over(samples, HOUR, 0) == []


def test_a_limit_can_change_over_time():
    def limit(end: datetime) -> int:
        return 1_000 if end < at(12) else 500

    samples = [Sample(at(10), "a", 800), Sample(at(13), "b", 800)]
    breach = first_breach(samples, HOUR, limit)
    assert breach is not None and breach.end == at(13)


def test_windows_can_be_limited_by_their_end():
    samples = [Sample(at(10), "a", 600), Sample(at(12), "b", 600)]
    assert first_breach(samples, HOUR, 500).end == at(10)
    assert first_breach(samples, HOUR, 500, ends_from=at(11)).end == at(12)
    assert first_breach(samples, HOUR, 500, ends_before=at(10)) is None
    assert [w.end for w in rolling_sums(samples, HOUR, ends_from=at(10, 1), ends_before=at(12, 1))] == [
        at(12)
    ]


def test_samples_over_names_every_sample_of_every_window_over_the_limit():
    quiet = [Sample(at(8, i), f"quiet{i}", 10) for i in range(3)]
    burst = [Sample(at(10, i), f"burst{i:02}", 100) for i in range(10)]
    later = [Sample(at(12), "later", 10)]
    chosen = samples_over(quiet + burst + later, HOUR, 500)
    assert [s.key for s in chosen] == [f"burst{i:02}" for i in range(10)]


def test_a_window_must_have_a_length():
    with pytest.raises(ValueError):
        list(rolling_sums([Sample(at(10))], timedelta(0)))
    with pytest.raises(ValueError):
        RollingSum(timedelta(0))


# ---------------------------------------------------------------------------------------------- streaming


def test_the_streaming_window_agrees_with_the_batch_scan():
    rng = random.Random(7)
    samples = sorted(
        Sample(at(0) + timedelta(seconds=rng.randrange(0, 6 * 3600)), f"e{i}", rng.randrange(1, 40))
        for i in range(400)
    )
    stream = RollingSum(HOUR)
    streamed = {}
    for sample in samples:
        streamed[sample.at] = stream.push(sample)
    batch = {w.end: w.total for w in rolling_sums(samples, HOUR)}
    assert streamed == batch


def test_the_streaming_window_counts_a_resent_event_once_and_ignores_a_stale_one():
    stream = RollingSum(HOUR)
    assert stream.push(Sample(at(10), "a", 5)) == 5
    assert stream.push(Sample(at(10), "a", 5)) == 5
    assert stream.push(Sample(at(10, 30), "b", 7)) == 12
    assert stream.push(Sample(at(10, 10), "late-but-inside", 1)) == 13
    assert stream.push(Sample(at(9, 30), "too-late", 100)) == 13
    assert stream.push(Sample(at(11, 5), "c", 2)) == 10
    assert [s.key for s in stream.items] == ["late-but-inside", "b", "c"]


# --------------------------------------------------------------------------------------------- sending limits


def test_external_recipients_are_counted_per_recipient_against_the_hourly_limit():
    assert find_breach([sent("m1", at(10), external=500)], DEFAULT_LIMITS) is None
    breach = find_breach(
        [sent("m1", at(10), external=500), sent("m2", at(10, 59), external=1)], DEFAULT_LIMITS
    )
    assert breach is not None
    assert (breach.limit_name, breach.limit, breach.count) == ("external_per_hour", 500, 501)
    assert (breach.window_start, breach.window_end) == (at(9, 59), at(10, 59))
    assert breach.counts == {"external_hour": 501, "internal_hour": 0, "total_day": 501}
    assert [m.key for m in breach.messages] == ["m1", "m2"]


def test_internal_and_external_recipients_have_separate_hourly_limits():
    limits = SendingLimits(external_per_hour=500, internal_per_hour=1_000, total_per_day=10_000)
    mixed = [sent("m1", at(10), external=400, internal=900)]
    assert find_breach(mixed, limits) is None
    breach = find_breach([*mixed, sent("m2", at(10, 5), internal=101)], limits)
    assert breach is not None
    assert (breach.limit_name, breach.count) == ("internal_per_hour", 1_001)
    assert breach.counts == {"external_hour": 400, "internal_hour": 1_001, "total_day": 1_401}
    assert [m.key for m in breach.messages] == ["m1", "m2"]


def test_the_daily_limit_counts_every_recipient_over_a_rolling_day():
    evening = [sent(f"m{h}", at(h), internal=50, external=50) for h in range(14, 24)]  # 1,000 by 23:00
    assert find_breach(evening, DEFAULT_LIMITS) is None
    breach = find_breach([*evening, sent("next-day", at(13, 59, day=3), internal=1)], DEFAULT_LIMITS)
    assert breach is not None
    assert (breach.limit_name, breach.count, breach.window_end) == ("total_per_day", 1_001, at(13, 59, day=3))
    assert breach.counts == {"external_hour": 0, "internal_hour": 1, "total_day": 1_001}
    assert find_breach([*evening, sent("a-day-later", at(14, day=3), internal=1)], DEFAULT_LIMITS) is None


def test_the_earliest_breach_wins_and_a_tie_reports_the_hourly_external_limit():
    both = [sent("m1", at(10), external=1_001)]
    breach = find_breach(both, DEFAULT_LIMITS)
    assert breach is not None and breach.limit_name == "external_per_hour"
    later_external = [sent("m1", at(10), internal=1_001), sent("m2", at(11), external=501)]
    assert find_breach(later_external, DEFAULT_LIMITS).limit_name == "internal_per_hour"


def test_switched_off_limits_never_fire():
    off = SendingLimits(external_per_hour=0, internal_per_hour=0, total_per_day=0)
    assert not off.any_on
    assert find_breach([sent("m1", at(10), external=9_999, internal=9_999)], off) is None


def test_mail_sent_before_not_before_does_not_count():
    burst = [sent("m1", at(10), external=500), sent("m2", at(10, 30), external=1)]
    assert find_breach(burst, DEFAULT_LIMITS, not_before=at(10, 15)) is None
    assert find_breach(burst, DEFAULT_LIMITS, not_before=at(10)).count == 501


def test_limits_read_from_policy_thresholds():
    limits = SendingLimits.from_thresholds(
        {"external_per_hour": 5, "internal_per_hour": 6, "total_per_day": 7}
    )
    assert limits == SendingLimits(5, 6, 7)


def test_every_message_of_a_continuing_burst_is_over_the_limits():
    burst = [sent(f"m{i:04}", at(10) + timedelta(seconds=3 * i), external=1) for i in range(1_000)]
    before = [sent("yesterday", at(10, day=1), external=1)]
    over = messages_over_limits(before + burst, DEFAULT_LIMITS)
    assert [m.key for m in over] == [m.key for m in burst]
    assert messages_over_limits(burst[:500], DEFAULT_LIMITS) == []
