"""The tenant simulator: a deterministic stream that follows the ingest contract, whose compromised accounts
break exactly the rules they are meant to break and whose benign users (the newsletter owner too) break none.

Rolling windows are half-open, ``(t - W, t]``, like the detectors', and computed over every window ending at a
message time (sort + two pointers), never over clock hours.
"""

from __future__ import annotations

import io
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mailflow.simulator import (
    LiveFeed,
    Scenario,
    Simulation,
    SimulationConfig,
    default_end,
    simulate,
)

END = datetime(2025, 3, 14, 12, tzinfo=UTC)  # a Friday noon
HOUR = 3_600
DAY = 86_400
LIMITS = {"external_per_hour": 500, "internal_per_hour": 1_000, "total_per_day": 1_000}
RARE_FOLDERS = {"rss feeds", "rss subscriptions", "conversation history", "notes", "junk email"}
BAD_VERDICTS = {"spam", "phish", "malware"}


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    """80 users over 8 days (the demo's length), 8 of them compromised: every scenario twice."""
    return simulate(SimulationConfig(end=END, mailboxes=80, days=8, compromised=8, seed=7))


@pytest.fixture(scope="module")
def us_simulation() -> Simulation:
    """Another seed, time zone and domain, over 15 days: a week of history before most days."""
    end = END + timedelta(hours=5)
    return simulate(
        SimulationConfig(
            end, mailboxes=120, days=15, compromised=4, seed=11, domain="fabrikam.test", home_country="US"
        )
    )


# ------------------------------------------------------------------------------------------------ helpers

REQUIRED = {
    "mailbox": {"address"},
    "message": {"sender", "recipients"},
    "inbox_rule": {"mailbox", "operation", "rule_id"},
    "forwarding": {"mailbox"},
    "delegation": {"mailbox", "delegate", "access", "operation"},
    "sign_in": {"user", "ip"},
}
OPTIONAL = {
    "mailbox": {"display_name", "department", "vip"},
    "message": {"subject", "verdict", "urls", "size", "client_ip", "internet_message_id", "body_hash"},
    "inbox_rule": {"name", "conditions", "actions", "enabled"},
    "forwarding": {"forward_to", "keep_copy"},
    "delegation": set(),
    "sign_in": {"country", "client_app", "result", "user_agent"},
}
ENUMS = {
    ("message", "verdict"): {"clean", "spam", "bulk", "phish", "malware"},
    ("inbox_rule", "operation"): {"created", "updated", "deleted"},
    ("delegation", "access"): {"full_access", "send_as", "send_on_behalf"},
    ("delegation", "operation"): {"added", "removed"},
    ("sign_in", "client_app"): {"browser", "imap", "pop", "smtp", "eas", "other"},
    ("sign_in", "result"): {"success", "failure"},
}
ADDRESS_FIELDS = {"address", "sender", "mailbox", "delegate", "user", "forward_to"}
RULE_ACTIONS = {"forward_to", "redirect_to", "move_to_folder", "delete", "mark_as_read"}


def contract_errors(event: dict) -> list[str]:
    """What is wrong with one event under ingest contract v1 (DESIGN section 4); empty when it is valid."""
    kind = event.get("type")
    if kind not in REQUIRED:
        return [f"unknown type {kind!r}"]
    errors = [f"missing {name}" for name in {"id", "time"} | REQUIRED[kind] if event.get(name) is None]
    unknown = set(event) - {"type", "id", "time"} - REQUIRED[kind] - OPTIONAL[kind]
    errors += [f"unknown field {name}" for name in sorted(unknown)]
    for (enum_kind, name), allowed in ENUMS.items():
        if enum_kind == kind and name in event and event[name] not in allowed:
            errors.append(f"{name}={event[name]!r}")
    if not (isinstance(event.get("id"), str) and event["id"].strip()):
        errors.append("id is not a non-empty string")
    stamp = event.get("time")
    if not isinstance(stamp, str) or not stamp.endswith("+00:00"):
        errors.append(f"time {stamp!r} is not ISO 8601 with +00:00")
    else:
        datetime.fromisoformat(stamp)
    for name in ADDRESS_FIELDS & set(event):
        value = event[name]
        if not (isinstance(value, str) and value.count("@") == 1 and "." in value.split("@")[1]):
            errors.append(f"{name} {value!r} is not an address")
    if kind == "message":
        recipients = event["recipients"]
        if not (isinstance(recipients, list) and recipients and all("@" in r for r in recipients)):
            errors.append("recipients must be a non-empty list of addresses")
        elif len(set(recipients)) != len(recipients):
            errors.append("repeated recipient")
        if not isinstance(event.get("urls", []), list) or not isinstance(event.get("size", 0), int):
            errors.append("urls must be a list and size an integer")
        if "client_ip" in event:
            ipaddress.ip_address(event["client_ip"])
    if kind == "sign_in":
        ipaddress.ip_address(event["ip"])
        country = event.get("country", "GB")
        if not (len(country) == 2 and country.isalpha() and country.isupper()):
            errors.append(f"country {country!r}")
    if kind == "inbox_rule":
        if not isinstance(event.get("conditions", {}), dict) or not isinstance(
            event.get("actions", {}), dict
        ):
            errors.append("conditions and actions must be objects")
        elif set(event.get("actions", {})) - RULE_ACTIONS:
            errors.append(f"unknown rule actions {set(event['actions']) - RULE_ACTIONS}")
    for name in ("vip", "enabled", "keep_copy"):
        if name in event and not isinstance(event[name], bool):
            errors.append(f"{name} must be a boolean")
    return errors


def epoch(event: dict) -> int:
    return int(datetime.fromisoformat(event["time"]).timestamp())


def rolling_max(samples: Iterable[tuple[int, int]], window: int) -> int:
    """The largest sum of a window ``(t - window, t]`` over every window ending at a sample (0 for none)."""
    return max([0, *(total for _, total in rolling_sums(samples, window))])


def rolling_sums(samples: Iterable[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """(end, sum) of the window ``(end - window, end]`` ending at each distinct sample time, in time order.
    Two pointers."""
    ordered = sorted(samples)
    sums, total, lo, hi = [], 0, 0, 0
    while hi < len(ordered):
        end = ordered[hi][0]
        while hi < len(ordered) and ordered[hi][0] == end:
            total += ordered[hi][1]
            hi += 1
        while ordered[lo][0] <= end - window:
            total -= ordered[lo][1]
            lo += 1
        sums.append((end, total))
    return sums


class Sent:
    """One sender's messages as (time, external, internal, bad verdict) tuples."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, int, bool]] = []

    def external(self) -> list[tuple[int, int]]:
        return [(t, ext) for t, ext, _, _ in self.rows]

    def internal(self) -> list[tuple[int, int]]:
        return [(t, internal) for t, _, internal, _ in self.rows]

    def total(self) -> list[tuple[int, int]]:
        return [(t, ext + internal) for t, ext, internal, _ in self.rows]

    def limit_counts(self) -> dict[str, int]:
        return {
            "external_per_hour": rolling_max(self.external(), HOUR),
            "internal_per_hour": rolling_max(self.internal(), HOUR),
            "total_per_day": rolling_max(self.total(), DAY),
        }

    def spam_ratio_rule_fires(self) -> bool:
        """(b) of the suspicious-pattern policy: in some 24 h, >= 30% of the mail is bad with >= 10 such."""
        messages = [(t, 1) for t, *_ in self.rows]
        bad = [(t, 1 if is_bad else 0) for t, _, _, is_bad in self.rows]
        windows = zip(rolling_sums(messages, DAY), rolling_sums(bad, DAY), strict=True)
        return any(bad_count >= 10 and bad_count >= 0.3 * count for (_, count), (_, bad_count) in windows)


def sent_by_sender(simulation: Simulation) -> dict[str, Sent]:
    domain = "@" + simulation.config.domain
    sent: dict[str, Sent] = defaultdict(Sent)
    for event in simulation.events:
        if event["type"] == "message":
            internal = sum(r.endswith(domain) for r in event["recipients"])
            external = len(event["recipients"]) - internal
            sent[event["sender"]].rows.append(
                (epoch(event), external, internal, event["verdict"] in BAD_VERDICTS)
            )
    return sent


def events_of(simulation: Simulation, address: str, kind: str) -> list[dict]:
    owner = {"message": "sender", "sign_in": "user"}.get(kind, "mailbox")
    return [e for e in simulation.events if e["type"] == kind and e.get(owner) == address]


def compromised(simulation: Simulation, scenario: Scenario) -> list:
    entries = [c for c in simulation.ground_truth.compromised if c.scenario is scenario]
    assert entries, f"no {scenario} in the ground truth"
    return entries


def benign_users(simulation: Simulation) -> list[str]:
    truth = simulation.ground_truth
    bad = {c.address for c in truth.compromised} | {truth.newsletter_owner}
    return [e["address"] for e in simulation.events if e["type"] == "mailbox" and e["address"] not in bad]


def ndjson(simulation: Simulation) -> bytes:
    buffer = io.StringIO()
    simulation.write_ndjson(buffer)
    return buffer.getvalue().encode()


# ------------------------------------------------------------------------------------------- determinism


def test_the_same_config_gives_a_byte_identical_stream():
    config = SimulationConfig(end=END, mailboxes=40, days=4, compromised=4, seed=3)
    first, second = simulate(config), simulate(config)
    assert ndjson(first) == ndjson(second)
    assert first.ground_truth == second.ground_truth


def test_another_seed_gives_another_stream():
    one = simulate(SimulationConfig(end=END, mailboxes=40, days=4, compromised=4, seed=3))
    other = simulate(SimulationConfig(end=END, mailboxes=40, days=4, compromised=4, seed=4))
    assert ndjson(one) != ndjson(other)
    assert [c.address for c in one.ground_truth.compromised] != [
        c.address for c in other.ground_truth.compromised
    ]


def test_the_default_end_is_now_truncated_to_the_hour():
    now = datetime(2025, 3, 14, 12, 34, 56, 789, tzinfo=UTC)
    assert default_end(now) == datetime(2025, 3, 14, 12, tzinfo=UTC)


def test_the_config_refuses_an_impossible_tenant():
    with pytest.raises(ValueError, match="compromised"):
        SimulationConfig(end=END, mailboxes=10, compromised=9)
    with pytest.raises(ValueError, match="aware"):
        SimulationConfig(end=datetime(2025, 3, 14, 12))  # noqa: DTZ001 - naive on purpose: refused
    with pytest.raises(ValueError, match="home_country"):
        SimulationConfig(end=END, home_country="XX")
    with pytest.raises(ValueError, match="domain"):
        SimulationConfig(end=END, domain="not a domain")


# ---------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", ["simulation", "us_simulation"])
def test_every_event_follows_the_ingest_contract(name, request):
    simulation: Simulation = request.getfixturevalue(name)
    problems = {e["id"]: contract_errors(e) for e in simulation.events}
    assert {event_id: errors for event_id, errors in problems.items() if errors} == {}
    assert set(simulation.counts_by_type()) == set(REQUIRED)
    assert all(simulation.counts_by_type().values())


def test_mailbox_events_come_first_then_everything_in_time_order_inside_the_period(simulation):
    events = simulation.events
    declared = [e for e in events if e["type"] == "mailbox"]
    assert events[: len(declared)] == declared
    assert len(declared) == simulation.config.mailboxes + 1  # the users and the newsletter owner
    times = [epoch(e) for e in events[len(declared) :]]
    assert times == sorted(times)
    start, end = simulation.config.start.timestamp(), simulation.config.end.timestamp()
    assert all(start < t < end for t in times)
    assert [e["id"] for e in events] == [f"sim-7-{n}" for n in range(1, len(events) + 1)]


def test_every_owning_address_is_a_declared_mailbox(simulation):
    declared = {e["address"] for e in simulation.events if e["type"] == "mailbox"}
    owners = {e.get("sender") or e.get("user") or e.get("mailbox") for e in simulation.events}
    delegates = {e["delegate"] for e in simulation.events if e["type"] == "delegation"}
    assert owners - {None} <= declared
    assert delegates <= declared
    assert {address.split("@")[1] for address in declared} == {"contoso.example"}


# --------------------------------------------------------------------------------------------- scenarios


def test_scenarios_go_round_robin_and_start_on_the_last_day(simulation):
    truth = simulation.ground_truth
    assert [c.scenario for c in truth.compromised] == list(Scenario) * 2
    assert len({c.address for c in truth.compromised}) == 8
    assert truth.newsletter_owner == "newsletter@contoso.example"
    for entry in truth.compromised:
        assert END - timedelta(hours=24) < entry.starts_at < END
        assert entry.attacker_country != "GB"
        sign_ins = events_of(simulation, entry.address, "sign_in")
        first = min(epoch(e) for e in sign_ins if e["country"] != "GB")
        assert first == entry.starts_at.timestamp()  # the attacker's sign-in is the first malicious event
        history = entry.starts_at.timestamp() - min(epoch(e) for e in sign_ins)
        assert history > 7 * DAY  # the detectors' learning period is over when the attack starts


def test_the_phishing_burst_sends_one_lure_to_over_500_external_recipients_in_an_hour(simulation):
    sent = sent_by_sender(simulation)
    for entry in compromised(simulation, Scenario.OUTBOUND_PHISH):
        phish = [e for e in events_of(simulation, entry.address, "message") if e["verdict"] == "phish"]
        assert {e["subject"] for e in phish} == {entry.details["subject"]}
        assert {tuple(e["urls"]) for e in phish} == {(entry.details["url"],)}
        external = [(epoch(e), len(e["recipients"])) for e in phish]
        assert rolling_max(external, HOUR) > 500
        assert sent[entry.address].limit_counts()["external_per_hour"] > LIMITS["external_per_hour"]
        assert len({r.split("@")[1] for e in phish for r in e["recipients"]}) > 10  # many external domains
        assert min(t for t, _ in external) > entry.starts_at.timestamp()  # after the foreign sign-in


def test_the_slow_spam_run_stays_under_both_hourly_limits_but_breaks_the_daily_one(simulation):
    sent = sent_by_sender(simulation)
    for entry in compromised(simulation, Scenario.SLOW_SPAM):
        counts = sent[entry.address].limit_counts()
        assert counts["external_per_hour"] <= LIMITS["external_per_hour"]
        assert counts["internal_per_hour"] <= LIMITS["internal_per_hour"]
        assert counts["total_per_day"] > LIMITS["total_per_day"]
        spam = [e for e in events_of(simulation, entry.address, "message") if e["verdict"] == "spam"]
        assert rolling_max([(epoch(e), len(e["recipients"])) for e in spam], DAY) > 1_000
        assert sent[entry.address].spam_ratio_rule_fires()


def test_the_bec_account_hides_finance_mail_in_rss_feeds_and_forwards_outside(simulation):
    for entry in compromised(simulation, Scenario.BEC_FORWARDING):
        rules = events_of(simulation, entry.address, "inbox_rule")  # the victim may also have a benign rule
        (rule,) = [e for e in rules if e["rule_id"] == entry.details["rule_id"]]
        assert rule["operation"] == "created" and rule["enabled"] is True
        assert rule["actions"] == {"move_to_folder": "RSS Feeds", "mark_as_read": True}
        words = " ".join(rule["conditions"]["subject_contains"] + rule["conditions"]["body_contains"])
        assert "invoice" in words and "payment" in words
        (forwarding,) = events_of(simulation, entry.address, "forwarding")
        assert forwarding["forward_to"] == entry.details["forward_to"]
        assert not forwarding["forward_to"].endswith("@contoso.example")
        new_country = [e for e in events_of(simulation, entry.address, "sign_in") if e["country"] != "GB"]
        assert new_country[0]["result"] == "success"
        assert epoch(new_country[0]) < epoch(rule) < epoch(forwarding)


def test_the_delegation_account_grants_full_access_after_a_new_country_sign_in_and_uses_imap(simulation):
    mailboxes = {e["address"] for e in simulation.events if e["type"] == "mailbox"}
    for entry in compromised(simulation, Scenario.DELEGATION_IMAP):
        delegations = events_of(simulation, entry.address, "delegation")  # an executive may also have one
        (delegation,) = [e for e in delegations if e["delegate"] == entry.details["delegate"]]
        assert (delegation["access"], delegation["operation"]) == ("full_access", "added")
        assert delegation["delegate"] in mailboxes and delegation["delegate"] != entry.address
        sign_ins = events_of(simulation, entry.address, "sign_in")
        home = {e["country"] for e in sign_ins if epoch(e) < entry.starts_at.timestamp()}
        assert home == {"GB"}  # a week of history from home only, so the attacker's country is new
        foreign = [e for e in sign_ins if e["country"] == entry.attacker_country]
        success = next(e for e in foreign if e["result"] == "success" and e["client_app"] == "browser")
        assert any(e["result"] == "failure" for e in foreign if epoch(e) < epoch(success))
        assert epoch(success) < epoch(delegation)
        imap = [e for e in foreign if e["client_app"] == "imap"]
        assert len(imap) >= 4 and all(e["result"] == "success" and epoch(e) > epoch(delegation) for e in imap)


# ------------------------------------------------------------------------------------------------ benign


@pytest.mark.parametrize("name", ["simulation", "us_simulation"])
def test_the_newsletter_owner_stays_under_every_limit_every_weekday(name, request):
    simulation: Simulation = request.getfixturevalue(name)
    owner = simulation.ground_truth.newsletter_owner
    sent = sent_by_sender(simulation)[owner]
    counts = sent.limit_counts()
    assert counts["external_per_hour"] <= 500 and counts["internal_per_hour"] <= 1_000
    assert counts["total_per_day"] <= 1_000
    assert counts["external_per_hour"] >= 250  # a real mailing, not a trickle
    assert {e["verdict"] for e in events_of(simulation, owner, "message")} == {"clean"}
    assert not sent.spam_ratio_rule_fires()
    mailing_days = {datetime.fromtimestamp(t, UTC).date() for t, ext, _, _ in sent.rows if ext}
    assert all(day.weekday() < 5 for day in mailing_days)
    assert len(mailing_days) >= simulation.config.days * 5 // 7 - 1


def test_the_newsletter_owners_busiest_hour_never_looks_unusual(us_simulation):
    """(a) of the suspicious-pattern policy: an hour over 3x the busiest hour of the previous 7 days."""
    sent = sent_by_sender(us_simulation)[us_simulation.ground_truth.newsletter_owner]
    hours = rolling_sums(sent.total(), HOUR)
    learning_ends = hours[0][0] + 7 * DAY
    checked = 0
    for end, total in hours:
        if end < learning_ends:
            continue
        previous = [s for t, s in hours if end - 7 * DAY <= t <= end - HOUR]
        assert total <= 3 * max(previous)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("name", ["simulation", "us_simulation"])
def test_benign_users_stay_far_below_every_limit_and_the_pattern_floor(name, request):
    simulation: Simulation = request.getfixturevalue(name)
    sent = sent_by_sender(simulation)
    for address in benign_users(simulation):
        if address not in sent:
            continue
        counts = sent[address].limit_counts()
        assert counts["external_per_hour"] <= 100, address  # the floor of the busiest-hour rule, too
        assert counts["internal_per_hour"] <= 100, address
        assert counts["total_per_day"] <= 400, address
        assert rolling_max(sent[address].total(), HOUR) <= 100, address
        assert not sent[address].spam_ratio_rule_fires(), address


@pytest.mark.parametrize("name", ["simulation", "us_simulation"])
def test_benign_directory_changes_and_sign_ins_raise_nothing(name, request):
    simulation: Simulation = request.getfixturevalue(name)
    home = simulation.config.home_country
    benign = set(benign_users(simulation)) | {simulation.ground_truth.newsletter_owner}
    rules = [e for e in simulation.events if e["type"] == "inbox_rule" and e["mailbox"] in benign]
    assert rules  # not every rule is malicious
    for rule in rules:
        actions = rule["actions"]
        assert not {"forward_to", "redirect_to", "delete", "mark_as_read"} & set(actions)
        assert actions["move_to_folder"].lower() not in RARE_FOLDERS
    assert not [e for e in simulation.events if e["type"] == "forwarding" and e["mailbox"] in benign]
    delegations = [e for e in simulation.events if e["type"] == "delegation" and e["mailbox"] in benign]
    assert delegations and {e["access"] for e in delegations} == {"send_on_behalf"}
    sign_ins = [e for e in simulation.events if e["type"] == "sign_in" and e["user"] in benign]
    assert {e["country"] for e in sign_ins} == {home}
    assert {e["client_app"] for e in sign_ins} == {"browser", "eas"}
    assert 0 < sum(e["result"] == "failure" for e in sign_ins) < 0.05 * len(sign_ins)


def test_the_baseline_looks_like_an_office_week(simulation):
    messages = [e for e in simulation.events if e["type"] == "message" and e["verdict"] != "phish"]
    benign = set(benign_users(simulation))
    mail = [e for e in messages if e["sender"] in benign]
    local = [datetime.fromisoformat(e["time"]) for e in mail]  # GB: local time is UTC
    office_hours = sum(t.weekday() < 5 and 8 <= t.hour < 18 for t in local)
    assert office_hours > 0.8 * len(mail)
    recipients = [r for e in mail for r in e["recipients"]]
    internal = sum(r.endswith("@contoso.example") for r in recipients) / len(recipients)
    assert 0.55 < internal < 0.8
    noisy = sum(e["verdict"] in {"spam", "bulk"} for e in mail) / len(mail)
    assert 0.002 < noisy < 0.025
    per_user_day = len(mail) / len(benign) / 7  # 6 working days and two halves
    assert 8 < per_user_day < 40
    departments = {e["department"] for e in simulation.events if e["type"] == "mailbox"}
    assert departments == {
        "Sales",
        "Finance",
        "Engineering",
        "HR",
        "Marketing",
        "Support",
        "Legal",
        "Executive",
    }
    assert simulation.ground_truth.vips


def test_a_thousand_mailboxes_for_a_week_generate_a_realistic_volume():
    """How long it takes is measured by ``BENCH=simulator make bench``, not asserted here."""
    big = simulate(SimulationConfig(end=END, mailboxes=1_000, days=7, compromised=5, seed=1))
    assert 100_000 <= len(big.events) <= 200_000


# ------------------------------------------------------------------------------------------------- live


def test_the_live_feed_draws_valid_baseline_events_inside_each_span(simulation):
    feed: LiveFeed = simulation.live_feed(session=42)
    since = datetime(2025, 3, 19, 9, 30, tzinfo=UTC)  # a Wednesday morning
    first = feed.between(since, since + timedelta(minutes=10))
    second = feed.between(since + timedelta(minutes=10), since + timedelta(minutes=20))
    events = first + second
    assert len(first) > 5 and len(second) > 5
    assert [e for e in events if contract_errors(e)] == []
    moments = [datetime.fromisoformat(e["time"]) for e in events]
    assert all(since < moment <= since + timedelta(minutes=10) for moment in moments[: len(first)])
    assert all(since + timedelta(minutes=10) < moment for moment in moments[len(first) :])
    assert moments == sorted(moments)
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids) and all(i.startswith("sim-7-live-42-") for i in ids)
    assert {e["type"] for e in events} <= {"message", "sign_in"}
    assert all(e["verdict"] != "phish" for e in events if e["type"] == "message")


def test_the_live_feed_is_quiet_at_night_and_busy_in_the_day(simulation):
    feed = simulation.live_feed(session=1)
    night = datetime(2025, 3, 19, 2, tzinfo=UTC)
    day = datetime(2025, 3, 19, 10, tzinfo=UTC)
    assert (
        len(feed.between(night, night + timedelta(hours=1)))
        < len(feed.between(day, day + timedelta(hours=1))) / 10
    )


# ---------------------------------------------------------------------------------------------- command


def test_the_command_writes_the_stream_without_touching_the_database(tmp_path):
    out = tmp_path / "events.ndjson"
    truth = tmp_path / "truth.json"
    stdout = io.StringIO()
    options = "--mailboxes 40 --days 4 --compromised 4 --seed 3 --end 2025-03-14T12:00:00+00:00 --no-ingest"
    call_command(
        "simulate_tenant", *options.split(), "--out", str(out), "--ground-truth", str(truth), stdout=stdout
    )
    expected = simulate(SimulationConfig(end=END, mailboxes=40, days=4, compromised=4, seed=3))
    assert out.read_bytes() == ndjson(expected)
    report = stdout.getvalue()
    for entry in expected.ground_truth.compromised:
        assert entry.address in report and str(entry.scenario) in report
    assert "newsletter@contoso.example" in report
    assert f"message {expected.counts_by_type()['message']:,}" in report
    assert '"newsletter_owner": "newsletter@contoso.example"' in truth.read_text()


def test_the_command_streams_ndjson_to_stdout_and_reports_on_stderr():
    stdout, stderr = io.StringIO(), io.StringIO()
    options = "--mailboxes 10 --days 2 --compromised 1 --end 2025-03-14T12:00Z --out - --no-ingest"
    call_command("simulate_tenant", *options.split(), stdout=stdout, stderr=stderr)
    lines = stdout.getvalue().splitlines()
    expected = simulate(SimulationConfig(end=END, mailboxes=10, days=2, compromised=1, seed=1))
    assert len(lines) == len(expected.events)
    assert (stdout.getvalue()).encode() == ndjson(expected)
    assert "Compromised mailboxes (1)" in stderr.getvalue()


def test_the_command_refuses_live_without_ingest_and_bad_options():
    with pytest.raises(CommandError, match="--live"):
        call_command("simulate_tenant", "--no-ingest", "--live")
    with pytest.raises(CommandError, match="offset"):
        call_command("simulate_tenant", "--no-ingest", "--end", "2025-03-14T12:00")
    with pytest.raises(CommandError, match="compromised"):
        call_command("simulate_tenant", "--no-ingest", "--mailboxes", "5", "--compromised", "4")


# ------------------------------------------------------------------------------------------------ ingest

SMALL_TENANT = ("--mailboxes", "30", "--days", "8", "--compromised", "2", "--seed", "5")


@pytest.mark.django_db
def test_the_command_ingests_the_tenant_and_a_rerun_stores_nothing_twice(tenant):
    from mailboxes.models import AcceptedDomain, Mailbox, MailboxForwarding, SignIn
    from mailflow.models import MessageEvent

    args = ("simulate_tenant", *SMALL_TENANT, "--end", END.isoformat(), "--batch-size", "1500")
    first = io.StringIO()
    call_command(*args, stdout=first)
    expected = simulate(SimulationConfig(end=END, mailboxes=30, days=8, compromised=2, seed=5))
    total, counts = len(expected.events), expected.counts_by_type()
    assert f"accepted {total:,}, duplicates 0, conflicts 0, warnings 0" in first.getvalue()
    assert AcceptedDomain.objects.domains_of(tenant) == {"contoso.example"}
    assert Mailbox.objects.for_tenant(tenant).count() == 31
    assert MessageEvent.objects.for_tenant(tenant).count() == counts["message"]
    assert SignIn.objects.filter(tenant=tenant).count() == counts["sign_in"]
    phisher = compromised(expected, Scenario.OUTBOUND_PHISH)[0].address
    phish = MessageEvent.objects.for_tenant(tenant).filter(sender__address=phisher, verdict="phish")
    assert sum(phish.values_list("external_count", flat=True)) > 500
    assert not MailboxForwarding.objects.active().exists()  # no BEC among two compromised users

    second = io.StringIO()
    call_command(*args, stdout=second)
    assert f"accepted 0, duplicates {total:,}, conflicts 0" in second.getvalue()
    assert MessageEvent.objects.for_tenant(tenant).count() == counts["message"]


@pytest.mark.django_db
def test_the_command_ingests_into_the_named_tenant_and_keeps_going_live(tenant, other_tenant):
    from mailboxes.models import Mailbox

    output = io.StringIO()
    options = (
        "--mailboxes 20 --days 1 --compromised 0 --tenant other --live --live-seconds 1 --live-interval 0.25"
    )
    call_command("simulate_tenant", *options.split(), stdout=output)
    assert Mailbox.objects.for_tenant(other_tenant).count() == 21
    assert not Mailbox.objects.for_tenant(tenant).exists()
    assert 'Ingested into tenant "other"' in output.getvalue()
    assert "Live: stopped after" in output.getvalue()


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_tenant():
    with pytest.raises(CommandError, match="No tenant"):
        call_command("simulate_tenant", "--mailboxes", "5", "--compromised", "0", "--tenant", "nope")
