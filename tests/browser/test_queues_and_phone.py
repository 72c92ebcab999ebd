"""The second pass on the analyst's console, in Chromium: bulk resolve of three alerts from the queue, filter
changes that keep one value per key in the address, phone width (390×844) without sideways page scroll on the
dashboard, alert queue, investigation and action center, and a reloaded POST-only URL that shows the friendly
page instead of the browser's error."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from alerts.models import Alert
from core.models import AuditEvent
from investigations.models import Investigation, RemediationAction
from restricted_users.models import Restriction
from tests.browser.conftest import sign_in
from tests.browser.test_flows import dialogs, simulated  # noqa: F401 - fixtures shared with the flows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _keys(url: str) -> list[str]:
    return [key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]


def test_an_operator_resolves_three_alerts_at_once(page, simulated, operator):  # noqa: F811
    sign_in(page, operator.username)
    page.goto("/alerts/?status=open")
    boxes = page.locator('input[name="ids"][form="alert-bulk"]')
    assert boxes.count() >= 3
    chosen = [int(boxes.nth(n).get_attribute("value")) for n in range(3)]
    for n in range(3):
        boxes.nth(n).check()
    page.get_by_label("Do").select_option("resolve")
    page.get_by_label("Classification (to resolve)").select_option("false_positive")
    page.get_by_role("button", name="Apply to selected").click()
    page.wait_for_load_state("networkidle")
    assert "3 alerts resolved." in page.locator(".messages").inner_text()
    assert "/alerts/?status=open" in page.url
    resolved = Alert.objects.filter(pk__in=chosen, status=Alert.Status.RESOLVED).count()
    assert resolved == 3
    assert (
        AuditEvent.objects.filter(
            action="alerts.alert.resolved", target_id__in=[str(pk) for pk in chosen]
        ).count()
        == 3
    )
    assert page.console_errors == []


def test_select_all_ticks_every_alert_of_the_page(page, simulated, operator):  # noqa: F811
    sign_in(page, operator.username)
    page.goto("/alerts/?status=open")
    page.get_by_label("Select every alert on this page").check()
    boxes = page.locator('input[name="ids"][form="alert-bulk"]')
    assert boxes.count() > 0
    assert all(boxes.nth(n).is_checked() for n in range(boxes.count()))


@pytest.mark.parametrize("path", ["/alerts/", "/action-center/", "/mailboxes/"])
def test_filter_changes_keep_one_value_per_key(page, simulated, operator, path):  # noqa: F811
    sign_in(page, operator.username)
    page.goto(path)
    selects = page.locator("form.filters select")
    changes = 0
    for n in range(selects.count()):
        options = selects.nth(n).locator("option")
        if options.count() < 2:
            continue
        with page.expect_response(lambda r: path in r.url):
            selects.nth(n).select_option(index=1)
        page.wait_for_load_state("networkidle")
        changes += 1
        if changes == 4:
            break
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert changes >= 2
    keys = _keys(page.url)
    assert keys and len(keys) == len(set(keys)), page.url
    export = page.get_by_role("link", name="Export CSV").get_attribute("href")
    assert len(_keys(export)) == len(set(_keys(export))), export


def test_phone_width_pages_do_not_scroll_sideways(browser, live_server, simulated, operator):  # noqa: F811
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, operator.username)
        investigation = Investigation.objects.order_by("pk").first()
        for path in ("/", "/alerts/", f"/investigations/{investigation.pk}/", "/action-center/"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, (path, scroll, inner)
        menu = page.get_by_role("button", name="Menu")
        assert menu.is_visible()
        assert not page.get_by_role("navigation", name="Main").is_visible()
        menu.click()
        assert menu.get_attribute("aria-expanded") == "true"
        assert page.get_by_role("navigation", name="Main").is_visible()
    finally:
        context.close()


def test_a_reloaded_post_only_url_shows_the_friendly_page(page, simulated, administrator):  # noqa: F811
    sign_in(page, administrator.username)
    restriction = Restriction.objects.active().first()
    action = RemediationAction.objects.order_by("pk").first()
    for path, back in (
        (f"/restricted-users/{restriction.pk}/release/", f"/restricted-users/{restriction.pk}/"),
        (f"/action-center/{action.pk}/undo/", "/action-center/"),
    ):
        response = page.goto(path)
        assert response.status == 405
        assert page.locator("h1").inner_text() == "This address only takes a form"
        link = page.get_by_role("link", name="Go to the page the action belongs to")
        assert link.get_attribute("href") == back
    page.reload()
    assert page.locator("h1").inner_text() == "This address only takes a form"
    # The page keeps its honest 405 status, which Chromium logs; nothing else may fail.
    assert [e for e in page.console_errors if "status of 405" not in e] == []


def test_the_investigation_tabs_work_with_the_keyboard(page, simulated, reader):  # noqa: F811
    sign_in(page, reader.username)
    investigation = Investigation.objects.order_by("pk").first()
    page.goto(f"/investigations/{investigation.pk}/")
    tabs = page.get_by_role("navigation", name="Investigation sections")
    overview = tabs.get_by_role("link", name="Overview")
    assert overview.get_attribute("aria-current") == "page"
    overview.focus()
    page.keyboard.press("Tab")  # the next tab: Graph
    assert page.evaluate("document.activeElement.textContent.trim()") == "Graph"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/investigations/{investigation.pk}/graph/")
    assert page.locator("h2#graph-heading").is_visible()
    assert tabs.get_by_role("link", name="Graph").get_attribute("aria-current") == "page"
    tabs.get_by_role("link", name="Log").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/investigations/{investigation.pk}/log/")
    assert page.locator("h2#log-heading").is_visible()
    page.go_back()
    page.wait_for_url(f"**/investigations/{investigation.pk}/graph/")
    assert page.console_errors == []


def test_a_form_error_below_the_fold_is_scrolled_to_and_focused(page, tenant, administrator):
    from alerts.services import ensure_default_policies

    policy = ensure_default_policies(tenant)["sending_limit"]
    sign_in(page, administrator.username)
    page.goto(f"/policies/{policy.pk}/")
    page.locator("#id_mailbox_address").fill("ghost@nowhere.example")
    page.get_by_role("button", name="Save override").click()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.activeElement.name") == "mailbox_address"
    top = page.evaluate("document.activeElement.getBoundingClientRect().top")
    assert 0 <= top <= page.viewport_size["height"]
    assert page.evaluate("window.scrollY") > 0
