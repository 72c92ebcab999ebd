"""Sub-addresses (``user+tag@domain``) belong to the mailbox ``user@domain`` (issue 15, row 13)."""

from __future__ import annotations

import pytest

from mailboxes.addresses import base_address


@pytest.mark.parametrize(
    ("address", "delimiter", "mailbox"),
    [
        ("jamal+x@contoso.example", "+", "jamal@contoso.example"),
        ("jamal+x+y@contoso.example", "+", "jamal@contoso.example"),
        ("jamal@contoso.example", "+", "jamal@contoso.example"),
        ("+jamal@contoso.example", "+", "+jamal@contoso.example"),  # nothing would be left: not a tag
        ("jamal-x@contoso.example", "+-", "jamal@contoso.example"),
        ("jamal+x@contoso.example", "", "jamal+x@contoso.example"),
        ("not-an-address", "+", "not-an-address"),
    ],
)
def test_a_sub_address_maps_to_its_mailbox(address, delimiter, mailbox):
    assert base_address(address, delimiter) == mailbox


def test_the_delimiter_comes_from_the_setting(settings):
    settings.RECIPIENT_DELIMITER = "_"
    assert base_address("jamal_x@contoso.example") == "jamal@contoso.example"
    assert base_address("jamal+x@contoso.example") == "jamal+x@contoso.example"
