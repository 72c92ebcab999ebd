"""Safe pages: Django's Content-Security-Policy with a per-response nonce on every script and style, no inline
``style`` attribute, the other security headers, CSRF on every form, and telemetry (subjects, names, rule
names) escaped wherever it is shown. Every navigation page and a detail page of each kind is walked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from alerts.detection import Detection, Evidence
from alerts.models import AlertPolicy
from alerts.services import ensure_default_policies, raise_alert
from console.context_processors import NAVIGATION
from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from restricted_users.models import Restriction
from restricted_users.services import restrict_user
from tests.builders import frozen_at
from tests.investigations.action_builders import make_action, make_investigation

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
XSS = "<img src=x onerror=alert(1)>"
ESCAPED_XSS = "&lt;img src=x onerror=alert(1)&gt;"
TAG = re.compile(r"<(script|style)\b[^>]*>", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


frozen_time = frozen_at(NOW)


@pytest.fixture
def hostile(tenant):
    """A user whose display name, sent subject and inbox rule name are an XSS payload, ingested as
    telemetry; an alert with that message as evidence, a policy restriction, and an investigation with a
    pending action."""
    events = [
        {"id": "m-1", "type": "mailbox", "time": (NOW - timedelta(days=5)).isoformat(),
         "address": "ivan@example.com", "display_name": XSS, "department": XSS},
        {"id": "e-1", "type": "message", "time": (NOW - timedelta(hours=1)).isoformat(),
         "sender": "ivan@example.com", "recipients": ["x@elsewhere.example"], "subject": XSS},
        {"id": "r-1", "type": "inbox_rule", "time": (NOW - timedelta(hours=2)).isoformat(),
         "mailbox": "ivan@example.com", "rule_id": "x-1", "operation": "created", "name": XSS},
    ]  # fmt: skip
    result = ingest_events(tenant, events, mode="strict", source="test")
    assert result.ok and result.accepted == len(events), result.errors
    mailbox = Mailbox.objects.get(address="ivan@example.com")
    policy = ensure_default_policies(tenant)[AlertPolicy.Kind.SENDING_PATTERN]
    [alert] = raise_alert(
        policy,
        Detection(mailbox_id=mailbox.pk, evidence=[Evidence("message", "e-1", NOW - timedelta(hours=1))]),
    )
    restriction, _ = restrict_user(
        mailbox,
        policy_name=policy.name,
        reason={"limit_name": "hourly", "count": 600},
        expires_at=None,
        source=Restriction.Source.POLICY,
        actor_label="test",
    )
    investigation = make_investigation(mailbox, alert=alert)
    make_action(investigation, "revoke_sessions", label=XSS)
    return {
        "alert": reverse("console:alert_detail", args=[alert.pk]),
        "mailbox": reverse("console:mailbox_detail", args=[mailbox.pk]),
        "investigation": reverse("console:investigation_detail", args=[investigation.pk]),
        "restriction": reverse("console:restricted_user_detail", args=[restriction.pk]),
        "policy": reverse("console:policy_detail", args=[policy.pk]),
    }


def _every_page(details: dict[str, str]) -> list[str]:
    return [
        *(reverse(name) for _, name, _ in NAVIGATION),
        *details.values(),
        reverse("console:api_tokens"),
        reverse("console:accepted_domains"),
        reverse("console:action_center") + "?status=history",
    ]


def test_the_csp_header_carries_a_fresh_nonce_that_every_script_uses(admin_client_, hostile):
    nonces = set()
    for _ in range(2):
        response = admin_client_.get(reverse("console:dashboard"))
        policy = response.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert "script-src 'self' 'nonce-" in policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
        assert len(scripts) >= 2  # htmx and the local-time script
        assert all(f'nonce="{nonce}"' in tag for tag in scripts)
        nonces.add(nonce)
    assert len(nonces) == 2


def test_no_page_has_a_script_or_style_without_a_nonce_or_a_style_attribute(admin_client_, hostile):
    for url in _every_page(hostile):
        response = admin_client_.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "Content-Security-Policy" in response.headers, url
        for match in TAG.finditer(html):
            assert "nonce=" in match.group(0), (url, match.group(0))
        assert not STYLE_ATTRIBUTE.search(html), (url, STYLE_ATTRIBUTE.search(html).group(0))
        assert " hx-on" not in html, url  # needs eval, which the policy forbids


def test_every_page_sends_the_security_headers(admin_client_, hostile):
    for url in [*_every_page(hostile), reverse("login")]:
        response = admin_client_.get(url)
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["Referrer-Policy"] == "same-origin", url
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", url
        assert response.headers["X-Frame-Options"] == "DENY", url
        assert "camera=()" in response.headers["Permissions-Policy"], url


def test_a_forged_post_without_the_csrf_token_is_refused(operator, hostile):
    forger = Client(enforce_csrf_checks=True)
    forger.force_login(operator)
    alert_id = int(hostile["alert"].strip("/").split("/")[-1])

    response = forger.post(reverse("console:alert_status", args=[alert_id]), {"status": "resolved"})

    assert response.status_code == 403
    page = forger.get(hostile["alert"]).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    assert "X-CSRFToken" in page  # htmx requests send it as a header


@pytest.mark.parametrize("page", ["alert", "mailbox", "investigation", "restriction"])
def test_telemetry_is_escaped_on_every_detail_page(admin_client_, hostile, page):
    html = admin_client_.get(hostile[page]).content.decode()

    assert XSS not in html
    assert ESCAPED_XSS in html


def test_times_show_utc_with_a_machine_readable_datetime(admin_client_, hostile):
    html = admin_client_.get(reverse("console:restricted_users")).content.decode()

    # The column header says "(UTC)"; the cell shows the time alone and its title repeats the zone.
    assert "Placed (UTC)" in html
    assert (
        '<time class="cell-time" datetime="2026-03-02T12:00:00+00:00" title="2026-03-02 12:00 UTC">'
        "2026-03-02 12:00</time>"
    ) in html
    assert "console/localtime.js" in admin_client_.get(reverse("console:dashboard")).content.decode()


@pytest.fixture
def admin_client_(administrator):
    client = Client()
    client.force_login(administrator)
    return client
