"""Attacks shaped to stay under every threshold, and benign users who look like them (issue 21), for the
tenant simulator. Off by default (the demo's mix does not use them); ``SimulationConfig(evasive=True)`` or
``simulate_tenant --evasive`` adds them.

With the flag, the compromised users are assigned round-robin over the simulator's four scenarios and then
these six, all on the period's last day:

- ``evasive_lure``: a sign-in from a new country, then within the hour ~300 recipients at 50-70 domains the
  user never wrote to, verdict clean, a subject about bank details and the link on a lookalike of the
  tenant's domain: under every sending limit;
- ``hiding_rule``: an inbox rule deleting mail about invoices and payments, and nothing else unusual;
- ``lookalike_forwarding``: mailbox forwarding to the user's name at a lookalike of the tenant's domain;
- ``unusual_client_phish``: a sign-in from the home country with a client the user never used, then an
  internal phish (verdict phish, a lookalike link) to 40-60 colleagues;
- ``night_imap_rule``: an IMAP sign-in at night and a rule forwarding all mail outside, created over it;
- ``internal_spray``: spam to hundreds of colleagues in an hour, under the internal limit.

And benign look-alikes (one of each from 500 users on, one more per 500), named in the ground truth:

- ``invoice_clerk``: a Finance user files mail about invoices into an "Invoices" folder;
- ``traveller``: a user abroad for four days (browser and phone from another home country), mailing as usual;
- ``weekly_marketer``: a Marketing user mails the same 80 external recipients at 30 domains every week, in
  two batches an hour apart (the first week falls in the detectors' learning period);
- ``all_staff``: an executive announces payroll and bank-holiday dates to up to 90 colleagues with a link on
  the tenant's own intranet subdomain.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .simulated_tenant import ATTACKER_DOMAINS, SimulatedMailbox, _inbox_rule, _sign_in

if TYPE_CHECKING:  # the simulator imports this module lazily; these are for the type checker only
    from .simulator import _Attack, _Generator

MINUTE, HOUR, DAY = 60, 3_600, 86_400


class EvasiveScenario(StrEnum):
    EVASIVE_LURE = "evasive_lure"
    HIDING_RULE = "hiding_rule"
    LOOKALIKE_FORWARDING = "lookalike_forwarding"
    UNUSUAL_CLIENT_PHISH = "unusual_client_phish"
    NIGHT_IMAP_RULE = "night_imap_rule"
    INTERNAL_SPRAY = "internal_spray"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS = {
    EvasiveScenario.EVASIVE_LURE: "new-country sign-in, then a clean lure to ~300 first-contact recipients",
    EvasiveScenario.HIDING_RULE: "a rule deleting finance mail, nothing else unusual",
    EvasiveScenario.LOOKALIKE_FORWARDING: "mailbox forwarding to a lookalike of the tenant's domain",
    EvasiveScenario.UNUSUAL_CLIENT_PHISH: "sign-in with an unusual client, then an internal phish",
    EvasiveScenario.NIGHT_IMAP_RULE: "IMAP sign-in at night, a forward-all rule created over IMAP",
    EvasiveScenario.INTERNAL_SPRAY: "spam to hundreds of colleagues, under the internal limit",
}
BENIGN_KINDS = ("invoice_clerk", "traveller", "weekly_marketer", "all_staff")
NEARBY = ("DE", "ES", "FR", "IE", "NL", "PT")  # a trip that is not impossible travel from a European home
LURE_WORDS = ("ledger", "atlas", "harbor", "summit", "cedar", "vertex", "quill", "orbit", "maple", "prism")


def lookalike_of(domain: str, word: str = "payments") -> str:
    """A domain imitating ``domain``: its name with a word added (``contoso-payments.example``)."""
    name, _, suffix = domain.partition(".")
    return f"{name}-{word}.{suffix}"


def build(attack: _Attack, scenario: EvasiveScenario) -> tuple[int, dict[str, Any]]:
    """The events of one evasive attack on ``attack``'s victim; returns (first event's epoch, details)."""
    return {
        EvasiveScenario.EVASIVE_LURE: _evasive_lure,
        EvasiveScenario.HIDING_RULE: _hiding_rule,
        EvasiveScenario.LOOKALIKE_FORWARDING: _lookalike_forwarding,
        EvasiveScenario.UNUSUAL_CLIENT_PHISH: _unusual_client_phish,
        EvasiveScenario.NIGHT_IMAP_RULE: _night_imap_rule,
        EvasiveScenario.INTERNAL_SPRAY: _internal_spray,
    }[scenario](attack)


def _evasive_lure(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng, domain = attack.rng, attack.generator.config.domain
    first = attack.day + rng.randrange(2 * HOUR, 16 * HOUR)
    attack.sign_in(first)
    domains = [f"{rng.choice(LURE_WORDS)}-{rng.randrange(10**6)}.example" for _ in range(rng.randint(50, 70))]
    url = f"https://{lookalike_of(domain)}/remittance?id={rng.getrandbits(32):08x}"
    subject = "Updated bank details for your next payment"
    at = first + rng.randint(5 * MINUTE, 15 * MINUTE)
    total = 0
    for n in range(30):
        recipients = [f"ap{rng.randrange(1000)}@{rng.choice(domains)}" for _ in range(10)]
        recipients = list(dict.fromkeys(recipients))
        total += len(recipients)
        attack.send(at + n * 90, recipients, subject, urls=(url,), verdict="clean", size=30_000)
    return first, {"subject": subject, "url": url, "recipients": total, "domains": len(set(domains))}


def _hiding_rule(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng = attack.rng
    at = attack.day + rng.randrange(HOUR, 20 * HOUR)
    rule_id = attack.generator.next_rule_id()
    state = {
        "name": "Clean up",
        "conditions": {"subject_contains": ["invoice", "payment"]},
        "actions": {"delete": True},
        "enabled": True,
    }
    attack.generator.emit(at, _inbox_rule(attack.address, "created", rule_id, state))
    return at, {"rule_id": rule_id, "rule_at": at}


def _lookalike_forwarding(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng, domain = attack.rng, attack.generator.config.domain
    at = attack.day + rng.randrange(HOUR, 20 * HOUR)
    forward_to = f"{attack.address.split('@')[0]}@{lookalike_of(domain, 'mail')}"
    event = {"type": "forwarding", "mailbox": attack.address, "forward_to": forward_to, "keep_copy": True}
    attack.generator.emit(at, event)
    return at, {"forward_to": forward_to}


def _unusual_client_phish(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng, generator = attack.rng, attack.generator
    first = attack.day + rng.randrange(2 * HOUR, 16 * HOUR)
    home = generator.config.home_country
    generator.emit(first, _sign_in(attack.address, attack.ip, home, "other", "python-requests/2.31"))
    colleagues = list(dict.fromkeys(generator.tenant.colleague(attack.victim) for _ in range(80)))
    colleagues = [c for c in colleagues if c != attack.address][: rng.randint(40, 60)]
    url = f"https://{lookalike_of(generator.config.domain, 'sso')}/login"
    for n in range(0, len(colleagues), 5):
        at = first + 10 * MINUTE + n * MINUTE
        attack.send(at, colleagues[n : n + 5], "Action required: re-confirm your payroll account",
                    verdict="phish", urls=(url,), body_hash="sim-internal-phish")  # fmt: skip
    return first, {"recipients": len(colleagues), "url": url}


def _night_imap_rule(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng, generator = attack.rng, attack.generator
    night = attack.day + 2 * HOUR - generator.tenant.offset % DAY + rng.randrange(HOUR)
    night = night if night > attack.day else night + DAY
    attack.sign_in(night, "imap")
    rule_id = generator.next_rule_id()
    forward_to = f"archive{rng.randrange(100)}@{rng.choice(ATTACKER_DOMAINS)}"
    state = {"name": "sync", "conditions": {}, "actions": {"forward_to": [forward_to]}, "enabled": True}
    generator.emit(night + 3 * MINUTE, _inbox_rule(attack.address, "created", rule_id, state))
    return night, {"rule_id": rule_id, "forward_to": forward_to}


def _internal_spray(attack: _Attack) -> tuple[int, dict[str, Any]]:
    rng, generator = attack.rng, attack.generator
    first = attack.day + rng.randrange(2 * HOUR, 16 * HOUR)
    pool = [a for a in generator.tenant.addresses if a != attack.address]
    total = 0
    fields = {"urls": ("https://gift-cards-now.example/claim",), "body_hash": "sim-internal-spray"}
    for n in range(40):
        recipients = rng.sample(pool, min(len(pool), 15))
        total += len(recipients)
        attack.send(first + n * 80, recipients, "You have won a company gift card", verdict="spam", **fields)
    return first, {"recipients": total}


def benign_lookalikes(generator: _Generator, benign: list[SimulatedMailbox]) -> dict[str, list[str]]:
    """Add the benign look-alikes' events (module docstring); returns their addresses by kind."""
    rng, tenant, config = generator.rng, generator.tenant, generator.config
    count = max(1, len(benign) // 500)
    chosen = rng.sample(benign, min(len(benign), 4 * count))
    found: dict[str, list[str]] = {kind: [] for kind in BENIGN_KINDS}
    for n, user in enumerate(chosen):
        kind = BENIGN_KINDS[n % len(BENIGN_KINDS)]
        found[kind].append(user.address)
        if kind == "invoice_clerk":
            state = {"name": "Invoices", "conditions": {"subject_contains": ["invoice"]},
                     "actions": {"move_to_folder": "Invoices"}, "enabled": True}  # fmt: skip
            at = rng.randrange(generator.start + HOUR, generator.end - HOUR)
            generator.emit(at, _inbox_rule(user.address, "created", generator.next_rule_id(), state))
        elif kind == "traveller":
            country = rng.choice(sorted(set(NEARBY) - {config.home_country}))
            leave = generator.end - rng.randint(5, 9) * DAY
            back = leave + 4 * DAY
            generator.raw = [  # abroad, the user signs in from there only
                (at, e) for at, e in generator.raw
                if not (leave <= at < back and e["type"] == "sign_in" and e["user"] == user.address)
            ]  # fmt: skip
            for day in range(4):
                at = leave + day * DAY + 8 * HOUR + rng.randrange(HOUR)
                generator.emit(at, _sign_in(user.address, "192.0.2.77", country, "browser", user.user_agent))
                generator.emit(at + 11 * HOUR, _sign_in(user.address, "192.0.2.77", country, "eas",
                                                        user.mobile_agent))  # fmt: skip
        elif kind == "weekly_marketer":
            domains = [f"{rng.choice(LURE_WORDS)}-media{k}.example" for k in range(30)]
            audience = list(dict.fromkeys(f"buyer{k}@{domains[k % 30]}" for k in range(80)))
            week = generator.start + rng.randint(1, 5) * DAY + 10 * HOUR
            urls = (f"https://news.{config.domain}/offers",)
            while week < generator.end:
                for half in range(2):
                    batch = audience[half * 40 : half * 40 + 40]
                    message = tenant.message(
                        user.address,
                        batch,
                        "This week's offers",
                        client_ip=user.office_ip,
                        urls=urls,
                        body_hash=f"w-{week}",
                    )
                    generator.emit(week + half * 70 * MINUTE, message)
                week += 7 * DAY
        else:
            colleagues = [a for a in tenant.addresses if a != user.address][:90]
            at = generator.end - rng.randint(1, 3) * DAY + 9 * HOUR
            generator.emit(at, tenant.message(
                user.address, colleagues, "Payroll dates and bank holidays for next year",
                client_ip=user.office_ip, urls=(f"https://intranet.{config.domain}/payroll",)))  # fmt: skip
    return found
