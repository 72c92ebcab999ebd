"""The built-in tenant simulator: a pure, seeded generator of ingest events (DESIGN section 4) for one tenant.

``simulate(config)`` returns a :class:`Simulation`: the event stream (plain dicts with exactly the contract's
fields) and the ground truth (who is compromised, how, and since when). Nothing here touches the database, the
clock or the global ``random`` state, so the same config always yields the same stream, byte for byte
(:meth:`Simulation.write_ndjson`). The ``simulate_tenant`` command feeds the stream to the ingest service.

**The tenant.** ``mailboxes`` users in one accepted domain, in eight departments with a few VIPs. Mail follows
a working-hours shape in the home country's local time (Mon-Fri 08-18, light evenings and weekends), with 1-5
recipients (about two thirds internal; external ones from each user's own contacts at partner and consumer
domains) and about 1% spam/bulk noise. Sign-ins come daily from the home country by browser and mobile (EAS),
with the odd mistyped password. A few users file newsletters into folders with inbox rules, and executives let
an assistant send on their behalf. Benign users stay far below every sending limit of DESIGN section 5, and
below the 100-recipient floor of the suspicious-pattern rule.

**The newsletter owner** (``newsletter@<domain>``, Marketing) mails 250-400 external subscribers within about
half an hour every weekday, verdict clean: under 500 external per rolling hour and 1,000 per rolling 24 h, and
the same every weekday, so its busiest hour never looks unusual either.

**The compromised users** (``compromised`` of them, round-robin over :class:`Scenario`) are attacked on the
last day of the period, so every breach ends within the 24 hours before ``end``:

- ``outbound_phish``: a foreign sign-in, then 55-70 copies of one credential-phishing lure (one subject, URL
  and body), 10 external recipients each, within 50 minutes: more than 500 external recipients in an hour.
- ``slow_spam``: a foreign sign-in, then ~80 recipients an hour for 15 hours (verdict spam): under both
  hourly limits, over the 1,000 recipients of a rolling 24 h.
- ``bec_forwarding``: a sign-in from a new country, an inbox rule moving mail about invoices and payments to
  "RSS Feeds" and marking it read, external mailbox forwarding to the attacker, and a fraudulent invoice mail.
- ``delegation_imap``: failed passwords, then a successful sign-in from a new country, a full-access
  delegation to another mailbox of the tenant, and legacy IMAP sign-ins from the attacker's address.

**Ids and order.** Events get ids ``sim-<seed>-<n>`` in stream order, so re-sending a stream is a no-op for
the ingest service (all duplicates). ``mailbox`` events come first, at the period's start (they declare the
accepted domain and create the mailboxes), then every other event in time order. Times are whole seconds in
ISO 8601 with ``+00:00``.
"""

from __future__ import annotations

import bisect
import gc
import json
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from .scenarios_evasive import EvasiveScenario

from .simulated_tenant import (
    _WEEKEND_CUM,
    _WEEKEND_HOURS,
    _WEEKEND_SENDING,
    _WORKDAY_CUM,
    _WORKDAY_HOURS,
    ATTACKER_COUNTRIES,
    ATTACKER_DOMAINS,
    BENIGN_RULES,
    CONSUMER_DOMAINS,
    DAY_SECONDS,
    DEPARTMENTS,
    FINANCE_WORDS,
    FIRST_NAMES,
    HOUR_SECONDS,
    IMAP_AGENT,
    LAST_NAMES,
    MINUTE,
    MOBILE_AGENTS,
    PARTNER_DOMAINS,
    PHISH_HOSTS,
    PHISH_SUBJECTS,
    SPAM_HOSTS,
    SPAM_SUBJECTS,
    USER_AGENTS,
    Event,
    SimulatedMailbox,
    SimulationConfig,
    _delegation,
    _external_address,
    _hex,
    _inbox_rule,
    _iso,
    _sign_in,
    _Tenant,
)
from .simulated_tenant import HOME_COUNTRIES as HOME_COUNTRIES  # re-exported for simulate_tenant

EVENT_TYPES = ("mailbox", "message", "inbox_rule", "forwarding", "delegation", "sign_in")


class Scenario(StrEnum):
    """How a compromised account is abused (assigned round-robin, in this order)."""

    OUTBOUND_PHISH = "outbound_phish"
    SLOW_SPAM = "slow_spam"
    BEC_FORWARDING = "bec_forwarding"
    DELEGATION_IMAP = "delegation_imap"

    @property
    def description(self) -> str:
        return _SCENARIO_DESCRIPTIONS[self]


_SCENARIO_DESCRIPTIONS = {
    Scenario.OUTBOUND_PHISH: "outbound phishing burst (> 500 external recipients in an hour)",
    Scenario.SLOW_SPAM: "slow spam run (under the hourly limits, > 1,000 recipients in 24 h)",
    Scenario.BEC_FORWARDING: "business-email compromise (finance rule to RSS Feeds, external forwarding)",
    Scenario.DELEGATION_IMAP: "full-access delegation, new-country sign-in, IMAP sign-ins",
}


def default_end(now: datetime) -> datetime:
    """The default end of the simulated period: ``now`` in UTC, truncated to the hour."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class CompromisedMailbox:
    """Ground truth for one compromised account: its scenario, the attacker's first event (``starts_at``),
    origin, and the scenario's details (the lure's subject and URL, the forwarding target, the delegate)."""

    address: str
    scenario: Scenario | EvasiveScenario
    starts_at: datetime
    attacker_country: str
    attacker_ip: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroundTruth:
    """What really happened in the simulated tenant, to check detections against."""

    domain: str
    home_country: str
    start: datetime
    end: datetime
    compromised: tuple[CompromisedMailbox, ...]
    newsletter_owner: str
    vips: tuple[str, ...]
    benign_lookalikes: dict[str, list[str]] = field(default_factory=dict)  # by kind, with ``evasive``

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, times in ISO 8601."""
        return json.loads(json.dumps(asdict(self), default=datetime.isoformat))


@dataclass
class Simulation:
    """A generated tenant: the event stream (mailbox events first, then by time), ground truth and roster."""

    config: SimulationConfig
    events: list[Event]
    ground_truth: GroundTruth
    mailboxes: tuple[SimulatedMailbox, ...]

    def counts_by_type(self) -> dict[str, int]:
        counts = Counter(event["type"] for event in self.events)
        return {kind: counts[kind] for kind in EVENT_TYPES}

    def ndjson_lines(self) -> Iterator[str]:
        """One JSON document per event (no newline), keys sorted: byte-identical for the same config."""
        encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
        for event in self.events:
            yield encode(event)

    def write_ndjson(self, stream: SupportsWrite[str]) -> int:
        """Write the stream as NDJSON; returns the number of lines written."""
        count = 0
        for line in self.ndjson_lines():
            stream.write(line + "\n")
            count += 1
        return count

    def live_feed(self, *, session: int) -> LiveFeed:
        """A source of fresh baseline events for this tenant at real time (see :class:`LiveFeed`)."""
        return LiveFeed(self, session=session)


def simulate(config: SimulationConfig) -> Simulation:
    """Generate the tenant described by ``config``. Pure and deterministic: same config, same events."""
    # Building ~10^5 small dicts makes the cyclic collector rescan every live object again and again (3-4x
    # the generation time in a busy process); they form no cycles, so it is paused until the stream is built.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Generator(config).run()
    finally:
        if was_enabled:
            gc.enable()


class _Generator:
    """Builds one :class:`Simulation`: roster, baseline, newsletter, scenarios, then the ordered stream."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.start = int(config.start.timestamp())
        self.end = int(config.end.timestamp())
        self.raw: list[tuple[int, Event]] = []
        self.rule_count = 0

    def emit(self, epoch: int, event: Event) -> None:
        """Keep an event that falls inside the period (the partial days at its edges are cut)."""
        if self.start < epoch < self.end:
            self.raw.append((epoch, event))

    def run(self) -> Simulation:
        rng = self.rng
        users = self._roster()
        newsletter = self._newsletter_owner()
        self.tenant = _Tenant(self.config, rng, users)
        victims = rng.sample(range(len(users)), self.config.compromised)
        self._baseline(users)
        self._newsletter(newsletter)
        self._benign_rules(users)
        self._assistant_delegations(users)
        victim_set = set(victims)
        benign = [user for index, user in enumerate(users) if index not in victim_set]
        scenarios: tuple[Scenario | EvasiveScenario, ...] = tuple(Scenario)
        lookalikes: dict[str, list[str]] = {}
        if self.config.evasive:
            from . import scenarios_evasive

            scenarios += tuple(scenarios_evasive.EvasiveScenario)
            lookalikes = scenarios_evasive.benign_lookalikes(self, benign)
        truth = tuple(
            _Attack(self, users[index], benign).run(scenarios[n % len(scenarios)])
            for n, index in enumerate(victims)
        )
        mailboxes = (*users, newsletter)
        ground_truth = GroundTruth(
            domain=self.config.domain,
            home_country=self.config.home_country,
            start=self.config.start,
            end=self.config.end,
            compromised=truth,
            newsletter_owner=newsletter.address,
            vips=tuple(m.address for m in users if m.vip),
            benign_lookalikes=lookalikes,
        )
        return Simulation(self.config, self._ordered(mailboxes), ground_truth, mailboxes)

    def next_rule_id(self) -> str:
        self.rule_count += 1
        return f"sim-{self.config.seed}-rule-{self.rule_count}"

    # --------------------------------------------------------------------------------------------- roster

    def _roster(self) -> list[SimulatedMailbox]:
        rng, domain = self.rng, self.config.domain
        names = [d[0] for d in DEPARTMENTS]
        cumulative = list(accumulate(d[1] for d in DEPARTMENTS))
        external_shares = {d[0]: d[2] for d in DEPARTMENTS}
        taken = {f"newsletter@{domain}"}
        users: list[SimulatedMailbox] = []
        for index in range(self.config.mailboxes):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            local = f"{first}.{last}".lower().replace("'", "")
            address, suffix = f"{local}@{domain}", 1
            while address in taken:
                suffix += 1
                address = f"{local}{suffix}@{domain}"
            taken.add(address)
            # The first three are the leadership, so every tenant has VIPs in Executive.
            department = (
                "Executive" if index < 3 else names[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
            )
            profile = rng.random()
            if profile < 0.07:
                daily = rng.uniform(1, 5)
            elif profile < 0.97:
                daily = rng.uniform(5, 40)
            else:
                daily = rng.uniform(60, 90)  # a heavy sender
            users.append(
                SimulatedMailbox(
                    address=address,
                    display_name=f"{first} {last}",
                    department=department,
                    vip=department == "Executive" or rng.random() < 0.01,
                    daily_messages=daily,
                    external_share=min(0.9, max(0.02, rng.gauss(external_shares[department], 0.08))),
                    office_ip=f"203.0.113.{rng.randrange(1, 31)}",
                    home_ip=f"198.51.100.{rng.randrange(1, 255)}",
                    user_agent=rng.choice(USER_AGENTS),
                    mobile_agent=rng.choice(MOBILE_AGENTS),
                    contacts=tuple(_external_address(rng) for _ in range(rng.randint(4, 24))),
                )
            )
        return users

    def _newsletter_owner(self) -> SimulatedMailbox:
        domain = self.config.domain
        label = domain.split(".")[0].replace("-", " ").title()
        return SimulatedMailbox(
            address=f"newsletter@{domain}",
            display_name=f"{label} Newsletter",
            department="Marketing",
            vip=False,
            daily_messages=0,
            external_share=1.0,
            office_ip="203.0.113.40",
            home_ip="203.0.113.40",
            user_agent=USER_AGENTS[0],
            mobile_agent=MOBILE_AGENTS[0],
            contacts=(),
        )

    # ------------------------------------------------------------------------------------------- baseline

    def _days(self) -> Iterator[tuple[int, bool]]:
        """Each local day overlapping the period: (UTC epoch of its local midnight, whether it is Mon-Fri)."""
        offset = self.tenant.offset
        day = (self.start + offset) // DAY_SECONDS * DAY_SECONDS  # local midnight, counted as a local epoch
        while day - offset < self.end:
            yield day - offset, (day // DAY_SECONDS + 3) % 7 < 5
            day += DAY_SECONDS

    def _time_in_day(self, midnight: int, working: bool) -> int:
        rng = self.rng
        cumulative = _WORKDAY_CUM if working else _WEEKEND_CUM
        hour = bisect.bisect(cumulative, rng.random() * cumulative[-1])
        return midnight + hour * HOUR_SECONDS + rng.randrange(HOUR_SECONDS)

    def _baseline(self, users: list[SimulatedMailbox]) -> None:
        rng, tenant, emit = self.rng, self.tenant, self.emit
        weekend_chance = _WEEKEND_SENDING[0]
        for mailbox in users:
            # Every account's sign-in history starts with the period (a phone's token refresh), so with 8 days
            # or more the detectors' 7-day learning period is over before the last day's attacks.
            at = self.start + rng.randint(MINUTE, 20 * MINUTE)
            emit(at, tenant.home_sign_in(mailbox, at))
        for midnight, working in self._days():
            for mailbox in users:
                if working:
                    count = max(0, round(rng.gauss(mailbox.daily_messages, mailbox.daily_messages * 0.25)))
                else:
                    count = rng.randint(1, 4) if rng.random() < weekend_chance else 0  # mean 2.5
                for _ in range(count):
                    at = self._time_in_day(midnight, working)
                    emit(at, tenant.baseline_message(mailbox, at))
                for at in self._sign_in_times(midnight, working):
                    if rng.random() < 0.02:  # a mistyped password, retried a minute or two later
                        failed = at - rng.randint(40, 180)
                        emit(failed, tenant.home_sign_in(mailbox, failed, success=False))
                    emit(at, tenant.home_sign_in(mailbox, at))

    def _sign_in_times(self, midnight: int, working: bool) -> list[int]:
        """Morning browser sign-in on working days, often the phone, sometimes again after lunch."""
        rng = self.rng
        times = []
        if working:
            times.append(midnight + 7 * HOUR_SECONDS + rng.randrange(2 * HOUR_SECONDS))
            if rng.random() < 0.55:
                times.append(midnight + rng.randrange(18 * HOUR_SECONDS, 22 * HOUR_SECONDS))
            if rng.random() < 0.1:
                times.append(midnight + rng.randrange(13 * HOUR_SECONDS, 15 * HOUR_SECONDS))
        elif rng.random() < 0.25:
            times.append(midnight + rng.randrange(9 * HOUR_SECONDS, 21 * HOUR_SECONDS))
        return times

    def _newsletter(self, owner: SimulatedMailbox) -> None:
        """Every weekday: 250-400 external subscribers, batches of 50 within 20-45 minutes, verdict clean."""
        rng, tenant, domain = self.rng, self.tenant, self.config.domain
        subscribers = list(dict.fromkeys(_external_address(rng) for _ in range(1_500)))
        for midnight, working in self._days():
            if not working:
                continue
            begin = midnight + 10 * HOUR_SECONDS + rng.randint(-45 * MINUTE, 45 * MINUTE)
            signed_in = begin - rng.randint(5 * MINUTE, 25 * MINUTE)
            self.emit(signed_in, tenant.home_sign_in(owner, signed_in))
            audience = rng.sample(subscribers, rng.randint(250, 400))
            batches = [audience[i : i + 50] for i in range(0, len(audience), 50)]
            spread = rng.randint(20 * MINUTE, 45 * MINUTE)
            body = _hex(rng, 128)
            subject = f"{owner.display_name} - {_iso(midnight + tenant.offset)[:10]}"
            urls = (f"https://news.{domain}/{_iso(midnight + tenant.offset)[:10]}",)
            for n, batch in enumerate(batches):
                at = begin + spread * n // (len(batches) - 1)
                message = tenant.message(
                    owner.address,
                    batch,
                    subject,
                    client_ip=owner.office_ip,
                    urls=urls,
                    body_hash=body,
                    size=180_000,
                )
                self.emit(at, message)
            for _ in range(rng.randint(0, 3)):  # the odd note to a colleague
                at = self._time_in_day(midnight, True)
                to = [tenant.colleague(owner)]
                self.emit(
                    at, tenant.message(owner.address, to, "Newsletter schedule", client_ip=owner.office_ip)
                )

    def _benign_rules(self, users: list[SimulatedMailbox]) -> None:
        """One user in forty files newsletters or notifications into a folder (nothing forwarded, deleted or
        marked read); a quarter of them switch the rule off later."""
        rng = self.rng
        for mailbox in rng.sample(users, max(1, len(users) // 40)):
            name, conditions, folder = rng.choice(BENIGN_RULES)
            rule_id = self.next_rule_id()
            at = rng.randrange(self.start + MINUTE, self.end - HOUR_SECONDS)
            state = {"name": name, "conditions": conditions, "actions": {"move_to_folder": folder}}
            self.emit(at, _inbox_rule(mailbox.address, "created", rule_id, {**state, "enabled": True}))
            if rng.random() < 0.25:  # switched off later
                at = rng.randrange(at + MINUTE, self.end)
                self.emit(at, _inbox_rule(mailbox.address, "updated", rule_id, {**state, "enabled": False}))

    def _assistant_delegations(self, users: list[SimulatedMailbox]) -> None:
        """Executives let an assistant send on their behalf (send-on-behalf raises no alert)."""
        rng = self.rng
        assistants = [m for m in users if not m.vip and m.department in ("Executive", "HR")]
        assistants = assistants or [m for m in users if not m.vip]
        for executive in (m for m in users if m.vip and m.department == "Executive"):
            if assistants:
                at = rng.randrange(self.start + MINUTE, self.end - HOUR_SECONDS)
                delegate = rng.choice(assistants).address
                self.emit(at, _delegation(executive.address, delegate, "send_on_behalf"))

    # ------------------------------------------------------------------------------------------- ordering

    def _ordered(self, mailboxes: Sequence[SimulatedMailbox]) -> list[Event]:
        """Mailbox events first (at the period's start), then the rest by time; ids in stream order."""
        self.raw.sort(key=itemgetter(0))  # stable: simultaneous events keep their generation order
        prefix = f"sim-{self.config.seed}-"
        start = _iso(self.start)
        events: list[Event] = []
        for n, mailbox in enumerate(mailboxes, start=1):
            event: Event = {
                "type": "mailbox",
                "id": f"{prefix}{n}",
                "time": start,
                "address": mailbox.address,
            }
            event.update(display_name=mailbox.display_name, department=mailbox.department, vip=mailbox.vip)
            events.append(event)
        last_epoch, last_iso = -1, ""
        for n, (epoch, event) in enumerate(self.raw, start=len(events) + 1):
            if epoch != last_epoch:
                last_epoch, last_iso = epoch, _iso(epoch)
            event["id"] = f"{prefix}{n}"
            event["time"] = last_iso
            events.append(event)
        return events


class _Attack:
    """One compromised account on the period's last day: the attacker's origin and the scenario's events."""

    def __init__(self, generator: _Generator, victim: SimulatedMailbox, benign: list[SimulatedMailbox]):
        self.generator, self.victim, self.benign = generator, victim, benign
        rng = self.rng = generator.rng
        self.address = victim.address
        self.country = rng.choice(sorted(ATTACKER_COUNTRIES))
        octets = ATTACKER_COUNTRIES[self.country]
        self.ip = f"{rng.choice(octets)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        self.agent = rng.choice(USER_AGENTS)
        self.day = generator.end - DAY_SECONDS  # the last day starts here

    def run(self, scenario: Scenario | EvasiveScenario) -> CompromisedMailbox:
        builders = {
            Scenario.OUTBOUND_PHISH: self.outbound_phish,
            Scenario.SLOW_SPAM: self.slow_spam,
            Scenario.BEC_FORWARDING: self.bec_forwarding,
            Scenario.DELEGATION_IMAP: self.delegation_imap,
        }
        if scenario in builders:
            first, details = builders[Scenario(scenario)]()
        else:  # issue 21's attacks live in their own module
            from . import scenarios_evasive

            first, details = scenarios_evasive.build(self, scenarios_evasive.EvasiveScenario(scenario))
        return CompromisedMailbox(
            address=self.address,
            scenario=scenario,
            starts_at=datetime.fromtimestamp(first, UTC),
            attacker_country=self.country,
            attacker_ip=self.ip,
            details=details,
        )

    def sign_in(self, at: int, app: str = "browser", *, success: bool = True) -> None:
        agent = IMAP_AGENT if app == "imap" else self.agent
        self.generator.emit(at, _sign_in(self.address, self.ip, self.country, app, agent, success=success))

    def send(self, at: int, recipients: list[str], subject: str, **fields: Any) -> None:
        message = self.generator.tenant.message(
            self.address, recipients, subject, client_ip=self.ip, **fields
        )
        self.generator.emit(at, message)

    def _campaign(
        self,
        start: tuple[int, int],
        lead: tuple[int, int],
        subjects: Sequence[str],
        link: tuple[Sequence[str], str, int],
    ) -> tuple[int, int, str, str, str]:
        """A sending campaign's start (in ``start`` seconds into the day), the attacker's sign-in ``lead``
        seconds before it, its subject, its link (a host, a path, a random token of that many hex digits) and
        its body hash. Returns ``(start, sign_in, subject, url, body_hash)``."""
        rng = self.rng
        begin = self.day + rng.randrange(*start)
        first = begin - rng.randint(*lead)
        self.sign_in(first)
        subject = rng.choice(subjects)
        hosts, path, token = link
        url = f"https://{rng.choice(hosts)}/{path}{_hex(rng, token)}"
        return begin, first, subject, url, _hex(rng, 128)

    def outbound_phish(self) -> tuple[int, dict[str, Any]]:
        """One lure, 10 external recipients a copy, 55-70 copies in 50 minutes: > 500 external in an hour."""
        rng = self.rng
        burst, first, subject, url, body = self._campaign(
            (2 * HOUR_SECONDS, 18 * HOUR_SECONDS),
            (10 * MINUTE, 40 * MINUTE),
            PHISH_SUBJECTS,
            (PHISH_HOSTS, "auth?session=", 48),
        )
        domains = PARTNER_DOMAINS + CONSUMER_DOMAINS
        times = sorted(burst + rng.randrange(50 * MINUTE) for _ in range(rng.randint(55, 70)))
        for at in times:
            recipients: list[str] = []
            while len(recipients) < 10:
                guess = f"{rng.choice(FIRST_NAMES).lower()}{rng.randrange(1000)}@{rng.choice(domains)}"
                candidate = _external_address(rng) if rng.random() < 0.5 else guess
                if candidate not in recipients:
                    recipients.append(candidate)
            self.send(at, recipients, subject, verdict="phish", urls=(url,), body_hash=body, size=48_000)
        return first, {"subject": subject, "url": url, "messages": len(times), "recipients": 10 * len(times),
                       "burst_start": _iso(times[0]), "burst_end": _iso(times[-1])}  # fmt: skip

    def slow_spam(self) -> tuple[int, dict[str, Any]]:
        """9-11 spam messages of ~8 recipients (one internal) every hour for 15 hours: ~80 an hour, ~1,200."""
        rng, tenant = self.rng, self.generator.tenant
        begin, first, subject, url, body = self._campaign(
            (90 * MINUTE, 7 * HOUR_SECONDS),
            (20 * MINUTE, 60 * MINUTE),
            SPAM_SUBJECTS,
            (SPAM_HOSTS, "?ref=", 32),
        )
        total = 0
        for hour in range(15):
            for _ in range(rng.randint(9, 11)):
                at = begin + hour * HOUR_SECONDS + rng.randrange(HOUR_SECONDS)
                recipients = [_external_address(rng) for _ in range(7)] + [tenant.colleague(self.victim)]
                recipients = [r for r in dict.fromkeys(recipients) if r != self.address]
                total += len(recipients)
                self.send(at, recipients, subject, verdict="spam", urls=(url,), body_hash=body, size=22_000)
        return first, {"subject": subject, "url": url, "recipients": total, "run_start": _iso(begin),
                       "run_end": _iso(begin + 15 * HOUR_SECONDS)}  # fmt: skip

    def bec_forwarding(self) -> tuple[int, dict[str, Any]]:
        """New-country sign-in, a rule hiding finance mail in RSS Feeds, forwarding out, a fake invoice."""
        rng, emit = self.rng, self.generator.emit
        first = self.day + rng.randrange(HOUR_SECONDS, 19 * HOUR_SECONDS)
        self.sign_in(first)
        rule_id = self.generator.next_rule_id()
        rule_at = first + rng.randint(5 * MINUTE, 20 * MINUTE)
        rule = {
            "name": rng.choice((".", "..", "Archive", "ok")),
            "conditions": {"subject_contains": ["invoice", "payment"], "body_contains": list(FINANCE_WORDS)},
            "actions": {"move_to_folder": "RSS Feeds", "mark_as_read": True},
            "enabled": True,
        }
        emit(rule_at, _inbox_rule(self.address, "created", rule_id, rule))
        local = self.address.split("@")[0].replace(".", "")
        forward_to = f"{local}{rng.randrange(10, 100)}@{rng.choice(ATTACKER_DOMAINS)}"
        forward_at = rule_at + rng.randint(3 * MINUTE, 20 * MINUTE)
        emit(
            forward_at,
            {"type": "forwarding", "mailbox": self.address, "forward_to": forward_to, "keep_copy": True},
        )
        partners = [c for c in self.victim.contacts if c.split("@")[1] in PARTNER_DOMAINS]
        lure_at = forward_at + rng.randint(30 * MINUTE, 3 * HOUR_SECONDS)
        self.send(
            lure_at, (partners or list(self.victim.contacts))[:2], "Updated bank details for your invoice"
        )
        return first, {"rule_id": rule_id, "rule_name": rule["name"], "rule_at": _iso(rule_at),
                       "forward_to": forward_to, "forwarding_at": _iso(forward_at)}  # fmt: skip

    def delegation_imap(self) -> tuple[int, dict[str, Any]]:
        """Failed passwords then success from a new country, full access for a colleague, IMAP sign-ins."""
        rng = self.rng
        first = self.day + rng.randrange(HOUR_SECONDS, 17 * HOUR_SECONDS)
        failures = rng.randint(2, 4)
        for n in range(failures):
            self.sign_in(first + n * rng.randint(20, 90), success=False)
        signed_in = first + failures * 100 + rng.randint(30, 300)
        self.sign_in(signed_in)
        delegate = rng.choice(self.benign).address
        delegated_at = signed_in + rng.randint(5 * MINUTE, 15 * MINUTE)
        self.generator.emit(delegated_at, _delegation(self.address, delegate, "full_access"))
        imap = sorted(
            delegated_at + rng.randint(15 * MINUTE, 5 * HOUR_SECONDS) for _ in range(rng.randint(4, 8))
        )
        for at in imap:
            self.sign_in(at, "imap")
        return first, {"delegate": delegate, "access": "full_access", "delegation_at": _iso(delegated_at),
                       "imap_sign_ins": len(imap)}  # fmt: skip


class LiveFeed:
    """Fresh baseline events for a simulated tenant at real time, for a live demo.

    ``between(since, until)`` draws the mail and sign-ins the tenant's users would produce in that span (a
    Poisson process at the baseline's rate for the local hour and day), timed inside it. Ids are
    ``sim-<seed>-live-<session>-<n>``: a feed with a new session (the start time, say) never reuses an id.
    """

    def __init__(self, simulation: Simulation, *, session: int) -> None:
        config = simulation.config
        self.rng = random.Random(f"{config.seed}-live-{session}")
        owner = simulation.ground_truth.newsletter_owner
        self.tenant = _Tenant(config, self.rng, [m for m in simulation.mailboxes if m.address != owner])
        self.prefix = f"sim-{config.seed}-live-{session}-"
        self.count = 0
        self.sender_cum = tuple(accumulate(m.daily_messages for m in self.tenant.users))

    def rates(self, epoch: int) -> tuple[float, float]:
        """Messages and sign-ins per second across the tenant at ``epoch``."""
        hour, working = self.tenant.local_hour(epoch)
        weights, cumulative = (_WORKDAY_HOURS, _WORKDAY_CUM) if working else (_WEEKEND_HOURS, _WEEKEND_CUM)
        share = weights[hour] / cumulative[-1]  # the share of the day's mail sent in this hour
        users = len(self.tenant.users)
        daily = self.sender_cum[-1] if working else _WEEKEND_SENDING[0] * _WEEKEND_SENDING[1] * users
        sign_ins = users * (1.7 if working else 0.25)
        return daily * share / HOUR_SECONDS, sign_ins * share / HOUR_SECONDS

    def between(self, since: datetime, until: datetime) -> list[Event]:
        """The events of ``(since, until]`` in time order, with ids and times filled in."""
        rng, tenant = self.rng, self.tenant
        start, stop = since.timestamp(), until.timestamp()
        drawn: list[tuple[float, Event]] = []
        for kind, rate in zip(("message", "sign_in"), self.rates(int(stop)), strict=True):
            at = start + rng.expovariate(rate) if rate > 0 else math.inf
            while at <= stop:
                mailbox = tenant.users[bisect.bisect(self.sender_cum, rng.random() * self.sender_cum[-1])]
                if kind == "message":
                    drawn.append((at, tenant.baseline_message(mailbox, int(at))))
                else:
                    drawn.append((at, tenant.home_sign_in(mailbox, int(at))))
                at += rng.expovariate(rate)
        drawn.sort(key=itemgetter(0))
        for at, event in drawn:
            self.count += 1
            event["id"] = f"{self.prefix}{self.count}"
            event["time"] = datetime.fromtimestamp(at, UTC).isoformat()  # sub-second: stays inside the span
        return [event for _, event in drawn]
