"""Readable for everyone, checked on the HTML of every page: each form control has a label, each table
header a scope, severity is written out, messages and polled panels are live regions, the skip link lands on
<main>; and the flows that change things confirm first and require the comment the audit needs."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from investigations.models import RemediationAction
from tests.console.test_security import _every_page, frozen_time, hostile  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

CONTROLS = {"input", "select", "textarea"}
UNLABELLED_INPUTS = {"hidden", "submit", "button", "reset", "image"}


class _Audit(HTMLParser):
    """Collects form controls without a label and table headers without a scope."""

    def __init__(self) -> None:
        super().__init__()
        self.label_depth = 0
        self.label_for: set[str] = set()
        self.controls: list[dict] = []
        self.headers_without_scope: list[dict] = []
        self.in_thead = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label":
            self.label_depth += 1
            if attributes.get("for"):
                self.label_for.add(attributes["for"])
        elif tag in CONTROLS and attributes.get("type") not in UNLABELLED_INPUTS:
            self.controls.append({**attributes, "_tag": tag, "_wrapped": self.label_depth > 0})
        elif tag == "th" and "scope" not in attributes:
            self.headers_without_scope.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1

    def unlabelled(self) -> list[dict]:
        return [
            control
            for control in self.controls
            if not control["_wrapped"]
            and control.get("id") not in self.label_for
            and not control.get("aria-label")
            and not control.get("aria-labelledby")
        ]


@pytest.fixture
def admin_client_(administrator):
    from django.test import Client

    client = Client()
    client.force_login(administrator)
    return client


def test_every_control_is_labelled_and_every_header_has_a_scope(admin_client_, hostile):  # noqa: F811
    for url in _every_page(hostile):
        audit = _Audit()
        audit.feed(admin_client_.get(url).content.decode())
        assert audit.unlabelled() == [], url
        assert audit.headers_without_scope == [], url


def test_the_skip_link_lands_on_main_and_messages_are_announced(admin_client_, hostile):  # noqa: F811
    html = admin_client_.get(reverse("console:dashboard")).content.decode()
    assert '<a class="skip-link" href="#main">' in html
    assert '<main id="main" tabindex="-1">' in html
    assert "sev-mark" in html and ">High<" in html  # severity is written out, the colour only repeats it


def test_a_reject_confirmation_requires_a_comment_and_refuses_one_without(
    operator_client,
    hostile,  # noqa: F811
):
    action = RemediationAction.objects.get()
    decide = reverse("console:action_decide")
    page = operator_client.post(decide, {"ids": [action.pk], "decision": "reject"}).content.decode()
    assert 'name="comment" rows="3" maxlength="4000" required aria-required="true"' in page

    response = operator_client.post(decide, {"ids": [action.pk], "decision": "reject", "confirm": "yes"})

    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    action.refresh_from_db()
    assert action.status == RemediationAction.Status.PENDING


def test_readers_see_no_decision_release_or_stop_button(reader_client, hostile):  # noqa: F811
    for url in (hostile["investigation"], hostile["restriction"], reverse("console:action_center")):
        html = reader_client.get(url).content.decode()
        assert reverse("console:action_decide") not in html, url
        assert "/release/" not in html, url
        assert "/stop/" not in html, url
