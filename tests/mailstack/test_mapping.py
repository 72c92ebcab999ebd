"""Rspamd exports and Dovecot reports mapped to contract events; Sieve scripts to rules and forwarding."""

from __future__ import annotations

import pytest

from mailstack import sieve
from mailstack.mapping import BadRequest, Skipped, dovecot_sign_in, rspamd_event, verdict_of

# The body metadata_exporter posted for a message submitted by ann through Postfix (recorded on the real
# servers; RECIPES-mailstack.md).
EXPORT = {
    "action": "no action",
    "fuzzy": [],
    "from": "ann@example.test",
    "header_date": ["Thu, 03 Dec 2026 09:00:00 +0000"],
    "header_from": ["Ann <ann@example.test>"],
    "header_subject": ["Quarterly numbers"],
    "header_to": ["bob@example.test"],
    "ip": "127.0.0.1",
    "message_id": "m1@example.test",
    "qid": "4QxQ1B6ZkPz9sT3",
    "rcpt": ["bob@example.test", "X@Elsewhere.test"],
    "rspamd_server": "mail",
    "scan_time": 12,
    "score": 1.2,
    "subject": "Quarterly numbers",
    "symbols": [{"name": "MIME_GOOD", "group": "mime_types", "groups": ["mime_types"], "score": -0.1}],
    "user": "ann@example.test",
}


def export(**changes):
    return {**EXPORT, **changes}


def test_an_export_becomes_a_message_event_named_by_the_postfix_queue_id():
    event = rspamd_event(EXPORT)
    assert event["id"] == "postfix:4QxQ1B6ZkPz9sT3"
    assert event["sender"] == "ann@example.test"
    assert event["recipients"] == ["bob@example.test", "x@elsewhere.test"]
    assert event["subject"] == "Quarterly numbers"
    assert event["internet_message_id"] == "<m1@example.test>"
    assert event["client_ip"] == "127.0.0.1"
    assert event["verdict"] == "clean"


def test_a_short_queue_id_which_repeats_over_time_is_dated_like_the_policy_service_does():
    from datetime import UTC, datetime

    from mailflow.postfix_ids import postfix_event_id

    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert rspamd_event(export(qid="9DFA4236813"), received=at)["id"] == "postfix:20261203:9DFA4236813"
    assert postfix_event_id("9DFA4236813", at) == "postfix:20261203:9DFA4236813"
    assert postfix_event_id("4QxQ1B6ZkPz9sT3", at) == "postfix:4QxQ1B6ZkPz9sT3"


@pytest.mark.parametrize(
    ("action", "symbols", "verdict"),
    [
        ("reject", [{"name": "TEST_SPAM"}], "spam"),
        ("add header", [], "spam"),
        ("rewrite subject", [], "spam"),
        ("greylist", [], "clean"),
        ("no action", [{"name": "PHISHING", "group": "phishing"}], "phish"),
        ("no action", [{"name": "SOMETHING", "groups": ["phishing"]}], "phish"),
        ("reject", [{"name": "CLAM_VIRUS", "group": "antivirus"}], "malware"),
    ],
)
def test_the_verdict_comes_from_symbols_first_then_the_action(action, symbols, verdict):
    assert verdict_of(action, symbols) == verdict


def test_the_verdict_symbols_and_actions_are_settings(settings):
    settings.MAILSTACK_PHISH_SYMBOLS = ["MY_PHISH_RULE"]
    settings.MAILSTACK_SPAM_ACTIONS = ["reject"]
    assert verdict_of("no action", [{"name": "MY_PHISH_RULE"}]) == "phish"
    assert verdict_of("add header", []) == "clean"


def test_mail_of_no_authenticated_user_is_skipped():
    with pytest.raises(Skipped):
        rspamd_event(export(user="unknown"))


def test_an_export_without_rspamd_fields_is_refused():
    with pytest.raises(BadRequest):
        rspamd_event({"user": "ann@example.test"})
    with pytest.raises(BadRequest):
        rspamd_event(export(qid="unknown", message_id="unknown"))


def test_logins_that_are_not_addresses_map_to_mailboxes_like_the_policy_service(settings):
    settings.ENFORCEMENT_SASL_LOGINS = "ann=ann@example.test"
    assert rspamd_event(export(user="ANN"))["sender"] == "ann@example.test"
    assert dovecot_sign_in({**REPORT, "login": "ann"})["user"] == "ann@example.test"


def test_a_scan_outside_postfix_is_named_by_its_message_id():
    assert rspamd_event(export(qid="unknown"))["id"] == "rspamd:m1@example.test"


REPORT = {
    "device_id": "",
    "login": "Ann@Example.test",
    "protocol": "imap",
    "pwhash": "0ac5",
    "remote": "81.2.69.142",
    "session_id": "WcRRFbZh1rd/AAAB",
    "tls": False,
    "success": True,
    "policy_reject": False,
}


def test_a_report_becomes_a_sign_in_with_its_country():
    event = dovecot_sign_in(REPORT)
    assert event["user"] == "ann@example.test"
    assert event["ip"] == "81.2.69.142"
    assert event["country"] == "GB"
    assert event["client_app"] == "imap"
    assert event["result"] == "success"


def test_a_refused_or_failed_report_is_a_failure_and_protocols_map_to_client_apps():
    assert dovecot_sign_in({**REPORT, "success": False})["result"] == "failure"
    assert dovecot_sign_in({**REPORT, "policy_reject": True})["result"] == "failure"
    assert dovecot_sign_in({**REPORT, "protocol": "pop3"})["client_app"] == "pop"
    assert dovecot_sign_in({**REPORT, "protocol": "smtp"})["client_app"] == "smtp"
    assert "country" not in dovecot_sign_in({**REPORT, "remote": "127.0.0.1"})


def test_a_mmdb_file_answers_when_configured(settings, tmp_path):
    settings.MAILSTACK_GEOIP_MMDB = str(tmp_path / "missing.mmdb")
    from mailstack.geo import country_of

    # An unreadable database gives no country (logged), never an error on the sign-in path.
    assert country_of("81.2.69.142") == ""


SCRIPT = """require ["fileinto", "copy", "imap4flags", "body"];
if header :contains "subject" "invoice" { fileinto "Notes"; addflag "\\\\Seen"; }
if address :is "from" "boss@example.test" { discard; }
if body :contains "wire" { redirect :copy "x@elsewhere.test"; }
redirect :copy "fwd@elsewhere.test";
"""


def test_sieve_rules_map_to_inbox_rule_actions_and_conditions():
    script = sieve.parse(SCRIPT)
    rules = list(script.inbox_rules.values())
    assert [r.actions for r in rules] == [
        {"move_to_folder": "Notes", "mark_as_read": True},
        {"delete": True},
        {"redirect_to": ["x@elsewhere.test"]},
    ]
    assert [r.conditions for r in rules] == [
        {"subject_contains": ["invoice"]},
        {"from": ["boss@example.test"]},
        {"body_contains": ["wire"]},
    ]
    assert script.forwarding == ("fwd@elsewhere.test", True)


def test_a_rule_keeps_its_id_across_reads_and_rewrites():
    ids = set(sieve.parse(SCRIPT).inbox_rules)
    assert set(sieve.parse(sieve.rewrite_without(SCRIPT, forwarding=True)).inbox_rules) == ids


def test_rewriting_drops_only_the_named_rule_or_the_forwarding():
    script = sieve.parse(SCRIPT)
    discard = next(r.rule_id for r in script.inbox_rules.values() if r.actions.get("delete"))
    without_rule = sieve.parse(sieve.rewrite_without(SCRIPT, rule_ids={discard}))
    assert discard not in without_rule.inbox_rules
    assert len(without_rule.inbox_rules) == 2
    assert without_rule.forwarding == ("fwd@elsewhere.test", True)
    without_forwarding = sieve.rewrite_without(SCRIPT, forwarding=True)
    assert "fwd@elsewhere.test" not in without_forwarding
    assert sieve.parse(without_forwarding).forwarding is None
    assert sieve.rewrite_without('redirect "a@elsewhere.test";\n', forwarding=True).strip() == "keep;"


def test_an_unreadable_script_is_an_error():
    with pytest.raises(sieve.SieveParseError):
        sieve.parse("if header { nonsense")
