import csv
import io

import pytest
from django.urls import reverse

from core.exceptions import AuditIsAppendOnly
from core.models import AuditEvent, ChangeFeedEntry
from core.services import create_api_token, record_audit, revoke_api_token

pytestmark = pytest.mark.django_db


def _audit_event(tenant, administrator):
    return record_audit(
        "core.tenant.renamed", target=tenant, actor=administrator, before={"name": "a"}, after={"name": "b"}
    )


def _change_feed_entry(tenant, administrator):
    return ChangeFeedEntry.objects.create(kind="alert.raised", tenant=tenant, target_id="7", payload={"n": 1})


@pytest.mark.parametrize("append", [_audit_event, _change_feed_entry], ids=["audit_event", "feed_entry"])
def test_append_only_rows_cannot_be_changed_or_deleted(append, administrator, tenant):
    row = append(tenant, administrator)
    model, target_id = type(row), row.target_id
    row.target_id = "changed"
    with pytest.raises(AuditIsAppendOnly, match="cannot be changed"):
        row.save()
    with pytest.raises(AuditIsAppendOnly, match="cannot be deleted"):
        row.delete()
    with pytest.raises(AuditIsAppendOnly, match="cannot be changed"):
        model.objects.all().update(target_id="x")
    with pytest.raises(AuditIsAppendOnly, match="cannot be deleted"):
        model.objects.all().delete()
    assert model.objects.get().target_id == target_id


def test_an_audit_row_names_who_what_target_and_tenant(administrator, tenant):
    event = record_audit(
        "core.tenant.renamed",
        target=tenant,
        actor=administrator,
        before={"name": "a"},
        after={"name": "b"},
        comment="typo",
    )
    assert event.actor_label == administrator.username
    assert (event.target_type, event.target_id) == ("core.tenant", str(tenant.pk))
    assert event.tenant == tenant
    assert event.before == {"name": "a"} and event.after == {"name": "b"}


def test_work_done_by_the_system_is_attributed_to_system(tenant):
    assert record_audit("core.tenant.checked", target=tenant).actor_label == "system"


def test_token_creation_and_revocation_are_audited(administrator, tenant):
    token, _ = create_api_token(tenant, actor=administrator, name="gateway", scope="ingest")
    revoke_api_token(token, actor=administrator)
    revoke_api_token(token, actor=administrator)  # a second revoke changes nothing and writes nothing
    actions = list(AuditEvent.objects.for_target(token).order_by("id").values_list("action", flat=True))
    assert actions == ["core.api_token.created", "core.api_token.revoked"]


def test_the_audit_row_carries_the_request_id_of_the_page_that_caused_it(administrator_client, tenant):
    response = administrator_client.post(
        reverse("console:api_tokens"),
        {"name": "gateway", "tenant": tenant.pk, "scope": "ingest"},
        HTTP_X_REQUEST_ID="req-12345",
    )
    assert response["X-Request-ID"] == "req-12345"
    assert AuditEvent.objects.get(action="core.api_token.created").request_id == "req-12345"


def test_the_audit_log_page_filters_and_exports_csv(reader_client, administrator, tenant):
    record_audit("core.tenant.renamed", target=tenant, actor=administrator, comment="=HYPERLINK(1)")
    record_audit("core.tenant.checked", target=tenant)
    page = reader_client.get(reverse("console:audit_log"), {"action": "renamed"})
    assert [e.action for e in page.context["object_list"]] == ["core.tenant.renamed"]
    assert page.context["result_count"] == 1
    export = reader_client.get(reverse("console:audit_log"), {"action": "renamed", "format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:3] == ["time", "actor", "action"]
    assert len(rows) == 2
    assert rows[1][8] == "'=HYPERLINK(1)"  # formulas from untrusted text are neutralised


def test_the_audit_log_page_query_count_does_not_grow_with_rows(
    reader_client, tenant, django_assert_max_num_queries
):
    for i in range(60):
        record_audit(f"core.tenant.check_{i}", target=tenant)
    with django_assert_max_num_queries(12):
        assert reader_client.get(reverse("console:audit_log")).status_code == 200
