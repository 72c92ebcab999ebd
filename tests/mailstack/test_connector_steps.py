"""What Dovecot has no API for: the password reset hook command (or the manual step naming the passdb) and
the delegation manual step."""

from __future__ import annotations

import stat

import pytest

from investigations.models import RemediationAction

from .test_actions import make_action

pytestmark = pytest.mark.django_db(transaction=True)

Type = RemediationAction.Type
Status = RemediationAction.Status


def approve(action, operator) -> RemediationAction:
    from investigations.actions import decide_actions

    decide_actions(action, actor=operator, approve=True)
    action.refresh_from_db()
    return action


def test_without_a_hook_the_password_reset_is_a_manual_step_naming_the_passdb(
    connected, operator, tenant, settings
):
    settings.MAILSTACK_PASSWORD_RESET_COMMAND = ""
    settings.MAILSTACK_PASSDB_DESCRIPTION = "the LDAP directory (ou=mail)"
    action = approve(make_action(tenant, operator, "ann@example.test", Type.FORCE_PASSWORD_RESET), operator)
    assert action.status == Status.MANUAL
    assert "Set a new password for ann@example.test in the LDAP directory (ou=mail)" in action.manual_step


def test_the_password_reset_hook_runs_with_the_address(connected, operator, tenant, settings, tmp_path):
    record = tmp_path / "called"
    hook = tmp_path / "expire-password"
    hook.write_text(f'#!/bin/sh\necho "$1" > {record}\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    settings.MAILSTACK_PASSWORD_RESET_COMMAND = str(hook)
    action = approve(make_action(tenant, operator, "ann@example.test", Type.FORCE_PASSWORD_RESET), operator)
    assert action.status == Status.COMPLETED, action.result
    assert record.read_text().strip() == "ann@example.test"
    assert action.investigation.mailbox.__class__.objects.get(
        address="ann@example.test"
    ).password_reset_required


def test_a_failing_hook_fails_the_action_with_its_output(connected, operator, tenant, settings, tmp_path):
    hook = tmp_path / "broken"
    hook.write_text('#!/bin/sh\necho "no such user in passdb" >&2\nexit 3\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    settings.MAILSTACK_PASSWORD_RESET_COMMAND = str(hook)
    action = approve(make_action(tenant, operator, "ann@example.test", Type.FORCE_PASSWORD_RESET), operator)
    assert action.status == Status.FAILED
    assert "exited with 3: no such user in passdb" in action.result


def test_remove_delegation_is_a_manual_doveadm_acl_step(connected, operator, tenant):
    from mailflow.ingest import ingest_events

    delegation = {
        "type": "delegation",
        "id": "d1",
        "time": "2026-12-03T09:00:00+00:00",
        "mailbox": "ann@example.test",
        "delegate": "eve@example.test",
        "access": "full_access",
        "operation": "added",
    }
    assert ingest_events(tenant, [delegation]).accepted == 1
    action = make_action(
        tenant, operator, "ann@example.test", Type.REMOVE_DELEGATION, delegate="eve@example.test"
    )
    action = approve(action, operator)
    assert action.status == Status.MANUAL
    assert "doveadm acl delete -u ann@example.test <folder> user=eve@example.test" in action.manual_step
