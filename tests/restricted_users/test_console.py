"""The Restricted users pages: who may see and do what, the list's filters and export, the detail, the release
flow with its confirmation."""

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from core.models import AuditEvent
from restricted_users import services
from restricted_users.models import CHECKLIST_ITEMS, Restriction
from tests.builders import assert_list_queries_do_not_grow

from .conftest import ALL_ATTESTED, MORNING

pytestmark = pytest.mark.django_db

LIST = reverse("console:restricted_users")
RELEASE_FORM = {
    "reason": "Password reset and rules removed",
    **{f"attest_{item}": "on" for item in CHECKLIST_ITEMS},
}


def detail_url(restriction) -> str:
    return reverse("console:restricted_user_detail", args=[restriction.pk])


def release_url(restriction) -> str:
    return reverse("console:restriction_release", args=[restriction.pk])


# ------------------------------------------------------------------------------------------------ permissions


def test_anonymous_visitors_are_sent_to_login(client, mailbox, restrict):
    restriction = restrict(mailbox)
    for url in (LIST, detail_url(restriction)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    for url in (release_url(restriction), reverse("console:restrict_by_hand")):
        assert client.post(url, RELEASE_FORM).status_code == 302
    assert Restriction.objects.active().get() == restriction


def test_a_user_without_a_role_is_refused(nobody_client, mailbox, restrict):
    restriction = restrict(mailbox)
    assert nobody_client.get(LIST).status_code == 403
    assert nobody_client.get(detail_url(restriction)).status_code == 403


def test_a_reader_sees_the_list_and_detail_but_no_release_form(reader_client, mailbox, restrict):
    restriction = restrict(mailbox)
    assert mailbox.address in reader_client.get(LIST).content.decode()
    page = reader_client.get(detail_url(restriction))
    assert page.status_code == 200
    assert "Release this user" not in page.content.decode()
    assert page.context["release_form"] is None


@pytest.mark.parametrize("persona", ["reader_client", "operator_client"])
def test_a_forged_release_or_restrict_post_is_refused(request, persona, mailbox, restrict, make_mailbox):
    client = request.getfixturevalue(persona)
    restriction = restrict(mailbox)
    other = make_mailbox("bob@example.com")
    assert client.post(release_url(restriction), {**RELEASE_FORM, "confirm": "yes"}).status_code == 403
    forged = client.post(reverse("console:restrict_by_hand"), {"mailbox": other.pk, "reason": "x"})
    assert forged.status_code == 403
    assert Restriction.objects.active().get() == restriction


def test_pages_only_accept_the_right_methods(administrator_client, mailbox, restrict):
    restriction = restrict(mailbox)
    assert administrator_client.get(release_url(restriction)).status_code == 405
    assert administrator_client.get(reverse("console:restrict_by_hand")).status_code == 405


# ------------------------------------------------------------------------------------------------ list


def test_the_list_shows_restricted_users_now_by_default_and_filters_by_state(
    reader_client, make_mailbox, restrict, administrator
):
    alice, bob, carol = (make_mailbox(f"{n}@example.com") for n in ("alice", "bob", "carol"))
    with time_machine.travel(MORNING - timedelta(days=2), tick=False):
        restrict(carol)  # expired since
    with time_machine.travel(MORNING, tick=False):
        restrict(alice)
        services.release_user(restrict(bob), actor=administrator, reason="Clean", attestations=ALL_ATTESTED)

        def addresses(query: str = "") -> set[str]:
            response = reader_client.get(f"{LIST}{query}")
            return {r.mailbox.address for r in response.context["object_list"]}

        assert addresses() == {"alice@example.com"}
        assert addresses("?state=") == {"alice@example.com", "bob@example.com", "carol@example.com"}
        assert addresses("?state=released") == {"bob@example.com"}
        assert addresses("?state=expired") == {"carol@example.com"}
        assert addresses("?state=&q=CAR") == {"carol@example.com"}
        assert addresses(f"?state=&mailbox={bob.pk}") == {"bob@example.com"}
        response = reader_client.get(f"{LIST}?state=&ordering=address")
        assert [r.mailbox.address for r in response.context["object_list"]][0] == "alice@example.com"
        assert response.context["result_count"] == 3


def test_the_list_searches_display_names_and_shows_the_tenant_filter_only_with_two_tenants(
    reader_client, make_mailbox, restrict, other_tenant
):
    restrict(make_mailbox("x1@example.com", display_name="Zoë Finance"))
    restrict(make_mailbox("x2@example.org", tenant_=other_tenant))
    response = reader_client.get(f"{LIST}?q=zoë")
    assert [r.mailbox.address for r in response.context["object_list"]] == ["x1@example.com"]
    assert "tenant" in response.context["filter"].form.fields
    response = reader_client.get(f"{LIST}?tenant=other")
    assert [r.mailbox.address for r in response.context["object_list"]] == ["x2@example.org"]


def test_a_single_tenant_deployment_has_no_tenant_filter(reader_client, mailbox, restrict):
    restrict(mailbox)
    assert "tenant" not in reader_client.get(LIST).context["filter"].form.fields


def test_the_list_exports_the_filtered_set_as_csv(reader_client, make_mailbox, restrict):
    restrict(make_mailbox("alice@example.com"))
    restrict(make_mailbox("=cmd@example.com", display_name="=HYPERLINK(1)"))
    response = reader_client.get(f"{LIST}?format=csv&q=alice")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["user"], r["state"], r["policy"]) for r in rows] == [
        ("alice@example.com", "active", "Email sending limit exceeded")
    ]
    rows = list(
        csv.DictReader(
            io.StringIO(b"".join(reader_client.get(f"{LIST}?format=csv&q=cmd").streaming_content).decode())
        )
    )
    assert rows[0]["display_name"] == "'=HYPERLINK(1)"


def test_an_htmx_request_gets_only_the_rows(reader_client, mailbox, restrict):
    restrict(mailbox)
    html = reader_client.get(LIST, headers={"HX-Request": "true"}).content.decode()
    assert mailbox.address in html
    assert "<html" not in html


def test_the_list_query_count_does_not_grow_with_rows(
    reader_client, make_mailbox, restrict, django_assert_max_num_queries
):
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            restrict(make_mailbox(f"user{i}@example.com"))

    assert_list_queries_do_not_grow(reader_client, LIST, add, django_assert_max_num_queries)


# ------------------------------------------------------------------------------------------------ detail


def test_the_detail_shows_why_and_the_history(reader_client, mailbox, restrict, administrator):
    with time_machine.travel(MORNING - timedelta(days=3), tick=False):
        services.release_user(
            restrict(mailbox), actor=administrator, reason="First time", attestations=ALL_ATTESTED
        )
    with time_machine.travel(MORNING, tick=False):
        restriction = restrict(mailbox)
        response = reader_client.get(detail_url(restriction))
    html = response.content.decode()
    assert "Email sending limit exceeded" in html
    # In words with their unit (issue 16: no bare "Count 612", no snake_case measure names).
    assert dict(response.context["reason_rows"])["Count"] == "612 recipients"
    assert dict(response.context["reason_rows"])["Threshold"] == "500 recipients"
    assert response.context["reason_counts"] == [("External", "612 recipients"), ("Internal", "3 recipients")]
    assert [r.release_reason for r in response.context["history"]] == ["First time"]
    assert [e.action for e in response.context["audit_events"]] == ["restricted_users.restriction.placed"]


@time_machine.travel(MORNING, tick=False)
def test_the_detail_shows_the_alerts_and_the_mail_around_the_breach(
    reader_client, mailbox, make_mailbox, restrict
):
    from alerts.models import Alert
    from alerts.services import ensure_default_policies, raise_restriction_alert

    restriction = restrict(mailbox)
    caused = raise_restriction_alert(restriction.pk)
    policies = ensure_default_policies(mailbox.tenant)
    older = Alert.objects.create(
        tenant=mailbox.tenant,
        policy=policies["forwarding"],
        mailbox=mailbox,
        title="Suspicious email forwarding activity",
        severity="high",
        category="Threat management",
        first_activity_at=MORNING - timedelta(days=1),
        last_activity_at=MORNING - timedelta(days=1),
    )
    inside = [send(mailbox, f"in-{i}", MORNING.replace(hour=9, minute=i), "<b>Invoice</b>") for i in range(3)]
    send(mailbox, "before", MORNING.replace(hour=8), "Earlier")
    send(make_mailbox("bob@example.com"), "bob", MORNING.replace(hour=9), "Bob's")

    response = reader_client.get(detail_url(restriction))
    assert [a.pk for a in response.context["alerts"]] == [caused.pk]
    assert [a.pk for a in response.context["other_alerts"]] == [older.pk]
    assert [m.event_id for m in response.context["messages_around"]] == [m.event_id for m in reversed(inside)]
    html = response.content.decode()
    assert "&lt;b&gt;Invoice&lt;/b&gt;" in html
    assert "Earlier" not in html and "Bob&#x27;s" not in html


def send(sender, event_id: str, at, subject: str):
    from mailflow.models import MessageEvent

    return MessageEvent.objects.create(
        tenant=sender.tenant,
        event_id=event_id,
        time=at,
        sender=sender,
        recipients=["x@example.net"],
        recipient_count=1,
        internal_count=0,
        external_count=1,
        subject=subject,
        verdict="clean",
    )


def test_the_detail_escapes_telemetry(reader_client, make_mailbox, administrator):
    mailbox = make_mailbox("mallory@example.com", display_name="<script>alert(1)</script>")
    restriction, _ = services.restrict_by_hand(mailbox, actor=administrator, reason_text="<b>bold</b>")
    html = reader_client.get(detail_url(restriction)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html


# ---------------------------------------------------------------------------------------------- release flow


@time_machine.travel(MORNING, tick=False)
def test_an_administrator_releases_after_a_confirmation(administrator_client, mailbox, restrict):
    restriction = restrict(mailbox)
    page = administrator_client.get(detail_url(restriction))
    assert "Release this user" in page.content.decode()

    confirm = administrator_client.post(release_url(restriction), RELEASE_FORM)
    assert confirm.status_code == 200
    assert "Release now" in confirm.content.decode()
    assert Restriction.objects.active().get() == restriction, "nothing changes before the confirmation"

    hidden = dict(confirm.context["hidden_fields"])
    done = administrator_client.post(release_url(restriction), {**hidden, "confirm": "yes"}, follow=True)
    assert done.redirect_chain[-1][0] == detail_url(restriction)
    assert "can send mail again now" in done.content.decode()
    restriction.refresh_from_db()
    assert restriction.state == Restriction.State.RELEASED
    assert restriction.release_reason == "Password reset and rules removed"
    assert AuditEvent.objects.filter(action="restricted_users.restriction.released").exists()


@time_machine.travel(MORNING, tick=False)
def test_an_incomplete_checklist_is_shown_as_an_error(administrator_client, mailbox, restrict):
    restriction = restrict(mailbox)
    form = {k: v for k, v in RELEASE_FORM.items() if k != "attest_mfa_enforced"}
    response = administrator_client.post(release_url(restriction), {**form, "confirm": "yes"})
    assert response.status_code == 400
    assert "MFA enforced" in " ".join(response.context["release_form"].non_field_errors())
    assert Restriction.objects.active().get() == restriction


@time_machine.travel(MORNING, tick=False)
def test_past_the_cap_the_override_reason_is_asked_for_and_the_release_flagged(
    administrator_client, administrator, mailbox, restrict
):
    for _ in range(3):
        services.release_user(restrict(mailbox), actor=administrator, reason="ok", attestations=ALL_ATTESTED)
    restriction = restrict(mailbox)
    page = administrator_client.get(detail_url(restriction))
    assert page.context["past_cap"] is True
    assert "override_reason" in page.context["release_form"].fields
    refused = administrator_client.post(release_url(restriction), {**RELEASE_FORM, "confirm": "yes"})
    assert refused.status_code == 400
    assert "override reason" in " ".join(refused.context["release_form"].non_field_errors())
    administrator_client.post(
        release_url(restriction), {**RELEASE_FORM, "override_reason": "Board approved", "confirm": "yes"}
    )
    restriction.refresh_from_db()
    assert restriction.release_flagged is True


def test_the_override_field_is_hidden_below_the_cap(administrator_client, mailbox, restrict):
    page = administrator_client.get(detail_url(restrict(mailbox)))
    assert "override_reason" not in page.context["release_form"].fields


# ------------------------------------------------------------------------------------------------ by hand


def test_an_administrator_restricts_by_hand(administrator_client, mailbox):
    response = administrator_client.post(
        reverse("console:restrict_by_hand"),
        {"mailbox": mailbox.pk, "reason": "Phishing reported", "until": "released"},
    )
    restriction = Restriction.objects.active().get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(restriction)
    assert restriction.source == Restriction.Source.MANUAL
    assert restriction.expires_at is None


def test_restrict_by_hand_without_a_reason_goes_back_with_an_error(administrator_client, mailbox):
    response = administrator_client.post(
        reverse("console:restrict_by_hand"),
        {"mailbox": mailbox.pk, "reason": "", "next": "/mailboxes/"},
        follow=True,
    )
    assert response.redirect_chain[0][0] == "/mailboxes/"
    assert not Restriction.objects.exists()
    hostile = administrator_client.post(
        reverse("console:restrict_by_hand"),
        {"mailbox": mailbox.pk, "reason": "", "next": "https://evil.test/"},
    )
    assert hostile["Location"] == LIST
