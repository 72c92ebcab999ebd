"""The fake Microsoft 365 answers MSAL and ``requests`` the way Microsoft does (tests/m365/fake_m365.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msal
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .fake_m365 import GRAPH, MANAGEMENT, FakeM365, audit, message, rule, sign_in, trace, user

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Within what the time-limited APIs still keep (audit content 7 days, message trace 90 days).
RECENT = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def msal_app(
    fake: FakeM365, credential: Any = None, client_id: str | None = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id or fake.client_id,
        authority=f"{fake.authority_host}/{fake.directory_id}",
        client_credential=fake.client_secret if credential is None else credential,
        instance_discovery=False,
        verify=fake.ca_bundle,
    )


def token(fake: FakeM365, resource: str = GRAPH) -> str:
    result = msal_app(fake).acquire_token_for_client(scopes=[f"{resource}/.default"])
    assert "access_token" in result, result
    return result["access_token"]


def call(fake: FakeM365, method: str, url: str, access_token: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, verify=fake.ca_bundle, timeout=10, **kwargs)


def test_it_issues_app_tokens_for_graph_and_the_management_api(fake_m365: FakeM365) -> None:
    graph = jwt.decode(token(fake_m365, GRAPH), options={"verify_signature": False})
    manage = jwt.decode(token(fake_m365, MANAGEMENT), options={"verify_signature": False})

    assert graph["aud"] == GRAPH and manage["aud"] == MANAGEMENT
    assert graph["tid"] == manage["tid"] == fake_m365.tenant_id  # the GUID, whatever the authority was asked
    assert graph["appid"] == fake_m365.client_id
    assert "AuditLog.Read.All" in graph["roles"] and manage["roles"] == ["ActivityFeed.Read"]
    assert graph["jti"] != manage["jti"]
    assert fake_m365.tokens_issued == 2


def test_it_refuses_a_wrong_secret_or_client_without_echoing_the_secret(fake_m365: FakeM365) -> None:
    wrong_secret = msal_app(fake_m365, credential="not-the-secret").acquire_token_for_client(
        scopes=[f"{GRAPH}/.default"]
    )
    wrong_client = msal_app(fake_m365, client_id="someone-else").acquire_token_for_client(
        scopes=[f"{GRAPH}/.default"]
    )

    assert wrong_secret["error"] == "invalid_client" and 7000215 in wrong_secret["error_codes"]
    assert "not-the-secret" not in str(wrong_secret)
    assert wrong_client["error"] == "unauthorized_client" and 700016 in wrong_client["error_codes"]
    assert [r.status for r in fake_m365.requests if r.path.endswith("/token")] == [401, 400]
    assert fake_m365.requests[1].form["client_secret"] == "***"
    assert fake_m365.tokens_issued == 0


def test_it_refuses_an_unknown_directory(fake_m365: FakeM365) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            fake_m365.client_id,
            authority=f"{fake_m365.authority_host}/another-tenant",
            client_credential=fake_m365.client_secret,
            instance_discovery=False,
            verify=fake_m365.ca_bundle,
        )
    token_answer = requests.post(
        f"{fake_m365.authority_host}/another-tenant/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": fake_m365.client_id,
            "scope": f"{GRAPH}/.default",
        },
        verify=fake_m365.ca_bundle,
        timeout=10,
    )

    assert fake_m365.requests[0].path.endswith("/.well-known/openid-configuration")
    assert fake_m365.requests[0].status == 400
    assert token_answer.status_code == 400 and token_answer.json()["error"] == "invalid_request"
    assert token_answer.json()["error_description"].startswith(
        "AADSTS90002: Tenant 'another-tenant' not found."
    )


def test_it_accepts_a_certificate_credential_with_a_registered_thumbprint(fake_m365: FakeM365) -> None:
    cert = trustme.CA().issue_cert("app.contoso.com", key_type=trustme.KeyType.RSA)
    pem = cert.private_key_pem.bytes().decode()
    certificate = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    sha1 = hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER), usedforsecurity=False)
    fake_m365.certificate_thumbprints = {"00" * 20}
    credential = {"private_key": pem, "thumbprint": sha1.hexdigest()}

    refused = msal_app(fake_m365, credential=credential).acquire_token_for_client(
        scopes=[f"{GRAPH}/.default"]
    )
    fake_m365.certificate_thumbprints = {sha1.hexdigest().upper()}
    accepted = msal_app(fake_m365, credential=credential).acquire_token_for_client(
        scopes=[f"{GRAPH}/.default"]
    )

    assert 700027 in refused["error_codes"]
    claims = jwt.decode(accepted["access_token"], options={"verify_signature": False})
    assert claims["appidacr"] == "2"


def test_users_come_in_pages_linked_by_next_link(fake_m365: FakeM365) -> None:
    fake_m365.users = [user(f"user{i:03d}@contoso.com", department="Sales") for i in range(110)]
    fake_m365.users += [user("guest@fabrikam.com", guest=True)]
    access = token(fake_m365)
    url: str | None = f"{fake_m365.graph_url}/v1.0/users"
    params: dict[str, str] | None = {
        "$filter": "userType eq 'Member'",
        "$select": "id,userPrincipalName,department",
    }
    pages = []
    while url:
        body = call(fake_m365, "GET", url, access, params=params).json()
        pages.append(body["value"])
        url, params = body.get("@odata.nextLink"), None
        assert url is None or (url.startswith(fake_m365.graph_url) and "$skiptoken=" in url)

    assert [len(p) for p in pages] == [50, 50, 10]
    assert {u["department"] for p in pages for u in p} == {"Sales"}
    assert "guest@fabrikam.com" not in {u["userPrincipalName"] for p in pages for u in p}
    # Without $select, v1.0 returns Graph's default properties only (no department, userType …).
    plain = call(fake_m365, "GET", f"{fake_m365.graph_url}/v1.0/users", access, params={"$top": "1"}).json()
    assert "department" not in plain["value"][0] and "userPrincipalName" in plain["value"][0]


def test_a_filter_it_cannot_parse_is_refused(fake_m365: FakeM365) -> None:
    response = call(
        fake_m365,
        "GET",
        f"{fake_m365.graph_url}/v1.0/users",
        token(fake_m365),
        params={"$filter": "startswith(displayName,'A')"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_throttle_answers_429_with_retry_after_then_recovers(fake_m365: FakeM365) -> None:
    fake_m365.users = [user("alice@contoso.com")]
    fake_m365.throttle("/graph/v1.0/users", times=2, retry_after=7)
    access = token(fake_m365)
    url = f"{fake_m365.graph_url}/v1.0/users"

    answers = [call(fake_m365, "GET", url, access, headers={"client-request-id": f"c{i}"}) for i in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert answers[0].json()["error"]["code"] == "TooManyRequests"
    assert [a.headers["client-request-id"] for a in answers] == ["c0", "c1", "c2"]
    assert all(a.headers["request-id"] for a in answers)
    assert [r.status for r in fake_m365.requests if r.path == "/graph/v1.0/users"] == [429, 429, 200]


def test_expired_tokens_are_refused_until_a_new_one_is_fetched(fake_m365: FakeM365) -> None:
    fake_m365.users = [user("alice@contoso.com")]
    app = msal_app(fake_m365)
    scopes = [f"{GRAPH}/.default"]
    url = f"{fake_m365.graph_url}/v1.0/users"
    first = app.acquire_token_for_client(scopes=scopes)["access_token"]
    fake_m365.expire_tokens()

    refused = call(fake_m365, "GET", url, first)
    cached = app.acquire_token_for_client(scopes=scopes)["access_token"]  # MSAL still holds the old one
    for entry in list(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):  # not lazily
        app.token_cache.remove_at(entry)
    fresh = app.acquire_token_for_client(scopes=scopes)["access_token"]

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert cached == first
    assert call(fake_m365, "GET", url, fresh).status_code == 200
    manage = call(
        fake_m365, "GET", f"{fake_m365.management_url}/api/v1.0/x/activity/feed/subscriptions/list", fresh
    )
    assert manage.status_code == 401 and manage.json()["error"]["code"] == "AF10001"  # a Graph token


def test_management_content_is_listed_with_next_page_uri_and_fetched_by_blob(fake_m365: FakeM365) -> None:
    fake_m365.page_size = 10  # 2 records per blob, 2 blobs per listing page
    fake_m365.audit_records = [
        audit(
            "New-InboxRule",
            "alice@contoso.com",
            RECENT + timedelta(minutes=i),
            object_id=f"rule{i}",
            parameters={"Name": f"r{i}"},
        )
        for i in range(9)
    ]
    access = token(fake_m365, MANAGEMENT)
    feed = f"{fake_m365.management_url}/api/v1.0/{fake_m365.tenant_id}/activity/feed"
    by_domain = f"{fake_m365.management_url}/api/v1.0/{fake_m365.directory_id}/activity/feed"
    window = {
        "contentType": "Audit.Exchange",
        "startTime": f"{RECENT:%Y-%m-%dT%H:%M:%S}",
        "endTime": f"{RECENT + timedelta(days=1):%Y-%m-%dT%H:%M:%S}",
    }
    too_old = {
        **window,
        "startTime": f"{RECENT - timedelta(days=6):%Y-%m-%dT%H:%M:%S}",
        "endTime": f"{RECENT - timedelta(days=5, hours=12):%Y-%m-%dT%H:%M:%S}",
    }

    not_started = call(fake_m365, "GET", f"{feed}/subscriptions/content", access, params=window)
    started = call(
        fake_m365, "POST", f"{feed}/subscriptions/start", access, params={"contentType": "Audit.Exchange"}
    )
    again = call(
        fake_m365, "POST", f"{feed}/subscriptions/start", access, params={"contentType": "Audit.Exchange"}
    )
    listings, url, params = [], f"{feed}/subscriptions/content", window
    while url:
        response = call(fake_m365, "GET", url, access, params=params)
        listings.append(response.json())
        url, params = response.headers.get("NextPageUri"), None
    records = [
        r for blobs in listings for b in blobs for r in call(fake_m365, "GET", b["contentUri"], access).json()
    ]
    too_wide = call(
        fake_m365,
        "GET",
        f"{feed}/subscriptions/content",
        access,
        params={**window, "endTime": f"{RECENT + timedelta(days=1, seconds=1):%Y-%m-%dT%H:%M:%S}"},
    )
    older_than_kept = call(fake_m365, "GET", f"{feed}/subscriptions/content", access, params=too_old)
    not_a_guid = call(fake_m365, "GET", f"{by_domain}/subscriptions/content", access, params=window)

    assert not_started.status_code == 400 and not_started.json()["error"]["code"] == "AF20022"
    assert started.json() == {"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}
    assert again.status_code == 400 and again.json()["error"]["code"] == "AF20024"
    assert [len(blobs) for blobs in listings] == [2, 2, 1]
    assert listings[0][0]["contentCreated"] == f"{RECENT + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}.000Z"
    assert [r["ObjectId"] for r in records] == [f"rule{i}" for i in range(9)]
    assert too_wide.status_code == 400 and too_wide.json()["error"]["code"] == "AF20030"
    assert older_than_kept.status_code == 400 and older_than_kept.json()["error"]["code"] == "AF20030"
    assert not_a_guid.status_code == 400 and not_a_guid.json()["error"]["code"] == "AF20013"


def test_a_rule_is_deleted_and_a_second_delete_is_not_found(fake_m365: FakeM365) -> None:
    alice = user("alice@contoso.com")
    fake_m365.users = [alice]
    fake_m365.inbox_rules["alice@contoso.com"] = [
        rule("r1", "Forward all", forward_to=["evil@example.net"]),
        rule("r2", "Tidy", move_to="archive"),
    ]
    access = token(fake_m365)
    rules_url = f"{fake_m365.graph_url}/v1.0/users/{alice['id']}/mailFolders/inbox/messageRules"

    listed = call(fake_m365, "GET", rules_url, access).json()["value"]
    deleted = call(fake_m365, "DELETE", f"{rules_url}/r1", access)
    again = call(fake_m365, "DELETE", f"{rules_url}/r1", access)

    assert listed[0]["actions"]["forwardTo"] == [
        {"emailAddress": {"name": "evil@example.net", "address": "evil@example.net"}}
    ]
    assert deleted.status_code == 204 and deleted.content == b""
    assert again.status_code == 404 and again.json()["error"]["code"] == "ErrorItemNotFound"
    assert [r["id"] for r in fake_m365.inbox_rules["alice@contoso.com"]] == ["r2"]


def test_a_missing_role_is_refused_with_403(fake_m365: FakeM365) -> None:
    fake_m365.users = [user("alice@contoso.com")]
    fake_m365.granted_roles[GRAPH] = ["User.Read.All"]
    access = token(fake_m365)

    response = call(
        fake_m365, "POST", f"{fake_m365.graph_url}/v1.0/users/alice@contoso.com/revokeSignInSessions", access
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    assert "signInSessionsValidFromDateTime" not in fake_m365.users[0]


def test_remediation_actions_change_the_tenant(fake_m365: FakeM365) -> None:
    alice = user("alice@contoso.com")
    fake_m365.users = [alice]
    fake_m365.mailbox_messages[alice["id"]] = [message("<phish-1@example.net>", subject="Invoice")]
    access = token(fake_m365)
    base = f"{fake_m365.graph_url}/v1.0/users/{alice['id']}"

    found = call(
        fake_m365,
        "GET",
        f"{base}/messages",
        access,
        params={"$filter": "internetMessageId eq '<phish-1@example.net>'"},
    )
    message_id = found.json()["value"][0]["id"]
    moved = call(
        fake_m365,
        "POST",
        f"{base}/messages/{message_id}/move",
        access,
        json={"destinationId": "recoverableitemsdeletions"},
    )
    revoked = call(fake_m365, "POST", f"{base}/revokeSignInSessions", access)
    disabled = call(fake_m365, "PATCH", base, access, json={"accountEnabled": False})
    forced = call(
        fake_m365, "PATCH", base, access, json={"passwordProfile": {"forceChangePasswordNextSignIn": True}}
    )
    malformed = call(
        fake_m365, "PATCH", base, access, data="{not json", headers={"Content-Type": "application/json"}
    )

    assert moved.status_code == 201
    assert moved.json()["parentFolderId"] == "recoverableitemsdeletions" and moved.json()["id"] != message_id
    assert revoked.json()["value"] is True and alice["signInSessionsValidFromDateTime"]
    assert disabled.status_code == forced.status_code == 204
    assert alice["accountEnabled"] is False and alice["passwordProfile"] == {
        "forceChangePasswordNextSignIn": True
    }
    assert malformed.status_code == 400


def test_message_traces_and_sign_ins_are_filtered_on_time_and_refuse_what_graph_does_not_document(
    fake_m365: FakeM365,
) -> None:
    fake_m365.message_traces = [
        trace("alice@contoso.com", f"r{i}@example.net", RECENT + timedelta(hours=i)) for i in range(5)
    ]
    fake_m365.sign_ins = [
        sign_in("alice@contoso.com", RECENT + timedelta(hours=i), ip=f"203.0.113.{i}") for i in range(5)
    ]
    access = token(fake_m365)
    graph = f"{fake_m365.graph_url}/v1.0"
    one, three = RECENT + timedelta(hours=1), RECENT + timedelta(hours=3)

    def window(field: str) -> str:
        return f"{field} ge {one:%Y-%m-%dT%H:%M:%S}Z and {field} le {three:%Y-%m-%dT%H:%M:%S}Z"

    traces_path, sign_ins_path = "/admin/exchange/tracing/messageTraces", "/auditLogs/signIns"

    def get(path: str, filter_: str, **params: str) -> requests.Response:
        """GET ``path`` with ``$filter`` (and the other OData options, named without their ``$``)."""
        options = {"$filter": filter_, **{f"${name}": value for name, value in params.items()}}
        return call(fake_m365, "GET", f"{graph}{path}", access, params=options)

    traces = get(traces_path, window("receivedDateTime")).json()["value"]
    newest_first = get(sign_ins_path, window("createdDateTime")).json()["value"]
    oldest_first = get(
        sign_ins_path, f"createdDateTime gt {one:%Y-%m-%dT%H:%M:%S}Z", orderby="createdDateTime"
    )
    quoted = get(sign_ins_path, f"createdDateTime ge '{one:%Y-%m-%dT%H:%M:%S}Z'")
    traces_in_ms = get(
        traces_path,
        f"receivedDateTime ge {one:%Y-%m-%dT%H:%M:%S}.000Z "
        f"and receivedDateTime lt {three:%Y-%m-%dT%H:%M:%S}Z",
    )

    assert [t["recipientAddress"] for t in traces] == ["r1@example.net", "r2@example.net", "r3@example.net"]
    assert [s["ipAddress"] for s in newest_first] == ["203.0.113.3", "203.0.113.2", "203.0.113.1"]
    # Graph documents $filter, $top and $skiptoken for signIns: an $orderby is refused.
    assert oldest_first.status_code == 400
    assert quoted.status_code == 400
    assert (
        traces_in_ms.status_code == 400 and "YYYY-MM-DDThh:mm:ssZ" in traces_in_ms.json()["error"]["message"]
    )


def test_a_delay_makes_the_client_time_out_once(fake_m365: FakeM365) -> None:
    access = token(fake_m365)
    fake_m365.delay("/graph/v1.0/domains", seconds=2)
    url = f"{fake_m365.graph_url}/v1.0/domains"

    with pytest.raises(requests.Timeout):
        requests.get(
            url, headers={"Authorization": f"Bearer {access}"}, verify=fake_m365.ca_bundle, timeout=0.3
        )
    assert call(fake_m365, "GET", url, access).status_code == 200
    assert fake_m365.internal_errors == []


def test_the_fake_refuses_trace_windows_microsoft_refuses(fake_m365: FakeM365) -> None:
    access = token(fake_m365)
    url = f"{fake_m365.graph_url}/v1.0/admin/exchange/tracing/messageTraces"

    def status(start: datetime, end: datetime | None) -> int:
        text = f"receivedDateTime ge {start:%Y-%m-%dT%H:%M:%S}Z"
        if end is not None:
            text += f" and receivedDateTime lt {end:%Y-%m-%dT%H:%M:%S}Z"
        return call(fake_m365, "GET", url, access, params={"$filter": text}).status_code

    assert status(RECENT, RECENT + timedelta(days=10)) == 200
    assert status(RECENT, RECENT + timedelta(days=10, seconds=1)) == 400  # more than 10 days
    assert status(RECENT - timedelta(days=91), RECENT - timedelta(days=89)) == 400  # older than 90 days
    assert status(RECENT, None) == 400  # both bounds are required
    fake_m365.trace_service_principal = False
    assert status(RECENT, RECENT + timedelta(days=1)) == 403


def test_the_fake_guards_sensitive_user_attributes_as_graph_does(fake_m365: FakeM365) -> None:
    alice, admin, synced = user("alice@contoso.com"), user("it@contoso.com"), user("dc@contoso.com")
    admin["adminRoles"] = ["Exchange Administrator"]
    synced["onPremisesSyncEnabled"] = True
    fake_m365.users = [alice, admin, synced]
    access = token(fake_m365)

    def patch(target: dict, body: dict) -> int:
        url = f"{fake_m365.graph_url}/v1.0/users/{target['id']}"
        return call(fake_m365, "PATCH", url, access, json=body).status_code

    assert patch(alice, {"accountEnabled": False}) == 204  # User Administrator may
    assert patch(admin, {"accountEnabled": False}) == 403  # an admin target needs more
    assert patch(synced, {"accountEnabled": False}) == 400  # governed on-premises
    assert patch(alice, {"passwordProfile": {"password": "short"}}) == 400  # complexity
    fake_m365.app_directory_roles = set()
    assert patch(alice, {"passwordProfile": {"forceChangePasswordNextSignIn": True}}) == 403
    assert patch(alice, {"department": "Sales"}) == 204  # not sensitive


def test_the_fake_answers_a_user_without_a_mailbox_as_exchange_does(fake_m365: FakeM365) -> None:
    fake_m365.users = [user("nobox@contoso.com")]
    fake_m365.mailboxless = {"nobox@contoso.com"}
    url = f"{fake_m365.graph_url}/v1.0/users/nobox@contoso.com/mailFolders/inbox/messageRules"

    answer = call(fake_m365, "GET", url, token(fake_m365))

    assert answer.status_code == 404 and answer.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
