import pytest

from console.context_processors import NAVIGATION
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("persona", ["reader", "operator", "administrator"])
def test_each_role_signs_in_and_walks_the_navigation(page, persona, request):
    user = request.getfixturevalue(persona)
    sign_in(page, user.username)
    assert page.locator("h1").first.inner_text()
    for label, _, _ in NAVIGATION:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        page.wait_for_load_state()
        assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == label
        assert page.locator("h1").first.is_visible()
    assert page.console_errors == []
    assert page.foreign_requests == []


def test_a_wrong_password_keeps_the_visitor_out(page, reader):
    page.goto("/audit/")
    assert "/login/" in page.url
    page.get_by_label("Username").fill(reader.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").is_visible()
    assert "/login/" in page.url


def test_signing_out_returns_to_login(page, operator):
    sign_in(page, operator.username)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    page.goto("/")
    assert "/login/" in page.url
