"""The simulated tenant's people and habits: the tables the simulator draws from, its configuration, the
roster's mailboxes, the builders of single events and of baseline mail and sign-ins (:class:`_Tenant`, shared
by the history generator and the live feed). Split out of :mod:`mailflow.simulator`, which re-exports the
public names; pure like it (no database, clock or global ``random``)."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

Event = dict[str, Any]

DAY_SECONDS = 86_400
HOUR_SECONDS = 3_600
MINUTE = 60


# Home countries, with their standard-time offset from UTC in hours: the working day is shaped in local time.
HOME_COUNTRIES = {"GB": 0, "IE": 0, "PT": 0, "US": -5, "CA": -5, "DE": 1, "FR": 1, "NL": 1, "ES": 1, "AU": 10}
# Countries attackers sign in from, with a few first octets for plausible-looking addresses.
ATTACKER_COUNTRIES: dict[str, tuple[int, ...]] = {
    "BR": (177, 179, 189), "CN": (36, 58, 101), "ID": (110, 114, 182), "NG": (102, 105, 197),
    "RO": (79, 86, 188), "RU": (5, 31, 95), "VN": (14, 113, 171),
}  # fmt: skip
# Department, weight in the head count, share of its users' recipients that are external.
DEPARTMENTS = (
    ("Sales", 20, 0.55), ("Engineering", 24, 0.15), ("Support", 15, 0.45), ("Marketing", 10, 0.40),
    ("Finance", 9, 0.30), ("HR", 7, 0.15), ("Legal", 5, 0.40), ("Executive", 4, 0.35),
)  # fmt: skip

PARTNER_DOMAINS = (
    "fabrikam.example", "northwind.example", "adventure-works.example", "tailspintoys.example",
    "wingtiptoys.example", "litware.example", "woodgrovebank.example", "proseware.example",
    "lucernepublishing.example", "margiestravel.example", "alpineskihouse.example", "cohowinery.example",
    "humongousinsurance.example", "treyresearch.example", "wideworldimporters.example",
    "fourthcoffee.example",
)  # fmt: skip
CONSUMER_DOMAINS = (
    "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "aol.com", "proton.me", "gmx.de",
    "web.de", "mail.com",
)  # fmt: skip
ATTACKER_DOMAINS = ("protonmail-secure.example", "mailbox-relay.example", "fastmail-drop.example")

FIRST_NAMES = (
    "Aisha", "Alex", "Amelia", "Ana", "Andrew", "Anna", "Arjun", "Ben", "Carlos", "Charlotte", "Chen",
    "Chloe", "Daniel", "David", "Diego", "Elena", "Emily", "Emma", "Ethan", "Fatima", "Freya", "Gabriel",
    "George", "Grace", "Hannah", "Harry", "Isabel", "Isla", "Jack", "James", "Jamal", "Jana", "Jin", "Joanna",
    "John", "Jonas", "Julia", "Karim", "Kate", "Laura", "Leo", "Liam", "Lucas", "Lucy", "Maria", "Mark",
    "Maya", "Mei", "Michael", "Mohammed", "Nadia", "Noah", "Nina", "Oliver", "Olivia", "Omar", "Oscar",
    "Priya", "Rachel", "Rahul", "Rosa", "Ryan", "Samuel", "Sara", "Sean", "Sofia", "Sophie", "Tariq",
    "Thomas", "Tom", "Victoria", "William", "Yara", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Ahmed", "Ali", "Anderson", "Baker", "Bennett", "Brown", "Campbell", "Carter", "Chen", "Clarke",
    "Cooper", "Davies", "Diaz", "Evans", "Fischer", "Garcia", "Green", "Hall", "Harris", "Hughes", "Ivanova",
    "Jackson", "Johnson", "Jones", "Kaur", "Khan", "Kim", "King", "Kowalski", "Lee", "Lewis", "Lopez",
    "Martin", "Martinez", "Mitchell", "Moore", "Morgan", "Murphy", "Nguyen", "Novak", "O'Brien", "Okafor",
    "Patel", "Perez", "Phillips", "Roberts", "Robinson", "Rossi", "Santos", "Schmidt", "Scott", "Shah",
    "Singh", "Smith", "Taylor", "Thomas", "Thompson", "Turner", "Walker", "Wang", "Ward", "Watson", "White",
    "Williams", "Wilson", "Wood", "Wright", "Young", "Zhang",
)  # fmt: skip

GENERAL_SUBJECTS = (
    "Quick question", "Meeting notes", "Follow-up from today's call", "Agenda for Thursday", "Weekly update",
    "Can we move our 1:1?", "Draft for review", "Slides for tomorrow", "Lunch on Friday?", "Status update",
    "Action items", "Updated timeline", "Feedback on the proposal", "Out of office next week",
    "Document you asked for", "Introductions", "Project kick-off", "Thanks!", "Schedule for next week",
)  # fmt: skip
DEPARTMENT_SUBJECTS = {
    "Sales": ("Quote for the renewal", "Pricing proposal", "Pipeline review", "Demo follow-up", "Order form"),
    "Engineering": ("Release notes", "Incident review", "Design doc comments", "Build failing", "RFC"),
    "Support": ("Your support case", "Ticket escalation", "Case update", "Workaround for the issue"),
    "Marketing": ("Campaign brief", "Webinar registrations", "Brand guidelines", "Event logistics"),
    "Finance": ("Invoice for March", "Payment run", "Budget variance", "Expense approval", "PO request"),
    "HR": ("Interview schedule", "Onboarding checklist", "Benefits enrolment", "Policy update"),
    "Legal": ("Contract redlines", "NDA for signature", "Terms review", "Compliance question"),
    "Executive": ("Board pack", "Quarterly results", "Strategy offsite", "All-hands agenda"),
}
BENIGN_URLS = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting", "https://docs.google.com/document/d/1x2y3z/edit",
    "https://github.com/contoso/platform/pull/482", "https://zoom.us/j/5551234567",
)  # fmt: skip
PHISH_SUBJECTS = (
    "Action required: your password expires today", "You have 3 undelivered messages - verify your mailbox",
    "Shared document: Q4 Remittance Advice.pdf", "DocuSign: please review and sign the updated agreement",
)  # fmt: skip
PHISH_HOSTS = ("login-m365-verify.example", "secure-docshare.example", "auth-mailbox-update.example")
SPAM_SUBJECTS = (
    "80% off premium watches",
    "Earn $5,000 a week from home",
    "Your crypto wallet bonus is waiting",
)
SPAM_HOSTS = ("cheap-deals-now.example", "crypto-bonus.example", "best-pharma.example")
FINANCE_WORDS = ("invoice", "payment", "wire", "bank")
BENIGN_RULES = (
    ("Newsletters", {"from": ["newsletter@fabrikam.example", "news@northwind.example"]}, "Newsletters"),
    ("Jira notifications", {"subject_contains": ["[JIRA]"]}, "Jira"),
    ("Vendor updates", {"from": ["updates@litware.example"]}, "Vendors"),
    ("Build alerts", {"subject_contains": ["[CI]", "build failed"]}, "CI"),
)

_CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
USER_AGENTS = (
    f"{_CHROME} Chrome/124.0 Safari/537.36",
    f"{_CHROME} Chrome/124.0 Safari/537.36 Edg/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
MOBILE_AGENTS = ("Outlook-iOS/2.0", "Outlook-Android/2.0", "iOS/17.4 Mail", "Android-Mail/2024.03")
IMAP_AGENT = "python-imaplib/3.11"

# Relative weight of each local hour (index = hour) for a message on a working day and on a weekend day.
_WORKDAY_HOURS = (0, 0, 0, 0, 0, 0, 0.04, 0.25, 0.8, 1.0, 1.1, 1.0, 0.6, 0.8, 1.0, 1.0, 0.9, 0.6, 0.22,
                  0.14, 0.1, 0.07, 0.03, 0.01)  # fmt: skip
_WEEKEND_HOURS = (0, 0, 0, 0, 0, 0, 0, 0, 0.2, 0.5, 0.8, 0.8, 0.6, 0.6, 0.7, 0.7, 0.6, 0.6, 0.5, 0.5, 0.4,
                  0.3, 0.1, 0)  # fmt: skip
_WORKDAY_CUM = tuple(accumulate(_WORKDAY_HOURS))
_WEEKEND_CUM = tuple(accumulate(_WEEKEND_HOURS))
_WEEKEND_SENDING = (0.12, 2.5)  # chance that a user sends on a weekend day, and the mean count then


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``end`` is explicit (no wall clock here); the period is the ``days`` before it.

    ``compromised`` may be 0 to ``mailboxes - 2`` (a delegation needs a benign delegate). ``mailboxes`` counts
    the users; the newsletter owner is one more mailbox.
    """

    end: datetime
    mailboxes: int = 200
    days: int = 8
    compromised: int = 4
    seed: int = 1
    domain: str = "contoso.example"
    home_country: str = "GB"
    # Issue 21's attacks under the thresholds and benign look-alikes (mailflow.scenarios_evasive)
    evasive: bool = False

    def __post_init__(self) -> None:
        if self.end.utcoffset() is None:
            raise ValueError("end must be an aware datetime (with a UTC offset).")
        if self.mailboxes < 2:
            raise ValueError("mailboxes must be at least 2.")
        if not 1 <= self.days <= 366:
            raise ValueError("days must be between 1 and 366.")
        if not 0 <= self.compromised <= self.mailboxes - 2:
            raise ValueError(f"compromised must be between 0 and mailboxes - 2 ({self.mailboxes - 2}).")
        if self.seed < 0:
            raise ValueError("seed must be zero or positive.")
        domain = self.domain.strip().lower()
        labels = domain.split(".")
        if len(labels) < 2 or not all(label and label.replace("-", "").isalnum() for label in labels):
            raise ValueError(f"{self.domain!r} is not a domain name.")
        if self.home_country.upper() not in HOME_COUNTRIES:
            raise ValueError(f"home_country must be one of {', '.join(sorted(HOME_COUNTRIES))}.")
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "home_country", self.home_country.upper())
        object.__setattr__(self, "end", self.end.astimezone(UTC).replace(microsecond=0))

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class SimulatedMailbox:
    """One mailbox of the simulated tenant and the habits its baseline is drawn from."""

    address: str
    display_name: str
    department: str
    vip: bool
    daily_messages: float  # mean messages per working day
    external_share: float  # share of recipients outside the tenant
    office_ip: str
    home_ip: str
    user_agent: str
    mobile_agent: str
    contacts: tuple[str, ...]  # external correspondents


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _external_address(rng: random.Random) -> str:
    domain = rng.choice(PARTNER_DOMAINS) if rng.random() < 0.7 else rng.choice(CONSUMER_DOMAINS)
    first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower().replace("'", "")
    local = f"{first}.{last}" if rng.random() < 0.7 else f"{first[0]}{last}{rng.randrange(10, 100)}"
    return f"{local}@{domain}"


def _sign_in(user: str, ip: str, country: str, app: str, agent: str, *, success: bool = True) -> Event:
    event = {"type": "sign_in", "user": user, "ip": ip, "country": country, "client_app": app}
    return event | {"result": "success" if success else "failure", "user_agent": agent}


def _inbox_rule(mailbox: str, operation: str, rule_id: str, state: dict[str, Any]) -> Event:
    # A deep copy: events never share containers with each other or with the tables above.
    event = {"type": "inbox_rule", "mailbox": mailbox, "operation": operation, "rule_id": rule_id}
    return event | copy.deepcopy(state)


def _delegation(mailbox: str, delegate: str, access: str, operation: str = "added") -> Event:
    event = {"type": "delegation", "mailbox": mailbox, "delegate": delegate}
    return event | {"access": access, "operation": operation}


class _Tenant:
    """The roster and the builders of baseline events, shared by the history generator and the live feed."""

    def __init__(self, config: SimulationConfig, rng: random.Random, users: Sequence[SimulatedMailbox]):
        self.config = config
        self.rng = rng
        self.users = tuple(users)
        self.addresses = tuple(m.address for m in self.users)
        by_department: dict[str, list[str]] = {}
        for mailbox in self.users:
            by_department.setdefault(mailbox.department, []).append(mailbox.address)
        self.by_department = {name: tuple(addresses) for name, addresses in by_department.items()}
        self.offset = HOME_COUNTRIES[config.home_country] * HOUR_SECONDS

    def local_hour(self, epoch: int) -> tuple[int, bool]:
        """The local hour at ``epoch``, and whether its day is a working day (Mon-Fri)."""
        local = epoch + self.offset
        return (local % DAY_SECONDS) // HOUR_SECONDS, (local // DAY_SECONDS + 3) % 7 < 5  # 1970-01-01: Thu

    def colleague(self, mailbox: SimulatedMailbox) -> str:
        """Another user, most often from the same department."""
        rng = self.rng
        pool = self.by_department.get(mailbox.department, ()) if rng.random() < 0.6 else self.addresses
        return rng.choice(pool or self.addresses)

    def recipients(self, mailbox: SimulatedMailbox) -> list[str]:
        """1-5 recipients (rarely an internal list of 6-12), colleagues or the user's external contacts."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.985:
            count = 1 if roll < 0.45 else 2 if roll < 0.70 else 3 if roll < 0.85 else 4 if roll < 0.94 else 5
            external_share = mailbox.external_share
        else:
            count, external_share = rng.randint(6, 12), 0.0
        chosen: list[str] = []
        for _ in range(count):
            external = rng.random() < external_share
            address = rng.choice(mailbox.contacts) if external else self.colleague(mailbox)
            if address != mailbox.address and address not in chosen:
                chosen.append(address)
        return chosen or [next(a for a in self.addresses if a != mailbox.address)]

    def message(
        self,
        sender: str,
        recipients: list[str],
        subject: str,
        *,
        client_ip: str,
        verdict: str = "clean",
        urls: Sequence[str] = (),
        body_hash: str = "",
        size: int = 0,
    ) -> Event:
        rng = self.rng
        event: Event = {
            "type": "message",
            "sender": sender,
            "recipients": recipients,
            "subject": subject,
            "verdict": verdict,
            "size": size or min(int(rng.lognormvariate(10.3, 0.9)), 25_000_000),
            "client_ip": client_ip,
            "internet_message_id": f"<{_hex(rng, 64)}@{self.config.domain}>",
            "body_hash": body_hash or _hex(rng, 128),
        }
        if urls:
            event["urls"] = list(urls)
        return event

    def baseline_message(self, mailbox: SimulatedMailbox, epoch: int) -> Event:
        """Everyday mail: a department or general subject, now and then a reply, forward or link."""
        rng = self.rng
        roll = rng.random()
        verdict = "spam" if roll < 0.004 else "bulk" if roll < 0.010 else "clean"
        pool = DEPARTMENT_SUBJECTS[mailbox.department] if rng.random() < 0.35 else GENERAL_SUBJECTS
        subject = rng.choice(pool)
        roll = rng.random()
        subject = f"Re: {subject}" if roll < 0.35 else f"FW: {subject}" if roll < 0.42 else subject
        urls = (rng.choice(BENIGN_URLS),) if rng.random() < 0.12 else ()
        hour, working = self.local_hour(epoch)
        ip = mailbox.office_ip if working and 8 <= hour < 18 else mailbox.home_ip
        recipients = self.recipients(mailbox)
        return self.message(mailbox.address, recipients, subject, client_ip=ip, verdict=verdict, urls=urls)

    def home_sign_in(self, mailbox: SimulatedMailbox, epoch: int, *, success: bool = True) -> Event:
        """A browser sign-in from the office in working hours, else the phone (EAS) from home."""
        hour, working = self.local_hour(epoch)
        if working and 7 <= hour < 18:
            ip, app, agent = mailbox.office_ip, "browser", mailbox.user_agent
        else:
            ip, app, agent = mailbox.home_ip, "eas", mailbox.mobile_agent
        return _sign_in(mailbox.address, ip, self.config.home_country, app, agent, success=success)
