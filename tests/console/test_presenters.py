"""Human text for stored structures: for every audit action kind each app declares (and every one the code
writes), the label and the change shown in an audit / history cell carry no ``{``, no ``[`` and no snake_case
or dotted code; threshold keys and counts carry their units; a simulated tenant's real audit rows render
clean on the audit log and the history tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert
from console import presenters
from core.feed import declared
from core.models import AuditEvent
from tests.core.test_feed_completeness import audit_actions_in_code

SNAKE_WORD = re.compile(r"(?<![@\w.-])[a-z0-9]+(?:_[a-z0-9]+)+(?![\w@-])")


def every_audit_action() -> list[str]:
    """Each declared action, and each action of the code; a pattern (``m365.*``, an f-string) stands for
    every action of the code it covers, or for a made-up one when the code has none left to scan."""
    in_code = set(audit_actions_in_code())
    actions = {action for action in in_code if "*" not in action}
    for pattern in {d.pattern for d in declared()} | {a for a in in_code if "*" in a}:
        if "*" not in pattern:
            actions.add(pattern)
            continue
        regex = re.compile(re.escape(pattern).replace(r"\*", r"[a-z_.]+"))
        covered = {a for a in actions if regex.fullmatch(a)}
        if not covered:
            actions.add(pattern.replace("*", "setting_changed"))
    if any(p.startswith("investigations.action.") for p in in_code):
        actions |= {"investigations.action.approved", "investigations.action.rejected"}
    return sorted(actions)


def assert_readable(text: str, *, codes: list[str]) -> None:
    assert "{" not in text and "[" not in text, text
    assert not SNAKE_WORD.search(text), text
    for code in codes:
        assert code not in text, (code, text)


RICH_BEFORE = {
    "status": "new",
    "assignee": None,
    "classification": "",
    "thresholds": {"external_per_hour": 500, "total_per_day": 1000},
    "window": {"start": "2026-03-02T10:00:00+00:00", "end": "2026-03-02T11:00:00+00:00"},
}
RICH_AFTER = {
    "status": "resolved",
    "assignee": "otto.operator",
    "classification": "tp_compromised",
    "thresholds": {"external_per_hour": 1000, "total_per_day": 1000},
    "window": {"start": "2026-03-02T10:00:00+00:00", "end": "2026-03-02T12:00:00+00:00"},
    "addresses": ["drop@evil.example", "x@evil.example"],
    "counts": {"external_hour": 1002, "total_day": 1300},
    "limit_name": "external_hour",
    "action_type": "turn_off_forwarding",
    "suppressed_until": "2026-03-09T12:00:00+00:00",
    "enabled": False,
    "some_new_key": "pending_action",
    "nested": [{"rule_name": "Move to RSS", "operation": "created"}],
}


@pytest.mark.django_db
def test_every_declared_audit_action_reads_as_words():
    actions = every_audit_action()
    assert len(actions) > 40  # the scan found the actions of every app
    for action in actions:
        label = presenters.action_label(action)
        assert label and label[0].isupper(), action
        assert_readable(label, codes=[action])
        for before, after in ((RICH_BEFORE, RICH_AFTER), (None, RICH_AFTER), (RICH_BEFORE, None), ("a", "b")):
            for line in presenters.change_lines(before, after):
                assert_readable(line, codes=actions)


@pytest.mark.django_db
def test_values_and_keys_become_labels_with_units():
    lines = presenters.change_lines(RICH_BEFORE, RICH_AFTER)
    assert "Status: New → Resolved" in lines
    assert "Classification: — → True positive: compromised account" in lines
    assert any(
        line.startswith("Thresholds: External recipients in a rolling hour: 500 recipients / hour")
        for line in lines
    ), lines
    assert (
        "Counts: External recipients in the hour: 1,002 recipients; "
        "All recipients in 24 hours: 1,300 recipients" in lines
    )
    assert "Addresses: drop@evil.example, x@evil.example" in lines
    assert any("2026-03-02 12:00 UTC" in line for line in lines)
    assert "Action: Turn off forwarding" in lines
    assert presenters.value_text(30, "bad_share_percent") == "30 %"
    assert presenters.value_text(900, "max_speed_kmh") == "900 km/h"


@pytest.mark.django_db
def test_the_audit_log_and_alert_history_show_words(operator_client, operator, tenant):
    from alerts import services
    from tests.alerts.alert_builders import make_alert, make_mailbox

    alert = make_alert(tenant, make_mailbox(tenant, "alice@example.com"))
    services.assign_alert(alert, actor=operator, assignee=operator)
    services.resolve_alert(alert, actor=operator, classification="tp_compromised", comment="Seen it")
    codes = sorted(set(AuditEvent.objects.values_list("action", flat=True)))
    assert "alerts.alert.resolved" in codes
    for url in (reverse("console:audit_log"), reverse("console:alert_detail", args=[alert.pk])):
        page = operator_client.get(url).content.decode()
        cells = re.findall(
            r'<td data-action="[^"]*">(.*?)</td>\s*(?:<td>.*?</td>\s*)?<td class="change">(.*?)</td>',
            page,
            re.S,
        )
        assert cells, url
        for label, change in cells:
            text = re.sub(r"<[^>]+>", " ", label + " " + change)
            assert_readable(text, codes=codes)
    history = operator_client.get(reverse("console:alert_detail", args=[alert.pk])).content.decode()
    assert "Alert resolved" in history and "Status: In progress → Resolved" in history
    assert "Assigned to: — → otto.operator" in history and "Evidence count: 1 event" in history
    assert Alert.objects.get(pk=alert.pk).status == Alert.Status.RESOLVED


def test_times_read_in_utc():
    assert presenters.value_text("2026-03-02T12:00:00+01:00") == "2026-03-02 11:00 UTC"
    assert presenters.value_text(datetime(2026, 3, 2, 12, tzinfo=UTC)) == "2026-03-02 12:00 UTC"
    assert timezone.is_aware(datetime(2026, 3, 2, tzinfo=UTC))
