"""Alert policies in the console and the API: seeded with each tenant, read by everyone, changed only by
administrators, every value validated by the service and every change audited (DESIGN sections 5 and 8)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertPolicy, PolicyOverride
from alerts.policies import DEFAULT_POLICIES
from core.models import ApiToken, AuditEvent
from core.services import create_api_token

from .alert_builders import make_mailbox, policy_of

pytestmark = pytest.mark.django_db

SENDING = AlertPolicy.Kind.SENDING_LIMIT


def _form_data(policy: AlertPolicy, **changes) -> dict:
    """What the settings form posts for ``policy`` unchanged, with ``changes`` applied."""
    data = {
        "severity": policy.severity,
        "aggregation_minutes": policy.aggregation_minutes,
        "action": policy.action,
        "investigate_mode": policy.investigate_mode,
        "scope": policy.scope,
        "notify_recipients": "",
        "notify_min_severity": policy.notify_min_severity,
        "notify_daily_limit": policy.notify_daily_limit,
        "include_mailboxes": "",
        "include_departments": "",
        "exclude_mailboxes": "",
        "exclude_departments": "",
        **{f"threshold_{key}": value for key, value in policy.thresholds.items()},
    }
    if policy.enabled:
        data["enabled"] = "on"
    if policy.rerestrict_after_release:
        data["rerestrict_after_release"] = "on"
    data.update(changes)
    return data


def _updates(policy: AlertPolicy):
    return AuditEvent.objects.for_target(policy).filter(action="alerts.policy.updated")


# ------------------------------------------------------------------------------------------------ pages


def test_the_policy_list_shows_every_default_policy_of_the_tenant(reader_client, tenant):
    assert AlertPolicy.objects.filter(tenant=tenant).count() == len(DEFAULT_POLICIES) == 10
    page = reader_client.get(reverse("console:policies"))
    assert page.status_code == 200
    html = page.content.decode()
    assert len(page.context["rows"]) == 10
    for name in (
        "Email sending limit exceeded",
        "Suspicious email forwarding activity",
        "Mailbox delegation added",
    ):
        assert name in html


def test_the_policy_list_shows_the_chosen_tenant(reader_client, tenant, other_tenant):
    page = reader_client.get(reverse("console:policies"), {"tenant": other_tenant.slug})
    assert page.context["tenant"] == other_tenant
    assert {policy.tenant for policy, _ in page.context["rows"]} == {other_tenant}
    assert 'name="tenant"' in page.content.decode()


def test_policy_pages_send_anonymous_visitors_to_login(client, tenant):
    policy = policy_of(tenant)
    for url in (reverse("console:policies"), reverse("console:policy_detail", args=[policy.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_cannot_see_policies(nobody_client, tenant):
    policy = policy_of(tenant)
    assert nobody_client.get(reverse("console:policies")).status_code == 403
    assert nobody_client.get(reverse("console:policy_detail", args=[policy.pk])).status_code == 403


def test_a_reader_sees_every_setting_read_only(reader_client, tenant):
    policy = policy_of(tenant)
    page = reader_client.get(reverse("console:policy_detail", args=[policy.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    for label in ("External recipients in a rolling hour", "All recipients in a rolling 24 hours"):
        assert label in html  # each threshold in words (issue 16), not its key
    assert "500 recipients / hour" in html
    assert "Restrict the user until the next day" in html
    assert "Save settings" not in html
    assert "Save override" not in html


@pytest.mark.parametrize("persona", ["reader_client", "operator_client"])
def test_only_administrators_may_change_a_policy(request, persona, tenant):
    client = request.getfixturevalue(persona)
    policy = policy_of(tenant)
    url = reverse("console:policy_detail", args=[policy.pk])
    forged = client.post(url, _form_data(policy, threshold_external_per_hour=5))
    assert forged.status_code == 403
    mailbox = make_mailbox(tenant, "news@example.com")
    add = client.post(
        reverse("console:policy_override_add", args=[policy.pk]),
        {"mailbox_address": mailbox.address, "threshold_external_per_hour": 5000},
    )
    assert add.status_code == 403
    policy.refresh_from_db()
    assert policy.thresholds["external_per_hour"] == 500
    assert not PolicyOverride.objects.exists()
    assert not _updates(policy).exists()


def test_an_administrator_changes_thresholds_and_the_change_is_audited(
    administrator_client, administrator, tenant
):
    policy = policy_of(tenant)
    response = administrator_client.post(
        reverse("console:policy_detail", args=[policy.pk]),
        _form_data(
            policy, threshold_external_per_hour=200, severity="high", exclude_departments="Marketing\nPR"
        ),
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.thresholds == {"external_per_hour": 200, "internal_per_hour": 1000, "total_per_day": 1000}
    assert policy.severity == "high"
    assert policy.exclude_departments == ["Marketing", "PR"]
    event = _updates(policy).get()
    assert event.actor == administrator
    assert event.before["thresholds"]["external_per_hour"] == 500
    assert event.after["thresholds"]["external_per_hour"] == 200
    assert event.before["severity"] == "medium" and event.after["severity"] == "high"
    assert "enabled" not in event.after  # only what changed is recorded


def test_an_administrator_changes_the_mail_settings_and_the_change_is_audited(
    administrator_client, administrator, tenant
):
    policy = policy_of(tenant)
    assert (policy.notify_min_severity, policy.notify_daily_limit) == ("medium", 20)
    url = reverse("console:policy_detail", args=[policy.pk])
    form_page = administrator_client.get(url).content.decode()
    assert 'name="notify_min_severity"' in form_page and 'name="notify_daily_limit"' in form_page

    response = administrator_client.post(
        url, _form_data(policy, notify_min_severity="high", notify_daily_limit=5)
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.notify_min_severity, policy.notify_daily_limit) == ("high", 5)
    event = _updates(policy).get()
    assert event.actor == administrator
    assert event.before == {"notify_daily_limit": 20, "notify_min_severity": "medium"}
    assert event.after == {"notify_daily_limit": 5, "notify_min_severity": "high"}
    page = administrator_client.get(url).content.decode()
    assert "5 per UTC day" in page


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        (
            {"notify_daily_limit": 10_001},
            "notify_daily_limit",
            "must be between 0 and 10000 notifications a day",
        ),
        ({"notify_daily_limit": -1}, "notify_daily_limit", "must be between 0 and 10000 notifications a day"),
        ({"notify_min_severity": "urgent"}, "notify_min_severity", None),
    ],
)
def test_bad_mail_settings_are_refused_on_their_field(administrator_client, tenant, changes, field, error):
    policy = policy_of(tenant)
    response = administrator_client.post(
        reverse("console:policy_detail", args=[policy.pk]), _form_data(policy, **changes)
    )
    assert response.status_code == 200
    errors = response.context["form"].errors[field]
    if error is not None:
        assert errors == [error]
    policy.refresh_from_db()
    assert (policy.notify_min_severity, policy.notify_daily_limit) == ("medium", 20)
    assert not _updates(policy).exists()


@pytest.mark.parametrize(("value", "accepted"), [(0, True), (10_000, True), (10_001, False), (-1, False)])
def test_sending_limits_accept_0_to_10000(administrator_client, tenant, value, accepted):
    policy = policy_of(tenant)
    response = administrator_client.post(
        reverse("console:policy_detail", args=[policy.pk]), _form_data(policy, threshold_total_per_day=value)
    )
    policy.refresh_from_db()
    if accepted:
        assert response.status_code == 302
        assert policy.thresholds["total_per_day"] == value
    else:
        assert response.status_code == 200
        form = response.context["form"]
        assert form.errors["threshold_total_per_day"] == ["must be between 0 and 10000"]
        html = response.content.decode()
        assert "must be between 0 and 10000" in html and "Nothing was saved" in html
        assert policy.thresholds["total_per_day"] == 1000
        assert not _updates(policy).exists()


def test_a_policy_that_is_not_the_sending_limit_cannot_restrict(administrator_client, tenant):
    policy = policy_of(tenant, AlertPolicy.Kind.FORWARDING)
    response = administrator_client.post(
        reverse("console:policy_detail", args=[policy.pk]),
        _form_data(policy, action=AlertPolicy.Action.RESTRICT_UNTIL_RELEASED),
    )
    assert response.status_code == 200
    assert response.context["form"].errors["action"] == ["only the sending limit policy can restrict users"]
    policy.refresh_from_db()
    assert policy.action == AlertPolicy.Action.ALERT_ONLY


def test_bad_addresses_in_the_form_are_shown_on_their_field(administrator_client, tenant):
    policy = policy_of(tenant)
    response = administrator_client.post(
        reverse("console:policy_detail", args=[policy.pk]),
        _form_data(policy, notify_recipients="not an address"),
    )
    assert response.status_code == 200
    assert "is not an email address" in response.context["form"].errors["notify_recipients"][0]


# ------------------------------------------------------------------------------------------------ overrides


def test_an_administrator_adds_an_expiring_override_and_it_applies_until_it_expires(
    administrator_client, tenant
):
    policy = policy_of(tenant)
    mailbox = make_mailbox(tenant, "newsletter@example.com")
    expires = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    response = administrator_client.post(
        reverse("console:policy_override_add", args=[policy.pk]),
        {
            "mailbox_address": "Newsletter@Example.com",
            "threshold_external_per_hour": 5000,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M"),
            "note": "monthly newsletter",
        },
    )
    assert response.status_code == 302
    override = PolicyOverride.objects.get()
    assert (override.mailbox_address, override.thresholds, override.expires_at) == (
        mailbox.address,
        {"external_per_hour": 5000},
        expires,
    )
    page = administrator_client.get(reverse("console:policy_detail", args=[policy.pk])).content.decode()
    assert "newsletter@example.com" in page and "monthly newsletter" in page
    event = AuditEvent.objects.for_target(policy).get(action="alerts.policy.override_set")
    assert event.after["thresholds"] == {"external_per_hour": 5000}
    policy = AlertPolicy.objects.prefetch_related("overrides").get(pk=policy.pk)
    assert policy.thresholds_for(mailbox.address)["external_per_hour"] == 5000
    assert policy.thresholds_for("someone@example.com")["external_per_hour"] == 500
    with time_machine.travel(expires + timedelta(minutes=1)):
        assert policy.thresholds_for(mailbox.address)["external_per_hour"] == 500
        page = administrator_client.get(reverse("console:policy_detail", args=[policy.pk])).content.decode()
        assert "Expired" in page


def test_an_override_is_refused_for_an_unknown_mailbox_or_a_past_expiry(administrator_client, tenant):
    policy = policy_of(tenant)
    make_mailbox(tenant, "known@example.com")
    url = reverse("console:policy_override_add", args=[policy.pk])
    unknown = administrator_client.post(
        url, {"mailbox_address": "ghost@example.com", "threshold_total_per_day": 5}
    )
    assert unknown.status_code == 200
    assert "is not a mailbox" in unknown.context["override_form"].errors["mailbox_address"][0]
    past = administrator_client.post(
        url,
        {
            "mailbox_address": "known@example.com",
            "threshold_total_per_day": 5,
            "expires_at": "2001-01-01T00:00",
        },
    )
    assert past.context["override_form"].errors["expires_at"] == ["must be in the future"]
    too_high = administrator_client.post(
        url, {"mailbox_address": "known@example.com", "threshold_total_per_day": 10_001}
    )
    assert too_high.context["override_form"].errors["threshold_total_per_day"] == [
        "must be between 0 and 10000"
    ]
    assert "The override was not saved" in too_high.content.decode()
    assert not PolicyOverride.objects.exists()


def test_an_administrator_removes_an_override_and_it_is_audited(administrator_client, administrator, tenant):
    from alerts.services import set_policy_override

    policy = policy_of(tenant)
    make_mailbox(tenant, "bulk@example.com")
    override = set_policy_override(
        policy, actor=administrator, mailbox_address="bulk@example.com", thresholds={"total_per_day": 9000}
    )
    response = administrator_client.post(
        reverse("console:policy_override_remove", args=[policy.pk, override.pk])
    )
    assert response.status_code == 302
    assert not PolicyOverride.objects.exists()
    event = AuditEvent.objects.for_target(policy).get(action="alerts.policy.override_removed")
    assert event.before == {"mailbox": "bulk@example.com", "thresholds": {"total_per_day": 9000}}


def test_an_operator_cannot_remove_an_override(operator_client, administrator, tenant):
    from alerts.services import set_policy_override

    policy = policy_of(tenant)
    make_mailbox(tenant, "bulk@example.com")
    override = set_policy_override(
        policy, actor=administrator, mailbox_address="bulk@example.com", thresholds={"total_per_day": 9000}
    )
    url = reverse("console:policy_override_remove", args=[policy.pk, override.pk])
    assert operator_client.post(url).status_code == 403
    assert PolicyOverride.objects.filter(pk=override.pk).exists()


# ------------------------------------------------------------------------------------------------ API


def test_the_api_lists_policies_with_their_limits(reader_client, tenant):
    response = reader_client.get("/api/v1/policies/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 10
    sending = next(p for p in body["results"] if p["kind"] == SENDING)
    assert sending["thresholds"]["external_per_hour"] == 500
    assert sending["threshold_limits"]["external_per_hour"]["maximum"] == 10_000
    assert sending["tenant"] == tenant.slug


def test_the_api_refuses_anonymous_callers(client, tenant):
    assert client.get("/api/v1/policies/").status_code in (401, 403)


@pytest.mark.parametrize("persona", ["reader_client", "operator_client"])
def test_the_api_lets_only_administrators_patch_a_policy(request, persona, tenant):
    client = request.getfixturevalue(persona)
    policy = policy_of(tenant)
    response = client.patch(
        f"/api/v1/policies/{policy.pk}/", {"enabled": False}, content_type="application/json"
    )
    assert response.status_code == 403
    policy.refresh_from_db()
    assert policy.enabled


def test_an_administrator_patches_a_policy_through_the_api(administrator_client, administrator, tenant):
    policy = policy_of(tenant)
    response = administrator_client.patch(
        f"/api/v1/policies/{policy.pk}/",
        {"thresholds": {"internal_per_hour": 0}, "enabled": False},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["thresholds"]["internal_per_hour"] == 0
    assert response.json()["enabled"] is False
    event = _updates(policy).get()
    assert event.before == {"enabled": True, "thresholds": policy.thresholds}
    assert event.after["thresholds"]["internal_per_hour"] == 0


@pytest.mark.parametrize(
    ("kind", "payload", "errors"),
    [
        (SENDING, {"thresholds": {"external_per_hour": 10_001}}, {"thresholds.external_per_hour"}),
        (SENDING, {"thresholds": {"external_per_hour": "many"}}, {"thresholds.external_per_hour"}),
        (SENDING, {"thresholds": {"per_minute": 5}}, {"thresholds.per_minute"}),
        (SENDING, {"severity": "critical", "action": "nuke"}, {"severity", "action"}),
        (SENDING, {"investigate_mode": "sometimes", "scope": "some"}, {"investigate_mode", "scope"}),
        (SENDING, {"aggregation_minutes": 0}, {"aggregation_minutes"}),
        (SENDING, {"name": "Renamed", "kind": "delegation"}, {"name", "kind"}),
        (AlertPolicy.Kind.FORWARDING, {"action": "restrict_until_next_day"}, {"action"}),
        (
            AlertPolicy.Kind.FORWARDING,
            {"thresholds": {"external_per_hour": 5}},
            {"thresholds.external_per_hour"},
        ),
    ],
)
def test_the_api_answers_400_with_errors_by_field_and_changes_nothing(
    administrator_client, tenant, kind, payload, errors
):
    policy = policy_of(tenant, kind)
    before = AlertPolicy.objects.filter(pk=policy.pk).values().get()
    response = administrator_client.patch(
        f"/api/v1/policies/{policy.pk}/", payload, content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == errors
    assert AlertPolicy.objects.filter(pk=policy.pk).values().get() == before
    assert not _updates(policy).exists()


def test_the_api_sets_lists_and_removes_overrides(administrator_client, reader_client, tenant):
    policy = policy_of(tenant)
    make_mailbox(tenant, "owner@example.com")
    url = f"/api/v1/policies/{policy.pk}/overrides/"
    expires = (timezone.now() + timedelta(days=1)).isoformat()
    forged = reader_client.post(
        url,
        {"mailbox_address": "owner@example.com", "thresholds": {"total_per_day": 5}},
        content_type="application/json",
    )
    assert forged.status_code == 403
    created = administrator_client.post(
        url,
        {
            "mailbox_address": "owner@example.com",
            "thresholds": {"total_per_day": 5000},
            "expires_at": expires,
        },
        content_type="application/json",
    )
    assert created.status_code == 201
    assert created.json()["thresholds"] == {"total_per_day": 5000}
    assert created.json()["active"] is True
    listed = reader_client.get(url).json()
    assert [o["mailbox_address"] for o in listed] == ["owner@example.com"]
    bad = administrator_client.post(
        url,
        {"mailbox_address": "owner@example.com", "thresholds": {"total_per_day": -5}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"thresholds.total_per_day": "must be between 0 and 10000"}
    assert reader_client.delete(f"{url}{created.json()['id']}/").status_code == 403
    assert administrator_client.delete(f"{url}{created.json()['id']}/").status_code == 204
    assert not PolicyOverride.objects.exists()
    actions = set(AuditEvent.objects.for_target(policy).values_list("action", flat=True))
    assert {"alerts.policy.override_set", "alerts.policy.override_removed"} <= actions


def test_a_read_token_sees_only_its_tenant_and_cannot_patch(administrator, tenant, other_tenant, client):
    policy_of(tenant)
    foreign = policy_of(other_tenant)
    token, raw = create_api_token(tenant, actor=administrator, name="siem", scope=ApiToken.Scope.READ)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    listed = client.get("/api/v1/policies/", **auth).json()
    assert listed["count"] == 10
    assert {p["tenant"] for p in listed["results"]} == {tenant.slug}
    assert client.get(f"/api/v1/policies/{foreign.pk}/", **auth).status_code == 404
    own = AlertPolicy.objects.get(tenant=tenant, kind=SENDING)
    patched = client.patch(
        f"/api/v1/policies/{own.pk}/", {"enabled": False}, content_type="application/json", **auth
    )
    assert patched.status_code == 403


def test_an_ingest_token_reads_no_policy(administrator, tenant, client):
    token, raw = create_api_token(tenant, actor=administrator, name="gateway", scope=ApiToken.Scope.INGEST)
    assert client.get("/api/v1/policies/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 403
