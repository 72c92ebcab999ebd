"""Office 365 Management Activity API endpoints of the fake Microsoft 365 (``/manage/api/v1.0/{tenant}/
activity/feed/...``): subscriptions, content listings paged by the ``NextPageUri`` response header, and
content blobs cut from :attr:`FakeM365.audit_records`; errors in the API's ``AF…`` codes.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from .fake_m365_graph import MANAGEMENT, ApiError, Reply, Request, now_utc, parse_time

if TYPE_CHECKING:
    from .fake_m365 import FakeM365

FEED_READ = {"ActivityFeed.Read", "ActivityFeed.ReadDlp"}
CONTENT_TYPES = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
WORKLOAD_CONTENT_TYPES = {
    "Exchange": "Audit.Exchange",
    "AzureActiveDirectory": "Audit.AzureActiveDirectory",
    "SharePoint": "Audit.SharePoint",
    "OneDrive": "Audit.SharePoint",
}
MAX_CONTENT_WINDOW = timedelta(hours=24)
BLOB_RETENTION = timedelta(days=7)
WINDOW_MESSAGE = (
    "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 "
    "hours apart, with the start time no more than 7 days in the past."
)


def feed_time(moment: datetime) -> str:
    """The Management Activity API's contentCreated rendering: milliseconds and a Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def feed_error(status: int, code: str, message: str, **headers: str) -> ApiError:
    """The Management Activity API's error shape."""
    return ApiError(Reply(status, {"error": {"code": code, "message": message}}, dict(headers)))


@dataclass(frozen=True)
class Blob:
    content_type: str
    content_id: str
    created: datetime
    records: list[dict[str, Any]]


def content_type_of(record: dict[str, Any]) -> str:
    """The content type an audit record is published under, by its Workload."""
    return WORKLOAD_CONTENT_TYPES.get(str(record.get("Workload") or "Exchange"), "Audit.General")


def content_blobs(fake: FakeM365, content_type: str) -> list[Blob]:
    """``audit_records`` of ``content_type`` cut into blobs of at most ``page_size // 5`` records, in
    CreationTime order; a blob becomes available when its last record was created. Ids are stable as long as
    the same records fall in the same blob."""
    records = sorted(
        (r for r in fake.audit_records if content_type_of(r) == content_type),
        key=lambda r: (parse_time(str(r["CreationTime"])), str(r.get("Id", ""))),
    )
    size = max(1, fake.page_size // 5)
    blobs = []
    for start in range(0, len(records), size):
        chunk = copy.deepcopy(records[start : start + size])
        first, last = parse_time(chunk[0]["CreationTime"]), parse_time(chunk[-1]["CreationTime"])
        digest = hashlib.sha256("|".join(str(r.get("Id", "")) for r in chunk).encode()).hexdigest()[:32]
        stamp = "%Y%m%d%H%M%S%f"
        content_id = f"{first:{stamp}}${last:{stamp}}${content_type.lower().replace('.', '_')}${digest}"
        blobs.append(Blob(content_type, content_id, last, chunk))
    return blobs


def _window(fake: FakeM365, query: dict[str, str]) -> tuple[datetime, datetime]:
    start_text, end_text = query.get("startTime"), query.get("endTime")
    if (start_text is None) != (end_text is None):
        raise feed_error(400, "AF20030", WINDOW_MESSAGE)
    if start_text is None or end_text is None:
        end = now_utc()
        return end - MAX_CONTENT_WINDOW, end
    parsed = []
    for name, text in (("startTime", start_text), ("endTime", end_text)):
        try:
            parsed.append(parse_time(text))
        except ValueError:
            raise feed_error(
                400, "AF20002", f"Invalid parameter type: {name}. Expected type: datetime"
            ) from None
    start, end = parsed
    lookback = fake.audit_lookback
    if (
        end < start
        or end - start > MAX_CONTENT_WINDOW
        or (lookback is not None and start < now_utc() - lookback)
    ):
        raise feed_error(400, "AF20030", WINDOW_MESSAGE)
    return start, end


def _content_type(query: dict[str, str]) -> str:
    content_type = query.get("contentType")
    if not content_type:
        raise feed_error(400, "AF20001", "Missing parameter: contentType.")
    if content_type not in CONTENT_TYPES:
        raise feed_error(400, "AF20020", "The specified content type is not valid.")
    return content_type


def _feed_base(fake: FakeM365, tenant: str) -> str:
    return f"{fake.management_url}/api/v1.0/{tenant}/activity/feed"


def start_subscription(fake: FakeM365, req: Request, tenant: str) -> Reply:
    """POST /subscriptions/start?contentType=…: 200, or AF20024 when already enabled unchanged."""
    content_type = _content_type(req.query)
    webhook = req.json.get("webhook") if isinstance(req.json, dict) else None
    current = fake.subscriptions.get(content_type)
    if current and current.get("status") == "enabled" and webhook in (None, current.get("webhook")):
        raise feed_error(400, "AF20024", "The subscription is already enabled. No property change.")
    fake.subscriptions[content_type] = {"contentType": content_type, "status": "enabled", "webhook": webhook}
    return Reply(200, copy.deepcopy(fake.subscriptions[content_type]))


def stop_subscription(fake: FakeM365, req: Request, tenant: str) -> Reply:
    """POST /subscriptions/stop?contentType=…: 200 with no body; the subscription is disabled."""
    content_type = _content_type(req.query)
    current = fake.subscriptions.get(content_type)
    if not current or current.get("status") != "enabled":
        raise feed_error(400, "AF20022", "No subscription found for the specified content type.")
    current["status"] = "disabled"
    return Reply(200)


def list_subscriptions(fake: FakeM365, req: Request, tenant: str) -> Reply:
    """GET /subscriptions/list."""
    return Reply(200, [copy.deepcopy(subscription) for subscription in fake.subscriptions.values()])


GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NEXT_PAGE = re.compile(r"\d{14}R(?P<offset>\d{9})")


def list_content(fake: FakeM365, req: Request, tenant: str) -> Reply:
    """GET /subscriptions/content: the blobs created in [startTime, endTime), paged by ``NextPageUri``."""
    content_type = _content_type(req.query)
    if (fake.subscriptions.get(content_type) or {}).get("status") != "enabled":
        raise feed_error(400, "AF20022", "No subscription found for the specified content type.")
    start, end = _window(fake, req.query)
    offset = 0
    if "nextPage" in req.query:
        match = _NEXT_PAGE.fullmatch(req.query["nextPage"])
        if match is None:
            raise feed_error(400, "AF20031", f"Invalid nextPage Input: {req.query['nextPage']}.")
        offset = int(match["offset"])
    blobs = [blob for blob in content_blobs(fake, content_type) if start <= blob.created < end]
    per_page = max(1, fake.page_size // 5)
    listed = blobs[offset : offset + per_page]
    base = _feed_base(fake, tenant)
    body = []
    for blob in listed:
        fake.content_cache[blob.content_id] = blob.records
        body.append(
            {
                "contentType": blob.content_type,
                "contentId": blob.content_id,
                "contentUri": f"{base}/audit/{blob.content_id}",
                "contentCreated": feed_time(blob.created),
                "contentExpiration": feed_time(blob.created + BLOB_RETENTION),
            }
        )
    headers = {}
    if offset + per_page < len(blobs):
        query = {
            "contentType": content_type,
            "startTime": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "endTime": end.strftime("%Y-%m-%dT%H:%M:%S"),
            "nextPage": f"{start:%Y%m%d%H%M%S}R{offset + per_page:09d}",
        }
        if "PublisherIdentifier" in req.query:
            query["PublisherIdentifier"] = req.query["PublisherIdentifier"]
        headers["NextPageUri"] = f"{base}/subscriptions/content?{urlencode(query)}"
    return Reply(200, body, headers)


def get_content(fake: FakeM365, req: Request, tenant: str, content_id: str) -> Reply:
    """GET /audit/{contentId}: the blob's records."""
    for content_type in CONTENT_TYPES:
        for blob in content_blobs(fake, content_type):
            if blob.content_id == content_id:
                return Reply(200, blob.records)
    if content_id in fake.content_cache:
        return Reply(200, copy.deepcopy(fake.content_cache[content_id]))
    raise feed_error(400, "AF20050", f"The specified content ({content_id}) does not exist.")


FEED_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in (
        ("POST", r"/subscriptions/start", start_subscription),
        ("POST", r"/subscriptions/stop", stop_subscription),
        ("GET", r"/subscriptions/list", list_subscriptions),
        ("GET", r"/subscriptions/content", list_content),
        ("GET", r"/audit/(?P<content_id>[^/]+)", get_content),
    )
]


def handle_management(fake: FakeM365, req: Request, tenant: str, rest: str) -> Reply:
    """Route a Management Activity API request (``rest`` is the path after ``/activity/feed``)."""
    for method, pattern, handler in FEED_ROUTES:
        match = pattern.fullmatch(rest)
        if match is None or method != req.method:
            continue
        req.claims = fake.authenticate(req, MANAGEMENT)
        roles = sorted(req.claims.get("roles") or ())
        if not FEED_READ & set(roles):
            raise feed_error(
                403,
                "AF10001",
                f"The permission set ({','.join(roles)}) sent in the request did not include the expected "
                "permission ActivityFeed.Read.",
            )
        if not GUID.fullmatch(tenant):
            raise feed_error(
                400, "AF20013", f"The tenant ID passed in the URL ({tenant}) is not a valid GUID."
            )
        if tenant != req.claims.get("tid"):
            raise feed_error(
                400,
                "AF20010",
                f"The tenant ID passed in the URL ({tenant}) does not match the tenant ID passed in the "
                f"access token ({req.claims.get('tid')}).",
            )
        arguments = {name: unquote(value) for name, value in match.groupdict().items()}
        return handler(fake, req, tenant, **arguments)
    raise feed_error(
        404, "NotFound", f"No HTTP resource was found that matches the request URI '{req.path}'."
    )
