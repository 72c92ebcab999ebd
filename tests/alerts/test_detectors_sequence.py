"""First-contact recipients and the sequence policy "Suspicious activity after an unusual sign-in" (issue 21):
each signal at its boundary, the sign-in and the sending in either order of arrival, and one alert that starts
an investigation while each half stays under its own threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alerts.contacts import learn_contacts
from alerts.models import AlertPolicy, KnownContact, Severity
from investigations.models import Investigation

from .builders import HOME, Telemetry, alerts_of, days_ago, evaluate, evidence_ids, mailbox_of, today

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_at_now")]

SEQUENCE = AlertPolicy.Kind.SEQUENCE
PATTERN = AlertPolicy.Kind.SENDING_PATTERN
ALICE = f"alice@{HOME}"
BOB = f"bob@{HOME}"


def send(
    t: Telemetry, sender: str, at: datetime, recipients: list[str], subject: str = "Hello", **extra
) -> str:
    event = {"type": "message", "time": at.isoformat(), "sender": sender, "recipients": recipients}
    return t._add(event | {"subject": subject, "verdict": "clean", **extra}, None, "msg")


def history(t: Telemetry, user: str, *, days: int = 14) -> None:
    """A settled user: daily browser sign-ins from GB and a daily mail to a known partner."""
    t.mailbox(user, at=days_ago(days + 1))
    for day in range(days, 0, -1):
        t.sign_in(user, at=days_ago(day, 8), country="GB")
        send(t, user, days_ago(day, 9), ["ap@fabrikam.example", f"colleague@{HOME}"])


def new_recipients(count: int, *, domains: int, tag: str = "a") -> list[str]:
    return [f"person{n}-{tag}@new{n % domains}-{tag}.example" for n in range(count)]


def rules(alert) -> list[str]:
    return [reason["rule"] for reason in alert.details["reasons"]]


# ------------------------------------------------------------------------------------------ first contact


def test_a_burst_of_first_contact_domains_is_a_sending_pattern_signal_at_its_threshold(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    history(t, BOB)
    for n, address in enumerate(new_recipients(20, domains=20)):
        send(t, ALICE, today(10, n), [address])
    for n, address in enumerate(new_recipients(19, domains=19, tag="b")):
        send(t, BOB, today(10, n), [address])
    evaluate(tenant, t.ingest())

    [alert] = alerts_of(tenant, PATTERN)
    assert alert.mailbox.address == ALICE and rules(alert) == ["first_contact_burst"]
    assert alert.evidence_count == 20 and alert.severity == Severity.MEDIUM


def test_first_contact_counts_only_after_the_learning_period(tenant):
    t = Telemetry(tenant)
    history(t, ALICE, days=5)  # still learning: every correspondent is new
    for n, address in enumerate(new_recipients(30, domains=30)):
        send(t, ALICE, today(10, n), [address])
    evaluate(tenant, t.ingest())
    assert alerts_of(tenant, PATTERN) == []


def test_domains_already_written_to_are_not_first_contacts_whatever_the_arrival_order(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    evaluate(tenant, t.ingest())
    for n, address in enumerate(new_recipients(25, domains=25)):
        send(t, ALICE, today(10, n), [address])
    burst = t.ingest()
    # The same domains written to over the week before, one an hour, arriving late: known before the burst.
    for n, address in enumerate(new_recipients(25, domains=25)):
        send(t, ALICE, days_ago(4, 9) + timedelta(hours=n), [address])
    late = t.ingest()
    mailbox = mailbox_of(tenant, ALICE)
    learn_contacts(tenant.pk, [mailbox.pk], *late.time_range)
    learn_contacts(tenant.pk, [mailbox.pk], *burst.time_range)
    contact = KnownContact.objects.get(mailbox=mailbox, kind="domain", value="new0-a.example")
    assert contact.first_seen == days_ago(4, 9)
    evaluate(tenant, burst)
    assert alerts_of(tenant, PATTERN) == []


# ---------------------------------------------------------------------------------------------- sequence


def lure(t: Telemetry, at: datetime) -> list[str]:
    """A clean-looking lure to 25 first-contact recipients at 5 new domains: under the first-contact domain
    threshold (20) of the sending-pattern policy."""
    return [
        send(t, ALICE, at + timedelta(minutes=n), [r]) for n, r in enumerate(new_recipients(25, domains=5))
    ]


def test_an_unusual_sign_in_then_first_contact_sending_raises_one_alert_and_starts_an_investigation(
    tenant, django_capture_on_commit_callbacks
):
    t = Telemetry(tenant)
    history(t, ALICE)
    sign_in = t.sign_in(ALICE, at=today(10), country="BR")
    sent = lure(t, today(10, 20))
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(tenant, t.ingest())

    [alert] = alerts_of(tenant, SEQUENCE, ALICE)
    assert alert.severity == Severity.MEDIUM
    assert set(evidence_ids(alert)) == {sign_in, *sent}
    [story] = alert.details["sequences"]
    assert story["unusual"] == ["infrequent_country"] and story["followed_by"] == {
        "first_contact_recipients": 25
    }
    assert alerts_of(tenant, PATTERN) == []  # each half under its own threshold
    assert [a.severity for a in alerts_of(tenant, AlertPolicy.Kind.SIGN_IN)] == [Severity.MEDIUM]
    assert Investigation.objects.filter(mailbox__address=ALICE, alerts=alert).exists()


@pytest.mark.parametrize("sign_in_first", [True, False])
def test_the_sign_in_and_the_sending_may_arrive_in_either_order(tenant, sign_in_first):
    t = Telemetry(tenant)
    history(t, ALICE)
    evaluate(tenant, t.ingest())
    batches = []
    for part in ("sign_in", "sending") if sign_in_first else ("sending", "sign_in"):
        if part == "sign_in":
            t.sign_in(ALICE, at=today(10), country="BR")
        else:
            lure(t, today(10, 30))
        batches.append(t.ingest())
        evaluate(tenant, batches[-1])
    [alert] = alerts_of(tenant, SEQUENCE, ALICE)
    assert alert.evidence_count == 26


def test_sending_after_the_window_is_not_a_sequence(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    t.sign_in(ALICE, at=today(10), country="BR")
    lure(t, today(11, 5))  # the window is 60 minutes
    evaluate(tenant, t.ingest())
    assert alerts_of(tenant, SEQUENCE) == []


def test_an_unusual_sign_in_with_ordinary_sending_after_it_is_not_a_sequence(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    t.sign_in(ALICE, at=today(10), country="ES")  # a traveller
    for n in range(5):
        send(t, ALICE, today(10, 10 + n), ["ap@fabrikam.example", f"colleague@{HOME}"], "Invoice for March")
    evaluate(tenant, t.ingest())
    assert alerts_of(tenant, SEQUENCE) == []


def test_an_unusual_client_then_a_forwarding_change_is_high(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    sign_in = t.sign_in(ALICE, at=today(10), country="GB", client_app="other")
    change = t.forwarding(ALICE, "alice@fabrikam.example", at=today(10, 30))
    evaluate(tenant, t.ingest())
    [alert] = alerts_of(tenant, SEQUENCE, ALICE)
    assert alert.severity == Severity.HIGH
    assert set(evidence_ids(alert)) == {sign_in, change}
    assert alert.details["sequences"][0]["unusual"] == ["unusual_client"]


def test_a_legacy_sign_in_then_a_lookalike_link_is_high(tenant):
    t = Telemetry(tenant)
    history(t, ALICE)
    t.sign_in(ALICE, at=today(10), country="GB", client_app="imap")
    send(t, ALICE, today(10, 5), [f"all@{HOME}"], "Your payslip", urls=["https://contoso-hr.example/payslip"])
    evaluate(tenant, t.ingest())
    [alert] = alerts_of(tenant, SEQUENCE, ALICE)
    assert alert.severity == Severity.HIGH
    assert alert.details["kinds"] == ["lookalike_domains"]
