"""The Microsoft 365 console pages: every role reads the connections and their connector status; only
administrators connect, test, pull now, change the credential, enable / disable and disconnect; the
credential is never shown again, not even in a form that comes back with an error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent, Tenant
from m365.models import M365Connection, PullCursor, PullRun, Source
from m365.pull import pull_connection
from m365.services import set_enabled
from tests.console.test_accessibility import _Audit
from tests.console.test_security import STYLE_ATTRIBUTE
from tests.m365 import fake_m365 as fake
from tests.m365 import fixtures

pytestmark = pytest.mark.django_db

# The connector's Django fixtures (settings pointed at the fake, a connected Contoso).
assert_no_credential = fixtures.assert_no_credential

LIST = reverse("console:m365_connections")
CONNECT = reverse("console:m365_connect")


def page(connection: M365Connection, name: str = "m365_connection") -> str:
    return reverse(f"console:{name}", args=[connection.pk])


def body(response) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def connect_form(m365, **overrides) -> dict[str, str]:
    return {
        "tenant": "",
        "name": "Fabrikam",
        "directory_id": m365.directory_id,
        "client_id": m365.client_id,
        "credential_type": "secret",
        "client_secret": m365.client_secret,
        "certificate": "",
        **overrides,
    }


# ------------------------------------------------------------------------------------------ permissions


def test_every_role_reads_the_pages_and_nobody_without_one(
    m365_connection, reader_client, operator_client, administrator_client, nobody_client
):
    for client in (reader_client, operator_client, administrator_client):
        assert client.get(LIST).status_code == 200
        assert client.get(page(m365_connection)).status_code == 200
        assert client.get(page(m365_connection), {"format": "csv"}).status_code == 200
    assert nobody_client.get(LIST).status_code == 403
    assert nobody_client.get(page(m365_connection)).status_code == 403


def test_the_header_links_to_the_connections_for_every_role(reader_client, administrator_client):
    for client in (reader_client, administrator_client):
        html = client.get(reverse("console:dashboard")).content.decode()
        assert f'<a href="{LIST}">Microsoft 365</a>' in html


def test_only_administrators_see_the_forms_and_buttons(m365_connection, reader_client, administrator_client):
    controls = [
        page(m365_connection, name)
        for name in (
            "m365_connection_test",
            "m365_connection_pull",
            "m365_connection_enabled",
            "m365_connection_credential",
            "m365_connection_disconnect",
        )
    ]
    reader_html = (
        reader_client.get(LIST).content.decode() + reader_client.get(page(m365_connection)).content.decode()
    )
    assert CONNECT not in reader_html
    assert [control for control in controls if control in reader_html] == []
    main = reader_client.get(page(m365_connection)).content.decode().split("<main")[1]
    above_the_runs = main.split('<h2 id="runs">')[0]
    assert "<button" not in above_the_runs and "<form" not in above_the_runs
    assert CONNECT in administrator_client.get(LIST).content.decode()
    admin_html = administrator_client.get(page(m365_connection)).content.decode()
    assert [control for control in controls if control not in admin_html] == []


def test_a_forged_post_without_the_csrf_token_is_refused(m365_connection, administrator):
    forger = Client(enforce_csrf_checks=True)
    forger.force_login(administrator)

    response = forger.post(page(m365_connection, "m365_connection_enabled"), {"enabled": "false"})

    assert response.status_code == 403
    m365_connection.refresh_from_db()
    assert m365_connection.enabled


def test_readers_and_operators_change_nothing(
    m365_settings, m365_connection, reader_client, operator_client, django_capture_on_commit_callbacks
):
    audit_before = AuditEvent.objects.count()
    before = M365Connection.objects.values().get(pk=m365_connection.pk)
    for client in (reader_client, operator_client):
        with django_capture_on_commit_callbacks() as queued:
            responses = [
                client.get(CONNECT),
                client.post(CONNECT, connect_form(m365_settings, directory_id="other-tenant-id")),
                client.post(page(m365_connection, "m365_connection_test")),
                client.post(page(m365_connection, "m365_connection_pull")),
                client.post(page(m365_connection, "m365_connection_enabled"), {"enabled": "false"}),
                client.get(page(m365_connection, "m365_connection_credential")),
                client.post(
                    page(m365_connection, "m365_connection_credential"),
                    {"credential_type": "secret", "client_secret": "another-long-secret"},
                ),
                client.get(page(m365_connection, "m365_connection_disconnect")),
                client.post(page(m365_connection, "m365_connection_disconnect")),
            ]
        assert [r.status_code for r in responses] == [403] * len(responses)
        assert queued == []
    assert M365Connection.objects.values().get(pk=m365_connection.pk) == before
    assert M365Connection.objects.count() == 1
    assert AuditEvent.objects.count() == audit_before
    assert m365_settings.requests == []  # not even a sign-in was tried


# ------------------------------------------------------------------------------------------- connecting


def test_an_administrator_connects_a_tenant_and_sees_its_test_at_once(m365_settings, administrator_client):
    response = administrator_client.post(CONNECT, connect_form(m365_settings))

    connection = M365Connection.objects.select_related("tenant").get()
    assert response.status_code == 302
    assert response.url == page(connection)
    assert connection.tenant.name == "Fabrikam"
    assert connection.tenant.connector_kind == Tenant.ConnectorKind.M365
    assert connection.directory_id == m365_settings.directory_id
    assert connection.test_ok is True and connection.tested_at is not None
    shown = administrator_client.get(response.url).content.decode()
    assert "is connected to Microsoft 365" in shown
    assert "Test connection: Signed in; every permission the connector uses is granted and every API" in shown
    assert_no_credential(shown, m365_settings.client_secret)


def test_an_existing_organisation_can_be_connected(m365_settings, tenant, administrator_client):
    response = administrator_client.post(CONNECT, connect_form(m365_settings, tenant=tenant.pk, name=""))

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.m365_connection.directory_id == m365_settings.directory_id
    assert tenant.connector_kind == Tenant.ConnectorKind.M365


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("directory_id", "not a GUID!", "The directory (tenant) ID must be a GUID or a domain."),
        ("client_id", "{app id}", "The application (client) ID must be a GUID."),
        ("client_secret", "Zq9-Kx", "The client secret looks wrong: paste the secret&#x27;s Value"),
        ("client_secret", "", "Paste the client secret."),
        ("name", "", "Name the new organisation, or choose an existing one."),
    ],
)
def test_a_bad_value_is_refused_with_a_clear_error_and_nothing_written(
    m365_settings, administrator_client, field, value, error
):
    tenants = Tenant.objects.count()
    data = connect_form(m365_settings, **{field: value})

    response = administrator_client.post(CONNECT, data)

    html = response.content.decode()
    assert response.status_code == 400
    assert error in html
    assert not M365Connection.objects.exists()
    assert Tenant.objects.count() == tenants
    assert m365_settings.requests == []
    # The password box comes back empty: neither this secret nor a valid one is rendered again.
    assert_no_credential(html, data["client_secret"] or m365_settings.client_secret)
    assert 'name="client_secret"' in html and 'type="password"' in html


def test_a_certificate_is_stored_by_thumbprint_and_its_pem_never_rendered(
    m365_settings, administrator_client
):
    without_key, _ = fixtures.self_signed_certificate(with_key=False)
    refused = administrator_client.post(
        CONNECT,
        connect_form(m365_settings, credential_type="certificate", client_secret="", certificate=without_key),
    )
    assert refused.status_code == 400
    assert (
        "The PEM must also hold the certificate&#x27;s unencrypted private key." in refused.content.decode()
    )
    assert "BEGIN CERTIFICATE" not in refused.content.decode()
    assert not M365Connection.objects.exists()

    pem, _ = fixtures.self_signed_certificate()
    response = administrator_client.post(
        CONNECT, connect_form(m365_settings, credential_type="certificate", client_secret="", certificate=pem)
    )

    connection = M365Connection.objects.get()
    assert response.status_code == 302
    assert connection.credential_type == M365Connection.Credential.CERTIFICATE
    assert connection.test_ok is True  # the fake accepts any certificate's signed assertion
    html = administrator_client.get(page(connection)).content.decode()
    assert connection.certificate_thumbprint in html
    assert "BEGIN" not in html and "PRIVATE KEY" not in html
    assert_no_credential(html, pem.splitlines()[1], pem.splitlines()[-2])


def test_a_wrong_secret_connects_but_shows_the_sign_in_error(m365_settings, administrator_client):
    response = administrator_client.post(
        CONNECT, connect_form(m365_settings, client_secret="wrong-Secret-123")
    )

    connection = M365Connection.objects.get()
    assert response.status_code == 302
    assert connection.test_ok is False
    assert connection.missing_permissions == []
    html = administrator_client.get(page(connection)).content.decode()
    assert "Sign-in error" in html
    assert "Invalid client secret provided" in html
    assert_no_credential(html, "wrong-Secret-123")
    assert "Sign-in error" in administrator_client.get(LIST).content.decode()


def test_a_directory_microsoft_does_not_know_is_a_sign_in_error_not_a_crash(
    m365_settings, administrator_client
):
    response = administrator_client.post(
        CONNECT, connect_form(m365_settings, directory_id="unknown-tenant-id")
    )

    connection = M365Connection.objects.get()
    assert response.status_code == 302
    assert connection.test_ok is False
    assert "Sign-in error" in administrator_client.get(page(connection)).content.decode()


# ------------------------------------------------------------------------------------ test, pull, state


def test_testing_names_the_missing_permissions(m365_settings, m365_connection, administrator_client):
    m365_settings.granted_roles[fake.GRAPH].remove("AuditLog.Read.All")
    m365_settings.granted_roles[fake.MANAGEMENT] = []

    response = administrator_client.post(page(m365_connection, "m365_connection_test"), follow=True)

    m365_connection.refresh_from_db()
    assert m365_connection.test_ok is False
    assert m365_connection.missing_permissions == ["AuditLog.Read.All", "ActivityFeed.Read"]
    html = response.content.decode()
    assert "missing application permission(s): AuditLog.Read.All (Microsoft Graph, to read sign-ins)" in html
    assert "Missing permissions" in html
    assert (
        "<strong>Missing now:</strong> <code>AuditLog.Read.All</code>, <code>ActivityFeed.Read</code>" in html
    )
    rows = {
        line.split("</th>")[0].rsplit(">", 1)[-1]: line
        for line in html.split("<tr>")
        if '<th scope="row">' in line
    }
    assert '<span class="status status-failed">No</span>' in rows["Read sign-ins"]
    assert '<span class="status status-ok">Yes</span>' in rows["Read verified domains"]
    listed = administrator_client.get(LIST).content.decode()
    assert "<code>AuditLog.Read.All</code>, <code>ActivityFeed.Read</code>" in listed


def test_pull_now_enqueues_a_forced_pull_of_every_source(
    m365_settings, m365_connection, administrator_client, django_capture_on_commit_callbacks
):
    m365_settings.domains = [fake.domain("contoso.com", default=True)]
    m365_settings.users = [fake.user("alice@contoso.com")]
    pull_connection(m365_connection)  # every source is now pulled and not due again for minutes
    assert PullRun.objects.count() == len(Source)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = administrator_client.post(page(m365_connection, "m365_connection_pull"))

    assert response.status_code == 302
    assert len(queued) == 1
    assert PullRun.objects.count() == 2 * len(Source)  # forced: pulled although none was due
    html = administrator_client.get(response.url).content.decode()
    assert "Every source: pull queued." in html
    assert f"{2 * len(Source)} results" in html


def test_pull_now_of_one_source(
    m365_settings, m365_connection, administrator_client, django_capture_on_commit_callbacks
):
    m365_settings.domains = [fake.domain("contoso.com", default=True)]

    with django_capture_on_commit_callbacks(execute=True):
        administrator_client.post(page(m365_connection, "m365_connection_pull"), {"source": "domains"})

    assert list(PullRun.objects.values_list("source", "status")) == [("domains", "ok")]


def test_a_disabled_connection_is_not_pulled(
    m365_connection, administrator, administrator_client, django_capture_on_commit_callbacks
):
    set_enabled(m365_connection, actor=administrator, enabled=False)
    with django_capture_on_commit_callbacks() as queued:
        response = administrator_client.post(page(m365_connection, "m365_connection_pull"), follow=True)

    assert queued == []
    assert "The connection is disabled: enable it to pull." in response.content.decode()


def test_disabling_and_enabling_a_connection(m365_connection, administrator_client):
    url = page(m365_connection, "m365_connection_enabled")

    html = administrator_client.post(url, {"enabled": "false"}, follow=True).content.decode()
    m365_connection.refresh_from_db()
    assert not m365_connection.enabled
    assert '<span class="status status-off">Disabled</span>' in html
    assert page(m365_connection, "m365_connection_pull") not in html

    administrator_client.post(url, {"enabled": "true"})
    m365_connection.refresh_from_db()
    assert m365_connection.enabled
    assert AuditEvent.objects.filter(action="m365.connection.disabled").count() == 1
    assert AuditEvent.objects.filter(action="m365.connection.enabled").count() == 1


def test_changing_the_credential_tests_the_new_one(m365_settings, m365_connection, administrator_client):
    url = page(m365_connection, "m365_connection_credential")
    old_ciphertext, old_set_at = m365_connection.credential_ciphertext, m365_connection.credential_set_at
    assert administrator_client.get(url).status_code == 200

    refused = administrator_client.post(url, {"credential_type": "secret", "client_secret": "Zq9 Kx 12"})
    assert refused.status_code == 400
    assert "The client secret looks wrong" in refused.content.decode()
    assert_no_credential(refused.content.decode(), "Zq9 Kx 12", m365_settings.client_secret)
    m365_connection.refresh_from_db()
    assert m365_connection.credential_ciphertext == old_ciphertext

    m365_settings.client_secret = "rotated-Secret~456"
    response = administrator_client.post(
        url, {"credential_type": "secret", "client_secret": "rotated-Secret~456"}, follow=True
    )

    m365_connection.refresh_from_db()
    assert m365_connection.credential_set_at > old_set_at
    assert m365_connection.test_ok is True
    html = response.content.decode()
    assert "credential changed" in html and "Test connection: Signed in" in html
    assert_no_credential(html, "rotated-Secret~456")


def test_disconnecting_asks_first_and_keeps_the_organisation(m365_connection, administrator_client):
    url = page(m365_connection, "m365_connection_disconnect")
    confirm = administrator_client.get(url)
    assert confirm.status_code == 200
    assert "Disconnect Contoso from Microsoft 365?" in confirm.content.decode()
    assert M365Connection.objects.exists()

    response = administrator_client.post(url, follow=True)

    assert not M365Connection.objects.exists()
    tenant = Tenant.objects.get(name="Contoso")
    assert tenant.connector_kind == Tenant.ConnectorKind.BUILTIN
    assert "Contoso is disconnected from Microsoft 365" in response.content.decode()
    assert "No Microsoft 365 tenant is connected." in response.content.decode()


# ---------------------------------------------------------------------------------- the status page


def test_the_status_page_shows_each_source_and_the_pull_runs(m365_connection, reader_client):
    now = timezone.now()
    PullCursor.objects.create(
        connection=m365_connection,
        source=Source.SIGN_INS,
        watermark=now - timedelta(minutes=12),
        last_attempt_at=now - timedelta(minutes=1),
        last_success_at=now - timedelta(minutes=20),
        last_error="Microsoft Graph: throttled",
        last_error_at=now - timedelta(minutes=1),
        consecutive_failures=3,
        events_total=1234,
        rejected_total=2,
        state={"start": "x", "end": "y", "next": "https://graph.example/next"},
    )
    PullRun.objects.create(
        connection=m365_connection,
        source=Source.SIGN_INS,
        status=PullRun.Status.PARTIAL,
        started_at=now - timedelta(minutes=20, seconds=4),
        finished_at=now - timedelta(minutes=20),
        pages=3,
        records=120,
        accepted=117,
        duplicates=1,
        rejected=2,
        requests=4,
        throttled=1,
        resumed=True,
        errors=[{"record": "si-9", "error": "sign-in si-9 has no userPrincipalName"}],
    )

    html = reader_client.get(page(m365_connection)).content.decode()

    for _, label in Source.choices:
        assert f'<th scope="row">{label}</th>' in html
    assert "Not pulled yet" in html
    assert '<span class="status status-failed">Failing</span>' in html
    assert "12 min" in html  # lag = now - watermark
    assert "Microsoft Graph: throttled" in html
    assert ">1234<" in html
    assert "Yes: continues where it stopped" in html
    assert "Succeeded with rejected records" in html
    assert "4.0 s" in html
    assert "<summary>1 rejected record (first 1 of 2)</summary>" in html
    assert "sign-in si-9 has no userPrincipalName" in html
    assert "1 result" in html
    assert "0 results" in reader_client.get(page(m365_connection), {"source": "users"}).content.decode()


def test_the_status_page_shows_the_time_an_outage_left_unread(m365_connection, reader_client):
    PullCursor.objects.create(
        connection=m365_connection,
        source=Source.AUDIT_EXCHANGE,
        gaps=[
            {
                "from": "2026-11-20T08:00:00Z",
                "to": "2026-11-26T10:05:00Z",
                "recorded_at": "2026-12-03T10:00:00Z",
            }
        ],
    )

    html = reader_client.get(page(m365_connection)).content.decode()

    assert f"{Source.AUDIT_EXCHANGE.label}: time not read" in html
    assert "2026-11-20T08:00:00Z to 2026-11-26T10:05:00Z" in html
    assert "time not read" not in reader_client.get(page(m365_connection)).content.decode().replace(
        f"{Source.AUDIT_EXCHANGE.label}: time not read", ""
    )


def test_the_pages_query_count_does_not_grow_with_rows(
    m365_settings, m365_connection, reader_client, django_assert_max_num_queries
):
    for index in range(3):
        org = Tenant.objects.create(name=f"Org {index}", slug=f"org-{index}")
        M365Connection.objects.create(
            tenant=org,
            directory_id=f"org-{index}-id",
            client_id="app",
            credential_ciphertext="x",
        )
    for connection in M365Connection.objects.all():
        for source in Source.values:
            PullCursor.objects.create(connection=connection, source=source, last_attempt_at=timezone.now())
    PullRun.objects.bulk_create(
        PullRun(connection=m365_connection, source=Source.USERS, finished_at=timezone.now())
        for _ in range(30)
    )
    with django_assert_max_num_queries(8):
        assert reader_client.get(LIST).status_code == 200
    with django_assert_max_num_queries(10):
        assert reader_client.get(page(m365_connection)).status_code == 200


def test_no_page_shows_the_credential(
    m365_settings, m365_connection, administrator_client, reader_client, django_capture_on_commit_callbacks
):
    administrator_client.post(page(m365_connection, "m365_connection_test"))
    with django_capture_on_commit_callbacks(execute=True):
        administrator_client.post(page(m365_connection, "m365_connection_pull"))
    urls = [
        LIST,
        CONNECT,
        page(m365_connection),
        page(m365_connection) + "?format=csv",
        page(m365_connection, "m365_connection_credential"),
        page(m365_connection, "m365_connection_disconnect"),
        reverse("console:audit_log"),
        reverse("console:audit_log") + "?format=csv",
    ]
    for client in (administrator_client, reader_client):
        for url in urls:
            response = client.get(url)
            assert_no_credential(body(response), m365_settings.client_secret)


def test_the_pages_are_labelled_and_carry_no_inline_style(m365_connection, administrator_client):
    administrator_client.post(page(m365_connection, "m365_connection_test"))
    urls = [
        LIST,
        CONNECT,
        page(m365_connection),
        page(m365_connection, "m365_connection_credential"),
        page(m365_connection, "m365_connection_disconnect"),
    ]
    for url in urls:
        html = administrator_client.get(url).content.decode()
        assert not STYLE_ATTRIBUTE.search(html), url
        audit = _Audit()
        audit.feed(html)
        assert audit.unlabelled() == [], url
        assert audit.headers_without_scope == [], url
