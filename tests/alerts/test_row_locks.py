"""Triage locks the alert's row only: a lock on its mailbox too would invert ``raise_alert``'s order (mailbox,
then alert) and deadlock a resolve against a detection of the same user (seen between the restriction-release
task and the policy service's detection)."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.services import resolve_alert
from tests.builders import make_alert, make_mailbox


def test_resolving_an_alert_locks_the_alert_row_and_not_its_mailbox_or_policy(tenant, operator):
    alert = make_alert(tenant, make_mailbox(tenant))
    with CaptureQueriesContext(connection) as queries:
        resolve_alert(alert, actor=operator, classification="false_positive")
    locks = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert locks, "resolve_alert took no row lock"
    for sql in locks:
        assert re.search(r'FOR UPDATE OF "alerts_alert"\s*$', sql), sql
