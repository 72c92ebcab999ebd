"""Issue 21 on the Microsoft 365 connector: spam a user sent inside the tenant is a cluster whose soft delete
the playbook proposes (counted in mailboxes) and the connector carries out through Graph."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from investigations import actions
from investigations.models import RemediationAction
from investigations.services import start_investigation_by_hand
from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from tests.investigations.action_builders import approve_now

from .test_connector import graph_id, tenant_with_rule  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_a_spam_cluster_sent_to_colleagues_is_soft_deleted_in_their_mailboxes(
    tenant_with_rule,  # noqa: F811 - the fixture imported above
    m365_connection,
    operator,
    django_capture_on_commit_callbacks,
):
    tenant = m365_connection.tenant
    now = timezone.now().replace(microsecond=0)
    events = [
        {
            "type": "message",
            "id": f"spam-{n}",
            "time": (now - timedelta(hours=2, minutes=n)).isoformat(),
            "sender": "alice@contoso.com",
            "recipients": ["bob@contoso.com"],
            "subject": "You have won a gift card",
            "verdict": "spam",
            "urls": ["https://gift-cards-now.example/claim"],
            "internet_message_id": f"<spam-{n}@contoso.com>",
        }
        for n in range(6)
    ]
    assert ingest_events(tenant, events, source="test").ok
    bob_id = graph_id(m365_connection, "bob@contoso.com")
    tenant_with_rule.mailbox_messages = {
        bob_id: [
            {"id": f"m-{n}", "internetMessageId": f"<spam-{n}@contoso.com>", "subject": "Gift",
             "parentFolderId": "inbox"}
            for n in range(6)
        ]
    }  # fmt: skip
    alice = Mailbox.objects.get(tenant=tenant, address="alice@contoso.com")
    with django_capture_on_commit_callbacks(execute=True):
        investigation = start_investigation_by_hand(alice, actor=operator)
    soft_delete = investigation.actions.get(action_type=RemediationAction.Type.SOFT_DELETE_MESSAGES)
    assert soft_delete.target_label.endswith(": 6 copies in 1 internal mailbox")

    approve_now(soft_delete, operator)
    assert actions.run_approved_action(soft_delete.pk) == RemediationAction.Status.COMPLETED
    moves = [r.path for r in tenant_with_rule.requests if r.path.endswith("/move")]
    assert sorted(moves) == sorted(f"/graph/v1.0/users/{bob_id}/messages/m-{n}/move" for n in range(6))
