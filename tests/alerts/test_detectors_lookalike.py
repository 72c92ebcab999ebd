"""Lookalike domains (issue 21): the matcher at its boundaries, and how a lookalike raises the forwarding and
sending-pattern alerts to high."""

from __future__ import annotations

import pytest
import time_machine

from alerts.detectors.lookalike import (
    ADDED_WORD,
    EXTRA_SUFFIX,
    HOMOGLYPHS,
    MIXED_SCRIPTS,
    OTHER_SUFFIX,
    LookalikeMatcher,
)
from alerts.models import AlertPolicy, Severity
from alerts.services import ensure_default_policies, update_policy

from .builders import HOME, NOW, Telemetry, alerts_of, days_ago, evaluate, today

ALICE = f"alice@{HOME}"


@pytest.fixture
def matcher() -> LookalikeMatcher:
    return LookalikeMatcher([HOME])


def test_a_domain_one_edit_away_is_a_lookalike(matcher):
    found = matcher.domain("contosa.example")
    assert found is not None and found.imitates == HOME and found.how == "edit distance 1"
    assert matcher.domain("cnotoso.example").how == "edit distance 1"  # a transposition is one edit


def test_a_domain_two_edits_away_from_a_short_name_is_not(matcher):
    assert matcher.domain("cantasa.example") is None


def test_the_tenants_own_domain_and_subdomains_are_not_lookalikes(matcher):
    assert matcher.domain(HOME) is None
    assert matcher.domain(f"mail.{HOME}") is None
    assert matcher.url(f"https://intranet.{HOME}/payroll") is None


def test_unrelated_domains_are_not_lookalikes(matcher):
    for domain in (
        "fabrikam.example",
        "gmail.com",
        "northwind.example",
        "proseware.example",
        "cohowinery.example",
    ):
        assert matcher.domain(domain) is None, domain


def test_homoglyphs_mixed_scripts_other_suffixes_and_added_words_are_lookalikes(matcher):
    assert matcher.domain("c0ntoso.example").how == HOMOGLYPHS
    cyrillic = "cоntoso.example".encode("idna").decode()  # a Cyrillic "о", as DNS carries it
    assert cyrillic.startswith("xn--") and matcher.domain(cyrillic).how == MIXED_SCRIPTS
    assert matcher.domain("contoso.co").how == OTHER_SUFFIX
    assert matcher.domain("contoso.example.co").how == EXTRA_SUFFIX
    assert matcher.domain("contoso-billing.com").how == ADDED_WORD


def test_urls_and_addresses_are_read_by_their_domain(matcher):
    assert matcher.url("https://contoso-secure.example/login?next=/").imitates == HOME
    assert matcher.address("ceo@contosa.example").imitates == HOME
    assert matcher.address(f"ceo@{HOME}") is None


@pytest.mark.django_db
class TestAlerts:
    @pytest.fixture(autouse=True)
    def frozen(self):
        with time_machine.travel(NOW, tick=False):
            yield

    def test_forwarding_to_a_lookalike_is_high_even_when_the_policy_says_medium(self, tenant, operator):
        policy = ensure_default_policies(tenant)[AlertPolicy.Kind.FORWARDING]
        update_policy(policy, actor=operator, severity="medium")
        t = Telemetry(tenant)
        t.mailbox(ALICE, at=days_ago(30))
        t.mailbox(f"bob@{HOME}", at=days_ago(30))
        t.forwarding(ALICE, "finance@contoso-payments.example", at=today(10))
        t.forwarding(f"bob@{HOME}", "bob@fabrikam.example", at=today(10))
        evaluate(tenant, t.ingest())
        [alert] = alerts_of(tenant, AlertPolicy.Kind.FORWARDING, ALICE)
        assert alert.severity == Severity.HIGH
        assert alert.details["lookalikes"][0]["imitates"] == HOME
        [plain] = alerts_of(tenant, AlertPolicy.Kind.FORWARDING, f"bob@{HOME}")
        assert plain.severity == Severity.MEDIUM and "lookalikes" not in plain.details

    def test_a_link_on_a_lookalike_raises_a_high_sending_pattern_alert(self, tenant):
        t = Telemetry(tenant)
        t.mailbox(ALICE, at=days_ago(30))
        t._add(
            {
                "type": "message",
                "time": today(11).isoformat(),
                "sender": ALICE,
                "recipients": ["ap@fabrikam.example"],
                "subject": "Updated bank details",
                "verdict": "clean",
                "urls": ["https://c0ntoso.example/pay"],
            },
            None,
            "msg",
        )
        t.message(ALICE, at=today(12), external=2)  # ordinary mail: not evidence
        evaluate(tenant, t.ingest())
        [alert] = alerts_of(tenant, AlertPolicy.Kind.SENDING_PATTERN, ALICE)
        assert alert.severity == Severity.HIGH
        assert alert.evidence_count == 1
        [reason] = alert.details["reasons"]
        assert reason["lookalikes"] == [{"domain": "c0ntoso.example", "imitates": HOME, "how": HOMOGLYPHS}]
