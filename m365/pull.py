"""Telemetry pulls from a connected Microsoft 365 tenant, mapped into ingest contract v1 and stored through
the same ingest service as every other source (lenient mode: a record that cannot be mapped or validated is
rejected alone and reported; the rest of its page is stored).

Incremental and resumable: each (connection, source) has a :class:`~m365.models.PullCursor`. Windowed
sources (message trace, sign-ins, the audit log) read a half-open time window ``[start, end)`` of whole
seconds page by page; after each page, its events and the cursor's new bookmark (the ``@odata.nextLink`` to
read next, or the content blobs already read) are committed **in one transaction**, so a pull interrupted at
any point resumes exactly where it stopped: nothing lost, nothing stored twice (event ids make even a
re-read page a no-op).

Windows follow each API's documented limits (:data:`LIMITS`): at most the span one request may cover, never
starting before what the API still keeps. After an outage longer than that, the unreadable stretch is
recorded on the cursor (``gaps``, shown on the status page) instead of failing every pull. A window ends
``M365_SETTLE_SECONDS`` before now, and message trace and sign-ins start ``M365_OVERLAP_SECONDS`` before the
watermark: their rows arrive minutes late, and the stable event ids make the re-read rows duplicates.

One pull per cursor at a time (a lease on the cursor row); one failing source never stops the others, and
one failing mailbox never stops the inbox-rule read of the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.exceptions import DomainError
from core.models import Tenant
from investigations.exceptions import TransientConnectorError
from mailboxes import services as directory
from mailboxes.addresses import domain_of
from mailboxes.models import AcceptedDomain, InboxRule, Mailbox
from mailflow.ingest import LENIENT, ingest_events
from mailflow.validation import safe_text

from . import mapping
from .client import GraphError, M365Client
from .exceptions import M365Error
from .mapping import RecordError, iso, parse_time
from .models import DirectoryUser, M365Connection, PullCursor, PullRun, Source
from .permissions import MANAGEMENT

logger = logging.getLogger(__name__)

INGEST_SOURCE = "connector"
MAX_RUN_ERRORS = 200
MIN_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class Limits:
    """What one request of a windowed API may ask for: ``span`` per request, ``keeps`` how far back the API
    still answers; ``margin`` keeps a window's start safely inside that horizon; ``overlap`` re-reads late
    rows (or not, where late data lands in later content anyway)."""

    span: timedelta | None
    keeps: timedelta
    margin: timedelta = timedelta(minutes=10)
    overlap: bool = True


LIMITS: dict[str, Limits] = {
    # Graph messageTraces: both bounds required, at most 10 days apart, the start at most 90 days ago.
    Source.MESSAGE_TRACE: Limits(span=timedelta(days=10), keeps=timedelta(days=90)),
    # Sign-ins are kept 30 days (Entra ID P1/P2, which the API requires).
    Source.SIGN_INS: Limits(span=None, keeps=timedelta(days=30)),
    # Management Activity API content listings: at most 24 hours apart, the start at most 7 days ago
    # (AF20030). Late records land in later content blobs, so no overlap is needed.
    Source.AUDIT_EXCHANGE: Limits(span=timedelta(hours=24), keeps=timedelta(days=7), overlap=False),
}
USER_FIELDS = "id,userPrincipalName,mail,displayName,department,userType,accountEnabled"
# Order of a full pull: the directory first, so the telemetry after it maps to known mailboxes.
ORDER = (
    Source.DOMAINS,
    Source.USERS,
    Source.MESSAGE_TRACE,
    Source.SIGN_INS,
    Source.AUDIT_EXCHANGE,
    Source.INBOX_RULES,
)


@dataclass
class PullContext:
    """What one source's pull works with, and :meth:`commit` to store a page with the cursor's bookmark."""

    connection: M365Connection
    cursor: PullCursor
    run: PullRun
    client: M365Client
    _addresses: dict[str, str] | None = field(default=None, repr=False)

    @property
    def tenant(self) -> Tenant:
        return self.connection.tenant

    def commit(
        self,
        events: list[dict[str, Any]],
        *,
        state: dict[str, Any],
        records: int,
        errors: Sequence[tuple[str, str]] = (),
        watermark: datetime | None = None,
        also: Callable[[], None] | None = None,
    ) -> None:
        """Store ``events`` and move the cursor to ``state`` atomically; count and report rejections."""
        run, cursor = self.run, self.cursor
        with transaction.atomic():
            if also is not None:
                also()
            result = (
                ingest_events(self.tenant, events, mode=LENIENT, source=INGEST_SOURCE) if events else None
            )
            rejected = list(errors)
            if result is not None:
                for error in result.errors:
                    event = events[error["index"]] if error.get("index") is not None else {}
                    where = f".{error['field']}" if error.get("field") else ""
                    rejected.append(
                        (event.get("id", "?"), f"event {event.get('id')}{where}: {error['error']}")
                    )
                for conflict in result.conflicts:
                    rejected.append((conflict, f"event {conflict} was stored before with other content"))
            # Record ids come from Microsoft: one holding a NUL must not fail the page (and block the cursor).
            rejected = [(safe_text(str(record))[:500], safe_text(text)) for record, text in rejected]
            run.pages += 1
            run.records += records
            run.accepted += result.accepted if result else 0
            run.duplicates += result.duplicates if result else 0
            run.rejected += len(rejected)
            run.requests = len(self.client.calls)
            run.throttled = self.client.throttled
            room = MAX_RUN_ERRORS - len(run.errors)
            run.errors.extend({"record": record, "error": text} for record, text in rejected[: max(room, 0)])
            run.save()
            cursor.state = state
            if watermark is not None:
                cursor.watermark = watermark
            cursor.events_total += result.accepted if result else 0
            cursor.rejected_total += len(rejected)
            cursor.save(update_fields=["state", "watermark", "events_total", "rejected_total"])
        for record, text in rejected:
            logger.warning("m365 %s pull of %s rejected %s: %s", cursor.source, self.tenant, record, text)

    # -- lookups shared by the mappers

    def addresses(self) -> dict[str, str]:
        """Lower-cased UPN, mail, object id and display name -> mailbox address, from the last users pull."""
        if self._addresses is None:
            table: dict[str, str] = {}
            for upn, address, name, graph_id in DirectoryUser.objects.filter(
                connection=self.connection
            ).values_list("user_principal_name", "address", "display_name", "graph_id"):
                table[upn.lower()] = address
                table[graph_id.lower()] = address
                table[address.lower()] = address
                if name:
                    table.setdefault(name.lower(), address)
            self._addresses = table
        return self._addresses

    def resolve(self, identity: str) -> str | None:
        """A mailbox address for an identity Microsoft wrote (UPN, address, alias, display name)."""
        key = identity.strip().lower()
        if not key or "#ext#" in key:  # a guest's sign-in name
            return None
        if found := self.addresses().get(key):
            return found
        if "@" in key and domain_of(key) in self.accepted_domains():
            return key
        local = {address.partition("@")[0]: address for address in set(self.addresses().values())}
        return local.get(key)

    def accepted_domains(self) -> set[str]:
        return AcceptedDomain.objects.domains_of(self.tenant)


# ------------------------------------------------------------------------------------------------ running


def cursor_for(connection: M365Connection, source: str) -> PullCursor:
    cursor, _ = PullCursor.objects.get_or_create(connection=connection, source=source)
    return cursor


def _claim(cursor: PullCursor) -> bool:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.M365_PULL_LEASE_SECONDS)
    claimed = (
        PullCursor.objects.filter(pk=cursor.pk)
        .filter(Q(running_since__isnull=True) | Q(running_since__lt=stale))
        .update(running_since=now, last_attempt_at=now)
    )
    if claimed:
        cursor.refresh_from_db()
    return bool(claimed)


def is_due(cursor: PullCursor, now: datetime | None = None) -> bool:
    """Never pulled, interrupted (a bookmark left), failed last time, or its interval has passed."""
    now = now or timezone.now()
    if cursor.last_attempt_at is None or cursor.state.get("next") or cursor.state.get("after"):
        return True
    interval = timedelta(seconds=settings.M365_PULL_INTERVALS.get(cursor.source, 300))
    return cursor.last_attempt_at + interval <= now


def pull_source(
    connection: M365Connection, source: str, *, client: M365Client | None = None
) -> PullRun | None:
    """Pull one source now; ``None`` when another pull of it holds the lease. Errors end in the run and the
    cursor (shown on the connector status page), never as an exception to the caller."""
    cursor = cursor_for(connection, source)
    if not _claim(cursor):
        return None
    run = PullRun.objects.create(
        connection=connection,
        source=source,
        resumed=bool(cursor.state.get("next") or cursor.state.get("after")),
    )
    client = client or M365Client(connection)
    context = PullContext(connection=connection, cursor=cursor, run=run, client=client)
    error = ""
    try:
        PULLERS[source](context)
    except (TransientConnectorError, DomainError, M365Error) as exc:
        error = str(exc)
    except Exception as exc:  # a bug or an unexpected answer: the pull fails visibly, the worker lives on
        logger.exception("m365 %s pull of %s failed", source, connection.tenant)
        error = f"Unexpected error: {type(exc).__name__}: {exc}"
    now = timezone.now()
    run.finished_at = now
    run.requests = len(client.calls)
    run.throttled = client.throttled
    run.error = error
    if error:
        run.status = PullRun.Status.FAILED
    else:
        run.status = PullRun.Status.PARTIAL if run.rejected else PullRun.Status.OK
    run.save()
    cursor.running_since = None
    if error:
        logger.warning("m365 %s pull of %s failed: %s", source, connection.tenant, error)
        cursor.last_error, cursor.last_error_at = error, now
        cursor.consecutive_failures += 1
    else:
        cursor.last_success_at = now
        cursor.consecutive_failures = 0
    cursor.save(
        update_fields=[
            "running_since",
            "last_error",
            "last_error_at",
            "consecutive_failures",
            "last_success_at",
        ]
    )
    return run


def pull_connection(connection: M365Connection, *, force: bool = False) -> list[PullRun]:
    """Pull every source that is due (all of them with ``force``), directory first."""
    runs = []
    client = M365Client(connection)
    for source in ORDER:
        if force or is_due(cursor_for(connection, source)):
            run = pull_source(connection, source, client=client)
            if run is not None:
                runs.append(run)
    return runs


# ------------------------------------------------------------------------------------------------ directory


def _pull_domains(ctx: PullContext) -> None:
    records: list[dict[str, Any]] = []
    for page, _ in ctx.client.pages(ctx.client.graph("/domains")):
        records.extend(page)
    domains = mapping.verified_domains(records)
    if not domains:
        raise M365Error("The tenant reported no verified domain.")

    def sync() -> None:
        directory.sync_accepted_domains(ctx.tenant, domains)

    ctx.commit([], state={}, records=len(records), watermark=timezone.now(), also=sync)


def _pull_users(ctx: PullContext) -> None:
    state = dict(ctx.cursor.state)
    pass_started = state.get("pass_started") or iso(timezone.now())
    url = state.get("next") or ctx.client.graph("/users")
    params = None if state.get("next") else {"$filter": "userType eq 'Member'", "$select": USER_FIELDS}
    now = timezone.now()
    for page, next_link in ctx.client.pages(url, params=params):
        members = [r for r in page if isinstance(r, dict) and mapping.is_member_with_mailbox(r)]
        errors: list[tuple[str, str]] = []
        rows: list[DirectoryUser] = []
        events: list[dict[str, Any]] = []
        accounts: list[tuple[Mailbox, bool]] = []  # known mailboxes whose sign-in state Entra ID changed
        known = {
            m.address: m
            for m in Mailbox.objects.filter(
                tenant=ctx.tenant, address__in=[str(r.get("mail", "")).lower() for r in members]
            )
        }
        for record in members:
            try:
                event = mapping.mailbox_event(record, now)
            except RecordError as exc:
                errors.append((str(record.get("id", "?")), f"user {record.get('id', '?')} {exc}"))
                continue
            enabled = bool(record.get("accountEnabled", True))
            rows.append(
                DirectoryUser(
                    connection=ctx.connection,
                    graph_id=record["id"],
                    user_principal_name=str(record.get("userPrincipalName") or event["address"]).lower(),
                    address=event["address"],
                    display_name=event["display_name"],
                    account_enabled=enabled,
                    seen_at=now,
                )
            )
            mailbox = known.get(event["address"])
            if mailbox is None or (mailbox.display_name, mailbox.department) != (
                event["display_name"],
                event["department"],
            ):
                events.append(event)
            if mailbox is not None and mailbox.account_enabled != enabled:
                accounts.append((mailbox, enabled))

        def save_users(
            rows: list[DirectoryUser] = rows, accounts: list[tuple[Mailbox, bool]] = accounts
        ) -> None:
            DirectoryUser.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["connection", "graph_id"],
                update_fields=[
                    "user_principal_name",
                    "address",
                    "display_name",
                    "account_enabled",
                    "seen_at",
                ],
            )
            # An account disabled or re-enabled in Entra ID (by an administrator there, or by an approved
            # action) shows as such on the mailbox, with a history row; a new mailbox waits for the next pass.
            for mailbox, enabled in accounts:
                directory.update_account_state(
                    mailbox, actor=None, account_enabled=enabled, source=INGEST_SOURCE
                )

        done = not next_link
        ctx.commit(
            events,
            state={} if done else {"next": next_link, "pass_started": pass_started},
            records=len(page),
            errors=errors,
            watermark=now if done else None,
            also=save_users,
        )
        ctx._addresses = None
    # Users gone from the tenant (or no longer members with a mailbox) are forgotten by the lookup table.
    DirectoryUser.objects.filter(connection=ctx.connection, seen_at__lt=parse_time(pass_started)).delete()


# ------------------------------------------------------------------------------------------------ windows


def _window(ctx: PullContext) -> tuple[datetime, datetime] | None:
    """The half-open window ``[start, end)`` a windowed source reads now, in whole seconds: the one in
    progress, else from the watermark (less the overlap; the initial look-back on a first pull) to
    ``now - settle``, clamped to the API's :data:`LIMITS`; ``None`` when nothing new has settled. A start
    the API no longer keeps moves forward to its horizon, and the stretch skipped is recorded as a gap."""
    state = ctx.cursor.state
    if state.get("start") and state.get("end"):
        return parse_time(state["start"]), parse_time(state["end"])
    limits = LIMITS[ctx.cursor.source]
    now = timezone.now().replace(microsecond=0)
    watermark = ctx.cursor.watermark
    end = now - timedelta(seconds=settings.M365_SETTLE_SECONDS)
    # Caught up: a sliver of a window is left for the next pull rather than paid for with extra requests.
    if watermark is not None and end - watermark < MIN_WINDOW:
        return None
    if watermark is None:
        start = now - timedelta(hours=settings.M365_INITIAL_LOOKBACK_HOURS)
    else:
        start = watermark - timedelta(seconds=settings.M365_OVERLAP_SECONDS if limits.overlap else 0)
    start = start.replace(microsecond=0)
    horizon = now - limits.keeps + limits.margin
    if start < horizon:
        if watermark is not None and watermark < horizon:
            _record_gap(ctx, watermark, horizon)
        start = horizon
    if limits.span is not None:
        end = min(end, start + limits.span)
    if end <= start:
        return None
    return start, end


def _record_gap(ctx: PullContext, start: datetime, end: datetime) -> None:
    """Note on the cursor that ``[start, end)`` can no longer be read (an outage outlasted the API's
    retention); the status page shows it and the log says it once."""
    gap = {"from": iso(start), "to": iso(end), "recorded_at": iso(timezone.now())}
    if any(known["from"] == gap["from"] for known in ctx.cursor.gaps):
        return  # the same outage, noted by an attempt that failed before its first window was stored
    ctx.cursor.gaps = [*ctx.cursor.gaps, gap][-50:]
    ctx.cursor.save(update_fields=["gaps"])
    logger.warning(
        "m365 %s pull of %s: %s to %s is older than Microsoft keeps and was not read",
        ctx.cursor.source,
        ctx.tenant,
        gap["from"],
        gap["to"],
    )


def _z(moment: datetime) -> str:
    """Whole seconds in UTC with a Z, as Graph's time filters are documented (``YYYY-MM-DDThh:mm:ssZ``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# A query of a window: (Graph version, a clause added to the time filter).
Query = tuple[str, str]


def _graph_window_pages(
    ctx: PullContext,
    path: str,
    time_field: str,
    extra: dict[str, str] | None = None,
    queries: list[Query] | None = None,
) -> Iterator[tuple[list[Any], dict[str, Any], datetime | None]]:
    """Pages of a Graph collection filtered on ``time_field`` within the cursor's windows, until caught up;
    each with the cursor state to commit after it and the watermark when it closes a window. A window is
    read by each of ``queries`` in turn (the state's ``query`` says which one a restart resumes)."""
    queries = queries or [("v1.0", "")]
    while (window := _window(ctx)) is not None:
        start, end = window
        state = ctx.cursor.state
        first = int(state.get("query") or 0)
        for index in range(first, len(queries)):
            version, clause = queries[index]
            bookmark = {"start": iso(start), "end": iso(end), "query": index}
            if index == first and (next_link := state.get("next")):
                url, params = next_link, None
            else:
                url = ctx.client.graph(path, version)
                window_filter = f"{time_field} ge {_z(start)} and {time_field} lt {_z(end)}"
                params = {"$filter": f"{window_filter}{clause}", **(extra or {})}
            last_query = index == len(queries) - 1
            for page, next_link in ctx.client.pages(url, params=params):
                if next_link:
                    yield page, {**bookmark, "next": next_link}, None
                elif last_query:
                    yield page, {}, end
                else:
                    yield page, {**bookmark, "query": index + 1}, None


# Message trace rows per request (Graph allows 1 to 5000; fewer requests against its 100 per 5 minutes).
TRACE_PAGE_SIZE = 5000


def _pull_message_trace(ctx: PullContext) -> None:
    """Sent mail, one event per message. The trace has a row per recipient and the rows of one message may
    straddle a page: rows received in the same second as a page's last row are held back (in the cursor's
    state, so a restart keeps them) and mapped with the next page, so the message's recipients merge."""
    accepted = ctx.accepted_domains()

    def internal(address: str) -> bool:
        return domain_of(address) in accepted

    carry: list[dict[str, Any]] = list(ctx.cursor.state.get("carry") or [])
    for page, state, watermark in _graph_window_pages(
        ctx, "/admin/exchange/tracing/messageTraces", "receivedDateTime", {"$top": str(TRACE_PAGE_SIZE)}
    ):
        rows = carry + [r for r in page if isinstance(r, dict)]
        carry = []
        if state.get("next"):
            rows, carry = mapping.hold_back_last_second(rows)
        events, errors = mapping.message_events(rows, internal)
        ctx.commit(
            events,
            state={**state, "carry": carry} if carry else state,
            records=len(page),
            errors=errors,
            watermark=watermark,
        )


# Non-interactive sign-ins (a client using a refresh token: where a stolen token's replay shows) are only in
# Graph beta, by a lambda filter on signInEventTypes.
NON_INTERACTIVE: Query = ("beta", " and signInEventTypes/any(t: t eq 'nonInteractiveUser')")


def _pull_sign_ins(ctx: PullContext) -> None:
    # Graph documents $top, $skiptoken and $filter for signIns (no $orderby); the order does not matter
    # here, as a window is done only when its last page is.
    queries = [("v1.0", "")]
    if settings.M365_NON_INTERACTIVE_SIGN_INS:
        queries.append(NON_INTERACTIVE)
    for page, state, watermark in _graph_window_pages(
        ctx, "/auditLogs/signIns", "createdDateTime", queries=queries
    ):
        events, errors = [], []
        for index, record in enumerate(page):
            try:
                if not isinstance(record, dict):
                    raise RecordError("is not an object")
                if (event := mapping.sign_in_event(record, ctx.resolve)) is not None:
                    events.append(event)
            except RecordError as exc:
                record_id = record.get("id", f"#{index}") if isinstance(record, dict) else f"#{index}"
                errors.append((str(record_id), f"sign-in {record_id} {exc}"))
        ctx.commit(events, state=state, records=len(page), errors=errors, watermark=watermark)


# ------------------------------------------------------------------------------------------------ audit log

AUDIT_CONTENT = "Audit.Exchange"


def _rule_id_for(ctx: PullContext) -> Callable[[str, str], str]:
    def rule_id_for(mailbox: str, name: str) -> str:
        existing = (
            InboxRule.objects.filter(tenant=ctx.tenant, mailbox__address=mailbox, name=name)
            .order_by("removed_at", "-changed_at")
            .values_list("rule_id", flat=True)
            .first()
        )
        return existing or f"name:{name}"

    return rule_id_for


def _content_listing(ctx: PullContext, url: str, params: dict[str, str] | None) -> tuple[list[dict], str]:
    """One page of the content listing and the ``NextPageUri`` of the next (which carries its query)."""
    api = MANAGEMENT
    if params is not None or "PublisherIdentifier" not in url:
        params = ctx.client.management_params(params)
    try:
        response = ctx.client.request("GET", url, api=api, params=params)
    except GraphError as exc:
        if exc.code != "AF20022":  # no subscription yet: start it once, then list again
            raise
        ctx.client.request(
            "POST",
            ctx.client.management("/subscriptions/start"),
            api=api,
            params=ctx.client.management_params({"contentType": AUDIT_CONTENT}),
            idempotent=True,  # a second start answers AF20024 "already enabled"
        )
        response = ctx.client.request("GET", url, api=api, params=params)
    try:
        blobs = response.json()
    except ValueError as exc:
        raise GraphError("The audit content listing is not JSON.", status=response.status_code) from exc
    if not isinstance(blobs, list):
        raise GraphError("The audit content listing is not a list.", status=response.status_code)
    return blobs, response.headers.get("NextPageUri", "")


def _feed_time(moment: datetime) -> str:
    """The Management Activity API's startTime / endTime: whole seconds, UTC (``endTime`` is exclusive)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _pull_audit(ctx: PullContext) -> None:
    api = MANAGEMENT
    rule_id_for = _rule_id_for(ctx)
    while (window := _window(ctx)) is not None:
        start, end = window
        bookmark = {"start": iso(start), "end": iso(end)}
        state = ctx.cursor.state
        page_url = state.get("next") or ctx.client.management("/subscriptions/content")
        params = (
            None
            if state.get("next")
            else {"contentType": AUDIT_CONTENT, "startTime": _feed_time(start), "endTime": _feed_time(end)}
        )
        done: list[str] = list(state.get("done") or [])
        while True:
            blobs, next_page = _content_listing(ctx, page_url, params)
            current = {**bookmark, **({"next": page_url} if page_url and params is None else {})}
            for blob in blobs:
                content_id = str(blob.get("contentId") or blob.get("contentUri"))
                if content_id in done:
                    continue
                records = ctx.client.get_json(str(blob.get("contentUri")), api=api)
                if not isinstance(records, list):
                    raise GraphError(f"Audit content {content_id} is not a list.", status=200)
                events, errors = [], []
                reread: set[str] = set()
                for index, record in enumerate(records):
                    try:
                        if not isinstance(record, dict):
                            raise RecordError("is not an object")
                        events.extend(mapping.audit_events(record, ctx.resolve, rule_id_for))
                    except mapping.ReadRules as request:
                        reread.add(request.mailbox)
                    except RecordError as exc:
                        record_id = record.get("Id", f"#{index}") if isinstance(record, dict) else f"#{index}"
                        errors.append((str(record_id), f"audit record {record_id} {exc}"))
                events.extend(_reread_rules(ctx, sorted(reread), errors))
                done.append(content_id)
                ctx.commit(events, state={**current, "done": done}, records=len(records), errors=errors)
            if not next_page:
                break
            page_url, params, done = next_page, None, []
            ctx.commit([], state={**bookmark, "next": page_url, "done": []}, records=0)
        ctx.commit([], state={}, records=0, watermark=end)


def _reread_rules(ctx: PullContext, addresses: list[str], errors: list[tuple[str, str]]) -> list[dict]:
    """Rule events for mailboxes whose audit records could not say what changed: their rules as Graph
    holds them now, against what the console knows."""
    if not addresses:
        return []
    known = DirectoryUser.objects.filter(connection=ctx.connection, address__in=addresses)
    users = {user.address: user for user in known}
    now = timezone.now()
    events: list[dict[str, Any]] = []
    for address in addresses:
        user = users.get(address)
        if user is None:
            errors.append((address, f"inbox rules of {address}: not a user of the last users pull"))
            continue
        url = ctx.client.graph(f"/users/{user.graph_id}/mailFolders/inbox/messageRules")
        try:
            remote = [r for page, _ in ctx.client.pages(url) for r in page if isinstance(r, dict)]
        except GraphError as exc:
            if not _no_mailbox(exc):
                errors.append((address, f"inbox rules of {address}: {exc}"))
            continue
        events.extend(_rule_events(ctx, user, remote, now, errors))
    return events


def _no_mailbox(exc: GraphError) -> bool:
    """A user with a mail address but no Exchange Online mailbox (unlicensed, a mail user): nothing to read,
    not an error."""
    return exc.status == 404 and exc.code == "MailboxNotEnabledForRESTAPI"


# ------------------------------------------------------------------------------------------------ inbox rules


# Mailboxes whose rules are read at once (Graph allows 4 concurrent requests per mailbox; these are
# different mailboxes) and per commit.
RULE_READERS = 4
RULE_BATCH = 50


def _pull_inbox_rules(ctx: PullContext) -> None:
    """Read each mailbox's current inbox rules and record what differs from the directory: rules the audit
    log missed appear, rules gone from the mailbox are removed. One mailbox failing is reported, not fatal.
    Mailboxes are read a few at a time (a client per reader thread) and committed in batches, in address
    order, so a restart resumes after the last committed mailbox."""
    after = ctx.cursor.state.get("after", "")
    pass_started = ctx.cursor.state.get("pass_started") or iso(timezone.now())
    users = list(
        DirectoryUser.objects.filter(connection=ctx.connection, address__gt=after).order_by("address")
    )
    now = timezone.now()
    local = threading.local()
    readers: list[M365Client] = []
    lock = threading.Lock()

    def read(user: DirectoryUser) -> tuple[DirectoryUser, list[dict] | None, str]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = M365Client(ctx.connection)
            with lock:
                readers.append(client)
        url = client.graph(f"/users/{user.graph_id}/mailFolders/inbox/messageRules")
        try:
            remote = [r for page, _ in client.pages(url) for r in page if isinstance(r, dict)]
        except GraphError as exc:
            if _no_mailbox(exc):
                return user, [], "no mailbox"
            return user, None, str(exc)
        return user, remote, ""

    with ThreadPoolExecutor(max_workers=RULE_READERS, thread_name_prefix="m365-rules") as pool:
        for start in range(0, len(users), RULE_BATCH):
            batch = users[start : start + RULE_BATCH]
            events: list[dict[str, Any]] = []
            errors: list[tuple[str, str]] = []
            records = 0
            try:
                for user, remote, error in pool.map(read, batch):
                    if error == "no mailbox":
                        continue
                    if remote is None:
                        errors.append((user.address, f"inbox rules of {user.address}: {error}"))
                        continue
                    records += len(remote)
                    events.extend(_rule_events(ctx, user, remote, now, errors))
            finally:
                with lock:  # the readers' calls count in the run like the main client's
                    for reader in readers:
                        ctx.client.calls.extend(reader.calls)
                        ctx.client.throttled += reader.throttled
                        reader.calls.clear()
                        reader.throttled = 0
            ctx.commit(
                events,
                state={"after": batch[-1].address, "pass_started": pass_started},
                records=records,
                errors=errors,
            )
    ctx.commit([], state={}, records=0, watermark=parse_time(pass_started))


def _rule_events(
    ctx: PullContext, user: DirectoryUser, remote: list[dict], now: datetime, errors: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    local = list(InboxRule.objects.filter(tenant=ctx.tenant, mailbox__address=user.address).present())
    by_id = {rule.rule_id: rule for rule in local}
    by_name = {rule.name: rule for rule in local if rule.name}
    seen: set[str] = set()
    events = []
    for record in remote:
        try:
            graph_id = mapping._need(record, "id")[0]
            state = mapping.graph_rule_state(record)
        except RecordError as exc:
            errors.append((str(record.get("id", "?")), f"inbox rule of {user.address} {exc}"))
            continue
        existing = by_id.get(graph_id) or by_name.get(state["name"])
        rule_id = existing.rule_id if existing else graph_id
        seen.add(rule_id)
        if existing and {k: getattr(existing, k) for k in state} == state:
            continue
        events.append(
            {
                "type": "inbox_rule",
                "id": f"m365:rule:{graph_id}:{mapping.digest(state)}",
                "time": iso(now),
                "mailbox": user.address,
                "operation": "updated" if existing else "created",
                "rule_id": rule_id,
                **state,
            }
        )
    for rule in local:
        if rule.rule_id not in seen:
            events.append(
                {
                    "type": "inbox_rule",
                    "id": f"m365:rule:{rule.rule_id}:deleted:{mapping.digest(rule.state())}",
                    "time": iso(now),
                    "mailbox": user.address,
                    "operation": "deleted",
                    "rule_id": rule.rule_id,
                }
            )
    return events


PULLERS: dict[str, Callable[[PullContext], None]] = {
    Source.DOMAINS: _pull_domains,
    Source.USERS: _pull_users,
    Source.MESSAGE_TRACE: _pull_message_trace,
    Source.SIGN_INS: _pull_sign_ins,
    Source.AUDIT_EXCHANGE: _pull_audit,
    Source.INBOX_RULES: _pull_inbox_rules,
}
