"""The Rspamd exporter and Dovecot policy endpoints: authentication, events stored through the ingest
service, one event per message with the policy service, enforcement (reject, tarpit) and failing open."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from mailboxes.models import SignIn
from mailflow.ingest import ingest_events
from mailflow.models import MessageEvent

from .conftest import basic
from .test_mapping import EXPORT, REPORT

pytestmark = pytest.mark.django_db


def post(path: str, body, secret: str | None, **query):
    url = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    headers = {"Authorization": basic(secret)} if secret else {}
    return Client().post(url, data=json.dumps(body), content_type="application/json", headers=headers)


RSPAMD = "/hooks/mailstack/default/rspamd"
POLICY = "/hooks/mailstack/default/dovecot-policy"


@pytest.fixture(autouse=True)
def _default_slug(tenant):
    assert tenant.slug == "default"


def test_an_export_with_the_right_secret_is_stored_as_a_message_event(connected):
    response = post(RSPAMD, EXPORT, connected.secrets.exporter)
    assert response.status_code == 200, response.content
    event = MessageEvent.objects.get(event_id="postfix:4QxQ1B6ZkPz9sT3")
    assert event.sender.address == "ann@example.test"
    assert event.verdict == "clean"
    assert event.subject == "Quarterly numbers"
    assert event.external_count == 1


def test_an_export_with_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(connected):
    assert post(RSPAMD, EXPORT, "wrong").status_code == 401
    assert post(RSPAMD, EXPORT, None).status_code == 401
    assert post(RSPAMD, EXPORT, connected.secrets.policy).status_code == 401  # the other server's secret
    assert not MessageEvent.objects.exists()


def test_an_unknown_organisation_or_a_bad_body_gets_a_clear_error(connected):
    assert post("/hooks/mailstack/nobody/rspamd", EXPORT, connected.secrets.exporter).status_code == 404
    response = Client().post(
        RSPAMD,
        data="not json",
        content_type="text/plain",
        headers={"Authorization": basic(connected.secrets.exporter)},
    )
    assert response.status_code == 400
    response = post(RSPAMD, {"hello": 1}, connected.secrets.exporter)
    assert response.status_code == 400
    assert "action" in response.json()["detail"]


def test_inbound_mail_is_acknowledged_and_not_stored(connected):
    response = post(RSPAMD, {**EXPORT, "user": "unknown"}, connected.secrets.exporter)
    assert response.json()["status"] == "skipped"
    assert not MessageEvent.objects.exists()


def test_a_message_the_policy_service_stored_first_becomes_one_event_with_rspamds_verdict(connected, tenant):
    ingest_events(
        tenant,
        [
            {
                "type": "message",
                "id": "postfix:4QxQ1B6ZkPz9sT3",
                "time": "2026-12-03T09:00:00+00:00",
                "sender": "ann@example.test",
                "recipients": ["bob@example.test", "x@elsewhere.test"],
                "size": 512,
            }
        ],
        mode="lenient",
        source="postfix",
    )
    post(RSPAMD, {**EXPORT, "action": "reject"}, connected.secrets.exporter)
    event = MessageEvent.objects.get()
    assert event.verdict == "spam"
    assert event.subject == "Quarterly numbers"
    assert event.internet_message_id == "<m1@example.test>"
    assert event.size == 512


def test_the_policy_services_event_after_rspamds_adds_nothing(connected, tenant):
    post(RSPAMD, {**EXPORT, "action": "reject"}, connected.secrets.exporter)
    result = ingest_events(
        tenant,
        [
            {
                "type": "message",
                "id": "postfix:4QxQ1B6ZkPz9sT3",
                "time": "2026-12-03T09:00:00+00:00",
                "sender": "ann@example.test",
                "recipients": ["bob@example.test"],
            }
        ],
        mode="lenient",
        source="postfix",
    )
    assert result.conflicts == ["postfix:4QxQ1B6ZkPz9sT3"]
    assert MessageEvent.objects.get().verdict == "spam"


def test_a_report_is_stored_as_a_sign_in_with_its_country(connected):
    response = post(POLICY, REPORT, connected.secrets.policy, command="report")
    assert response.json() == {"status": 0}
    sign_in = SignIn.objects.get()
    assert (sign_in.mailbox.address, sign_in.country, sign_in.client_app, sign_in.result) == (
        "ann@example.test",
        "GB",
        "imap",
        "success",
    )


def test_allow_answers_zero_for_a_normal_account(connected):
    assert post(POLICY, REPORT, connected.secrets.policy, command="allow").json() == {"status": 0}


def test_a_disabled_account_is_rejected(connected, tenant):
    from mailstack.services import set_account_disabled

    set_account_disabled(tenant, "ann@example.test", True)
    answer = post(POLICY, REPORT, connected.secrets.policy, command="allow").json()
    assert answer["status"] == -1
    assert "disabled" in answer["msg"]
    set_account_disabled(tenant, "ann@example.test", False)
    assert post(POLICY, REPORT, connected.secrets.policy, command="allow").json() == {"status": 0}


def test_repeated_failures_tarpit_the_login_until_a_success(connected, settings):
    settings.MAILSTACK_TARPIT_AFTER_FAILURES = 3
    settings.MAILSTACK_TARPIT_SECONDS = 7
    failed = {**REPORT, "success": False}
    for _ in range(3):
        assert post(POLICY, REPORT, connected.secrets.policy, command="allow").json() == {"status": 0}
        post(POLICY, failed, connected.secrets.policy, command="report")
    answer = post(POLICY, REPORT, connected.secrets.policy, command="allow").json()
    assert answer["status"] == 7
    assert SignIn.objects.filter(result="failure").count() == 3


def test_failures_from_one_address_tarpit_other_logins_from_it(connected, settings):
    settings.MAILSTACK_TARPIT_AFTER_FAILURES = 2
    for login in ("ann@example.test", "bob@example.test"):
        post(POLICY, {**REPORT, "login": login, "success": False}, connected.secrets.policy, command="report")
    answer = post(
        POLICY, {**REPORT, "login": "carol@example.test"}, connected.secrets.policy, command="allow"
    )
    assert answer.json()["status"] == settings.MAILSTACK_TARPIT_SECONDS
    other_address = {**REPORT, "login": "carol@example.test", "remote": "89.160.20.112"}
    assert post(POLICY, other_address, connected.secrets.policy, command="allow").json() == {"status": 0}


def test_the_policy_fails_open_when_redis_is_down(connected, settings, monkeypatch):
    from mailstack import state

    def broken():
        raise state.redis.ConnectionError("Redis is down")

    monkeypatch.setattr(state, "client", broken)
    response = post(POLICY, REPORT, connected.secrets.policy, command="allow")
    assert response.status_code == 200
    assert response.json() == {"status": 0}


def test_an_export_without_redis_is_refused_with_503_so_rspamd_logs_it(connected, monkeypatch):
    from mailstack import state

    def no_redis():
        raise RuntimeError("The self-hosted mail endpoints need Redis (REDIS_URL).")

    monkeypatch.setattr(state, "client", no_redis)
    assert post(RSPAMD, EXPORT, connected.secrets.exporter).status_code == 503
    assert post(RSPAMD, EXPORT, "wrong").status_code == 401  # the status note is best effort


def test_the_policy_with_a_wrong_secret_enforces_nothing_and_stores_nothing(connected):
    response = post(POLICY, REPORT, "wrong", command="report")
    assert response.status_code == 401
    assert response.json()["status"] == 0
    assert not SignIn.objects.exists()


def test_a_burst_of_reports_is_stored_by_one_task(connected, mail_redis, monkeypatch):
    from celery.canvas import Signature

    sent = []
    monkeypatch.setattr(Signature, "apply_async", lambda self, *a, **k: sent.append(self.task))
    for _ in range(5):
        post(POLICY, REPORT, connected.secrets.policy, command="report")
    assert sent == ["mailstack.ingest_pending"]
    assert mail_redis.llen("soc:mailstack:default:events") == 5
    from mailstack.services import drain_events

    assert drain_events(connected.tenant_id).accepted == 5
    assert SignIn.objects.count() == 5
