"""The analyst's console in a browser, on a simulated tenant: each role walks the pages (lists and details)
without console errors, CSP violations or requests off the machine; the reader can neither see nor forge the
operators' and administrators' buttons; an operator remediates an investigation; an administrator releases a
restricted user, who can then send again; a hostile subject renders as text."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from django.utils import timezone

from alerts.models import Alert
from incidents.models import Incident
from investigations.models import Investigation, RemediationAction
from mailboxes.models import Mailbox
from mailflow.ingest import ingest_events
from mailflow.simulator import Scenario, SimulationConfig, default_end, simulate
from restricted_users.models import Restriction
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_SUBJECT = "<img src=x onerror=alert(1)>"
BATCH = 5000


def seed_tenant(tenant):
    """A small simulated tenant ending at the current hour, so its restrictions are in force now; the phishing
    lure's subject is replaced by markup. Detection and investigations run in-process as batches commit."""
    simulation = simulate(
        SimulationConfig(end=default_end(timezone.now()), mailboxes=30, days=8, compromised=4, seed=7)
    )
    phisher = next(c for c in simulation.ground_truth.compromised if c.scenario == Scenario.OUTBOUND_PHISH)
    lure = phisher.details["subject"]
    for event in simulation.events:
        if event["type"] == "message" and event.get("subject") == lure:
            event["subject"] = HOSTILE_SUBJECT
    for start in range(0, len(simulation.events), BATCH):
        result = ingest_events(tenant, simulation.events[start : start + BATCH], source="simulator")
        assert result.ok, result.errors[:3]
    return simulation


@pytest.fixture
def simulated(tenant, time_machine):
    # Noon today (the clock keeps ticking): the restrictions placed now are in force until midnight, whenever
    # the suite runs. The browser's cookies still see today's date.
    noon = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    time_machine.move_to(noon, tick=True)
    simulation = seed_tenant(tenant)
    assert Restriction.objects.active().exists(), "the simulated tenant should have a user restricted now"
    assert Investigation.objects.filter(status=Investigation.Status.PENDING_ACTION).exists()
    return simulation


@pytest.fixture
def dialogs(page):
    opened = []
    page.on("dialog", lambda dialog: (opened.append(dialog.message), dialog.dismiss()))
    return opened


def detail_pages() -> list[str]:
    alert = Alert.objects.order_by("-last_activity_at").first()
    restriction = Restriction.objects.active().order_by("pk").first()
    investigation = Investigation.objects.order_by("pk").first()
    mailbox = Mailbox.objects.filter(pk=restriction.mailbox_id).get()
    incident = Incident.objects.order_by("pk").first()
    return [
        f"/incidents/{incident.pk}/",
        f"/alerts/{alert.pk}/",
        f"/restricted-users/{restriction.pk}/",
        f"/investigations/{investigation.pk}/",
        f"/mailboxes/{mailbox.pk}/",
    ]


def send_a_breach_now(tenant, sender: str) -> None:
    """One message to 600 external recipients, now: over the hourly limit on its own."""
    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    message = {
        "id": f"breach-{sender}",
        "type": "message",
        "time": now.isoformat(),
        "sender": sender,
        "recipients": [f"reader{n}@outside{n % 7}.example.net" for n in range(600)],
        "subject": "Back in business",
        "verdict": "clean",
    }
    result = ingest_events(tenant, [message], source="api")
    assert result.ok and result.accepted == 1, result.errors


def open_page(page, path: str) -> None:
    response = page.goto(path)
    page.wait_for_load_state("networkidle")
    assert response.status == 200, (path, response.status)
    assert page.locator("h1").first.is_visible(), path


def assert_clean(page, dialogs) -> None:
    assert page.console_errors == []
    assert page.foreign_requests == []
    assert dialogs == []


@pytest.mark.parametrize("persona", ["reader", "operator", "administrator"])
def test_each_role_opens_every_list_and_detail_page_cleanly(page, dialogs, simulated, persona, request):
    from console.context_processors import NAVIGATION

    user = request.getfixturevalue(persona)
    sign_in(page, user.username)
    for label, _, _ in NAVIGATION:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        page.wait_for_load_state("networkidle")
        assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == label
    for path in detail_pages():
        open_page(page, path)
    assert_clean(page, dialogs)


def test_the_reader_sees_no_decisions_and_a_forged_one_is_refused(page, dialogs, simulated, reader):
    sign_in(page, reader.username)
    investigation = Investigation.objects.filter(status=Investigation.Status.PENDING_ACTION).first()
    restriction = Restriction.objects.active().first()
    for path in (
        f"/investigations/{investigation.pk}/",
        "/action-center/",
        f"/restricted-users/{restriction.pk}/",
    ):
        open_page(page, path)
        assert (
            page.get_by_role("button", name=re.compile(r"^(Approve|Reject|Review release|Release)")).count()
            == 0
        )
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    pending = RemediationAction.objects.filter(investigation=investigation, status="pending").first()
    forged = {
        "/action-center/decide/": {"ids": str(pending.pk), "decision": "approve", "confirm": "yes"},
        f"/restricted-users/{restriction.pk}/release/": {"reason": "forged", "confirm": "yes"},
    }
    for path, form in forged.items():
        response = page.request.post(path, form={"csrfmiddlewaretoken": token, **form})
        assert response.status == 403, (path, response.status)
        assert "Your role does not allow this" in response.text()
    pending.refresh_from_db()
    assert pending.status == RemediationAction.Status.PENDING
    assert Restriction.objects.active().filter(pk=restriction.pk).exists()
    assert_clean(page, dialogs)


def test_an_operator_approves_the_pending_actions_and_the_investigation_is_remediated(
    page, dialogs, simulated, operator
):
    investigation = Investigation.objects.filter(status=Investigation.Status.PENDING_ACTION).first()
    sign_in(page, operator.username)
    open_page(page, f"/investigations/{investigation.pk}/")
    approve = page.get_by_role("button", name="Approve…", exact=True)
    approved = 0
    while approve.count():
        approve.first.click()
        page.wait_for_load_state()
        page.get_by_role("button", name="Approve", exact=True).click()
        page.wait_for_url(f"**/investigations/{investigation.pk}/**")
        assert page.get_by_text(re.compile(r"approved\.")).first.is_visible()
        approved += 1
        assert approved < 20, "the Approve… buttons should run out"
    assert approved > 0
    status = page.locator("#investigation-status .status")
    for _ in range(60):
        if status.inner_text() == "Remediated":
            break
        page.wait_for_timeout(500)
        page.reload()
    assert status.inner_text() == "Remediated"
    assert not RemediationAction.objects.filter(
        investigation=investigation, status__in=RemediationAction.OPEN_STATUSES
    ).exists()
    assert_clean(page, dialogs)


def test_an_administrator_releases_a_user_who_can_then_send_again(
    page, dialogs, simulated, administrator, tenant
):
    restriction = Restriction.objects.active().select_related("mailbox").order_by("pk").first()
    mailbox = restriction.mailbox
    sign_in(page, administrator.username)
    open_page(page, f"/restricted-users/{restriction.pk}/")
    release = page.locator("section[aria-labelledby=release]")
    for box in release.locator("fieldset", has_text="Checklist").get_by_role("checkbox").all():
        box.check()
    release.get_by_label("Reason for release").fill("Password reset and sessions revoked; mail checked.")
    release.get_by_role("button", name="Review release…").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == f"Release {mailbox.address}?"
    page.get_by_role("button", name="Release now").click()
    page.wait_for_url(f"**/restricted-users/{restriction.pk}/")
    assert page.get_by_text(f"{mailbox.address} is released and can send mail again now.").is_visible()
    assert not Restriction.objects.active().filter(mailbox=mailbox).exists()

    # A released user who abuses again the same day is restricted again (the sending-limit policy
    # re-restricts after a release by default): a new restriction, the released one stays released.
    send_a_breach_now(tenant, mailbox.address)
    again = Restriction.objects.active().get(mailbox=mailbox)
    assert again.pk != restriction.pk
    restriction.refresh_from_db()
    assert restriction.released_at is not None
    assert_clean(page, dialogs)


def test_a_hostile_subject_renders_as_text(page, dialogs, simulated, reader):
    sign_in(page, reader.username)
    phisher = next(c for c in simulated.ground_truth.compromised if c.scenario == Scenario.OUTBOUND_PHISH)
    mailbox = Mailbox.objects.get(address=phisher.address)
    alert = Alert.objects.filter(mailbox=mailbox, policy__kind="sending_limit").order_by("pk").first()
    for path in (f"/alerts/{alert.pk}/", f"/mailboxes/{mailbox.pk}/"):
        open_page(page, path)
        assert page.get_by_text(HOSTILE_SUBJECT).first.is_visible(), path
        assert page.locator("img[src=x]").count() == 0
    assert_clean(page, dialogs)


def test_an_operator_follows_links_from_the_dashboard_to_undoing_an_action(
    page, dialogs, simulated, operator
):
    """Dashboard → Other alerts → Restricted users → a user → incident → investigation → approve → undo,
    following links only (no typed address after signing in), with no dead end on the way."""
    pending = RemediationAction.objects.filter(
        status=RemediationAction.Status.PENDING,
        action_type__in=RemediationAction.REVERSIBLE,
        investigation__incident_link__incident__restriction_links__restriction__in=Restriction.objects.active(),
    ).select_related("investigation__mailbox")
    action = pending.order_by("pk").first()
    assert action is not None, (
        "a restricted user of the simulated tenant should have a reversible action to decide"
    )
    address = action.investigation.mailbox.address
    incident = Incident.objects.get(investigation_links__investigation=action.investigation)

    sign_in(page, operator.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard", exact=True).click()
    page.locator("#restricted-count").click()  # the "Other alerts" card
    page.wait_for_url("**/restricted-users/**")
    page.locator("#rows").get_by_role("link", name=address, exact=True).first.click()
    page.wait_for_url(re.compile(r"/restricted-users/\d+/$"))
    page.locator("#restriction-incident").click()
    page.wait_for_url(f"**/incidents/{incident.pk}/")
    assert page.locator("h1").inner_text().endswith(f"involving {address}")
    assert page.get_by_text("First attacker activity").first.is_visible()
    page.locator("#incident-investigation").click()
    page.wait_for_url(f"**/investigations/{action.investigation_id}/**")

    row = page.locator(f"#action-{action.pk}")
    row.get_by_role("button", name="Approve…", exact=True).click()
    page.get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_url(f"**/investigations/{action.investigation_id}/**")
    action.refresh_from_db()
    assert action.status == RemediationAction.Status.COMPLETED, action.result

    page.locator(f"#action-{action.pk}").get_by_role("button", name="Undo…", exact=True).click()
    page.get_by_label("Why is it undone? (required)").fill("Approved by mistake in the browser test")
    page.get_by_role("button", name="Undo", exact=True).click()
    page.wait_for_url(f"**/investigations/{action.investigation_id}/**")
    assert page.get_by_text(re.compile(r"undone")).first.is_visible()
    action.refresh_from_db()
    assert action.status == RemediationAction.Status.UNDONE

    # No dead end: the investigation leads back to its incident, whose timeline tells the undo.
    page.locator("#investigation-incident").click()
    page.wait_for_url(f"**/incidents/{incident.pk}/")
    timeline = page.locator(".timeline")
    assert timeline.get_by_text("Action approved").first.is_visible()
    assert timeline.get_by_text("Action undone").first.is_visible()
    assert_clean(page, dialogs)
