"""Directory state and its history: the newest event wins whatever the arrival order; every change is kept."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from mailboxes.exceptions import DirectoryError
from mailboxes.models import (
    AcceptedDomain,
    Delegation,
    DirectoryChange,
    InboxRule,
    Mailbox,
    MailboxForwarding,
)
from mailboxes.services import (
    add_accepted_domain,
    apply_delegation_change,
    apply_inbox_rule_change,
    remove_accepted_domain,
    set_forwarding,
    sync_accepted_domains,
    update_account_state,
    upsert_mailbox,
)
from mailflow.ingest import ingest_events
from tests.mailflow.events import at, delegation, forwarding, inbox_rule, mailbox_event, message

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
FORWARD_OUT = {"forward_to": "drop@evil.example.org"}


def alice() -> Mailbox:
    return Mailbox.objects.get(address=ALICE)


def rule_history() -> list[tuple[str, bool]]:
    return list(DirectoryChange.objects.of_kind("inbox_rule").timeline().values_list("operation", "applied"))


def test_a_rule_created_then_deleted_leaves_two_history_rows_and_no_present_rule(accepted):
    ingest_events(accepted, [inbox_rule("e-1", ALICE, "rule-1", "created", name="Fwd", actions=FORWARD_OUT)])
    ingest_events(accepted, [inbox_rule("e-2", ALICE, "rule-1", "deleted", minutes=10)])
    assert not InboxRule.objects.present().exists()
    rule = InboxRule.objects.get(rule_id="rule-1")
    assert (rule.created_at, rule.removed_at) == (at(0), at(10))
    created, deleted = DirectoryChange.objects.of_kind("inbox_rule").timeline()
    assert (created.operation, created.at, created.event_id, created.source) == (
        "created",
        at(0),
        "e-1",
        "api",
    )
    assert created.state["actions"] == {"forward_to": ["drop@evil.example.org"]}
    assert (deleted.operation, deleted.at) == ("deleted", at(10))
    assert deleted.state["name"] == "Fwd"  # a deletion records the state that was removed


def test_an_update_arriving_before_its_creation_ends_in_the_updated_state(accepted):
    ingest_events(
        accepted, [inbox_rule("e-2", ALICE, "rule-1", "updated", minutes=20, name="v2", enabled=False)]
    )
    ingest_events(accepted, [inbox_rule("e-1", ALICE, "rule-1", "created", minutes=5, name="v1")])
    rule = InboxRule.objects.present().get(rule_id="rule-1")
    assert (rule.name, rule.enabled, rule.changed_at) == ("v2", False, at(20))
    assert rule.created_at == at(5)  # the late creation still tells when the rule appeared
    assert rule_history() == [("created", False), ("updated", True)]


def test_a_deletion_arriving_before_its_creation_leaves_no_present_rule(accepted):
    ingest_events(accepted, [inbox_rule("e-2", ALICE, "rule-1", "deleted", minutes=30)])
    ingest_events(accepted, [inbox_rule("e-1", ALICE, "rule-1", "created", minutes=1, actions=FORWARD_OUT)])
    assert not InboxRule.objects.present().exists()
    assert InboxRule.objects.get(rule_id="rule-1").created_at == at(1)
    assert rule_history() == [("created", False), ("deleted", True)]


def test_a_rule_recreated_after_its_deletion_is_present_again(accepted):
    ingest_events(
        accepted,
        [
            inbox_rule("e-1", ALICE, "rule-1", "created", minutes=1),
            inbox_rule("e-2", ALICE, "rule-1", "deleted", minutes=2),
            inbox_rule("e-3", ALICE, "rule-1", "created", minutes=3, name="again"),
        ],
    )
    rule = InboxRule.objects.present().get(rule_id="rule-1")
    assert (rule.name, rule.created_at) == ("again", at(3))


def test_an_older_forwarding_change_arriving_later_does_not_overwrite_the_newer_one(accepted):
    ingest_events(accepted, [forwarding("e-2", ALICE, "out@evil.example.org", minutes=10, keep_copy=True)])
    ingest_events(accepted, [forwarding("e-1", ALICE, None, minutes=5)])
    current = MailboxForwarding.objects.get(mailbox=alice())
    assert (current.forward_to, current.keep_copy, current.changed_at) == (
        "out@evil.example.org",
        True,
        at(10),
    )
    history = DirectoryChange.objects.of_kind("forwarding").timeline()
    assert [(c.operation, c.applied) for c in history] == [("cleared", False), ("set", True)]
    assert MailboxForwarding.objects.active().count() == 1


def test_turning_forwarding_off_records_what_was_turned_off(accepted):
    ingest_events(accepted, [forwarding("e-1", ALICE, "out@evil.example.org")])
    ingest_events(accepted, [forwarding("e-2", ALICE, None, minutes=1)])
    assert not MailboxForwarding.objects.active().exists()
    cleared = DirectoryChange.objects.of_kind("forwarding").get(operation="cleared")
    assert cleared.state == {"forward_to": "out@evil.example.org", "keep_copy": False}


def test_delegations_end_in_the_newest_state_whatever_the_order(accepted):
    ingest_events(accepted, [delegation("e-3", ALICE, "eve@example.com", "send_as", "added", minutes=30)])
    ingest_events(
        accepted,
        [
            delegation("e-2", ALICE, "eve@example.com", "send_as", "removed", minutes=20),
            delegation("e-1", ALICE, "eve@example.com", "send_as", "added", minutes=10),
            delegation("e-4", ALICE, "eve@example.com", "full_access", "removed", minutes=40),
        ],
    )
    present = Delegation.objects.present().get()
    assert (present.access, present.added_at) == ("send_as", at(30))
    assert not Delegation.objects.present().filter(access="full_access").exists()
    keys = DirectoryChange.objects.of_kind("delegation").values_list("key", flat=True)
    assert set(keys) == {"eve@example.com"}


def test_mailbox_attributes_come_from_the_newest_mailbox_event(accepted):
    ingest_events(accepted, [mailbox_event("e-2", ALICE, minutes=20, display_name="Alice B.", vip=True)])
    ingest_events(
        accepted, [mailbox_event("e-1", ALICE, minutes=10, display_name="Alice A.", department="Ops")]
    )
    mailbox = alice()
    assert (mailbox.display_name, mailbox.vip, mailbox.department) == ("Alice B.", True, "")
    history = DirectoryChange.objects.of_kind("mailbox").timeline()
    assert [(c.operation, c.applied) for c in history] == [("updated", False), ("created", True)]


def test_a_mailbox_event_leaves_attributes_it_does_not_name(accepted):
    ingest_events(accepted, [mailbox_event("e-1", ALICE, display_name="Alice", department="Finance")])
    ingest_events(accepted, [mailbox_event("e-2", ALICE, minutes=1, vip=True)])
    mailbox = alice()
    assert (mailbox.display_name, mailbox.department, mailbox.vip) == ("Alice", "Finance", True)


def test_turning_off_forwarding_from_the_console_is_audited_and_kept_in_history(accepted, operator):
    ingest_events(accepted, [forwarding("e-1", ALICE, "out@evil.example.org")])
    set_forwarding(alice(), forward_to=None, actor=operator)
    assert not MailboxForwarding.objects.active().exists()
    change = DirectoryChange.objects.of_kind("forwarding").get(source="console")
    assert (change.operation, change.state["forward_to"]) == ("cleared", "out@evil.example.org")
    audit = AuditEvent.objects.get(action="mailboxes.forwarding.cleared")
    assert (audit.actor, audit.before["forward_to"], audit.after["forward_to"]) == (
        operator,
        "out@evil.example.org",
        None,
    )


def test_removing_a_rule_and_restoring_it_from_history_brings_it_back(accepted, operator):
    ingest_events(accepted, [inbox_rule("e-1", ALICE, "rule-1", "created", name="Fwd", actions=FORWARD_OUT)])
    apply_inbox_rule_change(alice(), rule_id="rule-1", operation="deleted", actor=operator)
    assert not InboxRule.objects.present().exists()
    saved = DirectoryChange.objects.of_kind("inbox_rule").get(operation="deleted", source="console").state
    restored = apply_inbox_rule_change(
        alice(),
        rule_id="rule-1",
        operation="created",
        name=saved["name"],
        conditions=saved["conditions"],
        actions=saved["actions"],
        enabled=saved["enabled"],
        actor=operator,
    )
    assert restored.is_present and restored.actions == {"forward_to": ["drop@evil.example.org"]}
    assert list(
        AuditEvent.objects.filter(action__startswith="mailboxes.inbox_rule")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["mailboxes.inbox_rule.deleted", "mailboxes.inbox_rule.created"]


def test_ingested_changes_are_history_but_not_audit_rows(accepted):
    ingest_events(accepted, [inbox_rule("e-1", ALICE, "rule-1", "created"), forwarding("e-2", ALICE, None)])
    assert DirectoryChange.objects.count() == 3  # the mailbox, the rule, the forwarding
    assert not AuditEvent.objects.filter(action__startswith="mailboxes.inbox_rule").exists()


def test_removing_a_delegation_from_the_console_is_audited(accepted, operator):
    ingest_events(accepted, [delegation("e-1", ALICE, "eve@example.com", "full_access", "added")])
    removed = apply_delegation_change(
        alice(), delegate="Eve@Example.com", access="full_access", operation="removed", actor=operator
    )
    assert not removed.is_present
    assert AuditEvent.objects.filter(action="mailboxes.delegation.removed", actor=operator).exists()


def test_a_delegation_operation_must_be_known(accepted, operator):
    ingest_events(accepted, [message("e-1")])
    with pytest.raises(DirectoryError):
        apply_delegation_change(
            alice(), delegate="eve@example.com", access="owner", operation="added", actor=operator
        )


def test_account_state_changes_are_audited_and_kept_in_history(accepted, operator):
    ingest_events(accepted, [message("e-1")])
    update_account_state(alice(), account_enabled=False, password_reset_required=True, actor=operator)
    mailbox = alice()
    assert (mailbox.account_enabled, mailbox.password_reset_required) == (False, True)
    change = DirectoryChange.objects.of_kind("mailbox").get(source="console")
    assert change.state["account_enabled"] is False
    audit = AuditEvent.objects.get(action="mailboxes.mailbox.account_state_changed")
    assert (audit.before["account_enabled"], audit.after["account_enabled"]) == (True, False)


def test_an_account_state_call_that_changes_nothing_writes_nothing(accepted, operator):
    ingest_events(accepted, [message("e-1")])
    update_account_state(alice(), account_enabled=True, actor=operator)
    assert not AuditEvent.objects.filter(action="mailboxes.mailbox.account_state_changed").exists()


def test_a_mailbox_added_by_hand_is_audited(tenant, administrator):
    mailbox = upsert_mailbox(tenant, "New@Example.com", display_name="New", actor=administrator)
    assert mailbox.address == "new@example.com"
    assert AuditEvent.objects.filter(action="mailboxes.mailbox.created", actor=administrator).exists()
    with pytest.raises(DirectoryError):
        upsert_mailbox(tenant, "not-an-address", actor=administrator)


def test_an_administrator_adds_and_removes_an_accepted_domain_with_audit_rows(tenant, administrator):
    domain = add_accepted_domain(tenant, " Partner.Example.NET ", actor=administrator)
    assert (domain.domain, domain.source) == ("partner.example.net", "admin")
    remove_accepted_domain(domain, actor=administrator)
    assert not AcceptedDomain.objects.exists()
    actions = AuditEvent.objects.filter(actor=administrator).order_by("id").values_list("action", flat=True)
    assert list(actions) == ["mailboxes.accepted_domain.added", "mailboxes.accepted_domain.removed"]


@pytest.mark.parametrize("bad", ["", "localhost", "exa mple.com", "-bad.example", "a@b.example"])
def test_an_invalid_accepted_domain_is_refused(tenant, administrator, bad):
    with pytest.raises(DirectoryError):
        add_accepted_domain(tenant, bad, actor=administrator)


def test_an_accepted_domain_cannot_be_added_twice(accepted, administrator):
    with pytest.raises(DirectoryError, match="already an accepted domain"):
        add_accepted_domain(accepted, "example.com", actor=administrator)


def test_a_connector_sync_adds_and_removes_only_its_own_domains(accepted):
    sync_accepted_domains(accepted, ["one.example", "two.example"])
    added, removed = sync_accepted_domains(accepted, ["two.example", "three.example"])
    assert (added, removed) == (["three.example"], ["one.example"])
    assert set(AcceptedDomain.objects.values_list("domain", flat=True)) == {
        "example.com",  # declared by events: not the connector's to remove
        "two.example",
        "three.example",
    }


def test_a_mailbox_created_on_first_sight_can_be_looked_up_whatever_the_case(accepted):
    ingest_events(accepted, [message("e-1", "Zoe@Example.com")])
    assert (
        Mailbox.objects.for_tenant(accepted).for_address("ZOE@example.COM").get().address == "zoe@example.com"
    )
