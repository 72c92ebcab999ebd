"""From a mailbox's page an operator starts an investigation; an administrator restricts by hand."""

import pytest
from django.urls import reverse

from alerts.models import Alert
from investigations.models import Investigation
from mailboxes.models import Mailbox
from restricted_users.models import Restriction

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(tenant):
    return Mailbox.objects.create(tenant=tenant, address="carol@contoso.example", display_name="Carol")


def test_an_operator_starts_an_investigation_from_the_mailbox_page(
    operator_client, mailbox, django_capture_on_commit_callbacks
):
    page = operator_client.get(reverse("console:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "Start investigation" in page
    assert "Restrict from sending" not in page  # administrators only
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            reverse("console:investigation_start"), {"mailbox": mailbox.pk, "comment": "user called"}
        )
    investigation = Investigation.objects.get(mailbox=mailbox)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:investigation_detail", args=[investigation.pk])
    alert = Alert.objects.get(mailbox=mailbox)
    assert alert.policy.name == "Admin triggered user compromise investigation"
    investigation.refresh_from_db()
    assert investigation.status == Investigation.Status.NO_THREATS  # ran in-process on commit: nothing found


def test_a_reader_cannot_start_an_investigation(reader_client, mailbox):
    assert (
        "Start investigation"
        not in reader_client.get(reverse("console:mailbox_detail", args=[mailbox.pk])).content.decode()
    )
    assert (
        reader_client.post(reverse("console:investigation_start"), {"mailbox": mailbox.pk}).status_code == 403
    )
    assert not Investigation.objects.exists()


def test_an_administrator_restricts_by_hand_from_the_mailbox_page(administrator_client, mailbox):
    page = administrator_client.get(reverse("console:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "Restrict from sending" in page
    response = administrator_client.post(
        reverse("console:restrict_by_hand"),
        {"mailbox": mailbox.pk, "reason": "phoned in: lost laptop", "until": "released"},
    )
    restriction = Restriction.objects.active().get(mailbox=mailbox)
    assert response["Location"] == reverse("console:restricted_user_detail", args=[restriction.pk])
    assert restriction.expires_at is None
