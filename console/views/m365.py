"""The Microsoft 365 pages: the connections, connecting a tenant, and each connection's connector status
(pull cursors per source, recent pull runs, the last test against the permission table).

Everyone with a role reads them; administrators connect, test, pull now, change the credential, enable or
disable and disconnect, each through :mod:`m365.services` (or the ``m365.pull`` task). A credential is
write-only: it is typed into a form that never renders it back, and no page shows any part of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.actors import acting_user
from m365 import services
from m365.api.filtersets import PullRunFilterSet
from m365.models import M365Connection, PullCursor, PullRun, Source
from m365.permissions import REQUIREMENTS

from ..forms_m365 import ConnectTenantForm, CredentialForm
from ..lists import FilteredListView
from .submit import call_service

VIEW = "m365.view_m365connection"
ADD = "m365.add_m365connection"
CHANGE = "m365.change_m365connection"
DELETE = "m365.delete_m365connection"


def _connections() -> QuerySet[M365Connection]:
    # The ciphertext is never needed to show a connection: keep it out of the page's memory altogether.
    return M365Connection.objects.select_related("tenant", "created_by").defer("credential_ciphertext")


def span(delta: timedelta | None) -> str:
    """A duration as people read it: "4.2 s", "12 min", "3 h 5 min", "2 d 3 h"; "—" for none."""
    if delta is None:
        return "—"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@dataclass(frozen=True)
class SourceStatus:
    """How the pull of one source of a connection stands (a source never pulled has no cursor yet)."""

    source: str
    label: str
    cursor: PullCursor | None

    @property
    def short_label(self) -> str:
        return self.label.split(" (")[0]

    @property
    def state(self) -> str:
        cursor = self.cursor
        if cursor is None or cursor.last_attempt_at is None:
            return "never"
        if cursor.running_since is not None:
            return "running"
        return "failing" if cursor.consecutive_failures else "ok"

    @property
    def state_label(self) -> str:
        return {"never": "Not pulled yet", "running": "Running", "failing": "Failing", "ok": "OK"}[self.state]

    @property
    def css(self) -> str:
        return {"never": "never", "running": "running", "failing": "failed", "ok": "ok"}[self.state]

    @property
    def lag(self) -> str:
        return span(self.cursor.lag) if self.cursor and self.cursor.watermark else "—"

    @property
    def resume_pending(self) -> bool:
        state = self.cursor.state if self.cursor else {}
        return bool(state.get("next") or state.get("after"))


def source_statuses(connection: M365Connection) -> list[SourceStatus]:
    """One row per :class:`~m365.models.Source`, from the connection's (prefetched) cursors."""
    cursors = {cursor.source: cursor for cursor in connection.cursors.all()}
    return [SourceStatus(value, label, cursors.get(value)) for value, label in Source.choices]


def requirement_rows(connection: M365Connection) -> list[dict]:
    """The permission table with what the last successful sign-in found granted (None: not known)."""
    granted = set(connection.granted_permissions or [])
    known = connection.test_ok is True or bool(connection.missing_permissions) or bool(granted)
    return [
        {"requirement": req, "granted": req.satisfied_by(granted) if known else None} for req in REQUIREMENTS
    ]


def _report_test(request: HttpRequest, result: services.TestResult) -> None:
    (messages.success if result.ok else messages.error)(request, f"Test connection: {result.message}")


def _tested(request: HttpRequest, connection: M365Connection, done: str) -> HttpResponse:
    """Say ``done``, test the connection straight away and show its page with the result."""
    messages.success(request, done)
    _report_test(request, services.test_connection(connection, actor=acting_user(request)))
    return redirect("console:m365_connection", pk=connection.pk)


@permission_required(VIEW, raise_exception=True)
def connection_list(request: HttpRequest) -> HttpResponse:
    """Every connection with its ids, credential kind and date, last test and a compact status per source."""
    connections = list(_connections().prefetch_related("cursors"))
    rows = [{"connection": c, "sources": source_statuses(c)} for c in connections]
    return render(
        request,
        "console/m365_connections.html",
        {"rows": rows, "can_add": request.user.has_perm(ADD)},
    )


@never_cache  # the form carries a client secret: no copy in any cache
@permission_required(ADD, raise_exception=True)
def connection_connect(request: HttpRequest) -> HttpResponse:
    """Connect a tenant (administrators), then test the connection straight away."""
    form = ConnectTenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        connection = call_service(
            form, lambda: services.connect_tenant(actor=acting_user(request), **form.service_kwargs())
        )
        if connection is not None:
            return _tested(request, connection, f"{connection.tenant.name} is connected to Microsoft 365.")
    return render(request, "console/m365_connect.html", {"form": form}, status=400 if form.errors else 200)


class ConnectionDetailView(FilteredListView):
    """The connector status page: each source's cursor, the last test and the permission table, and the
    connection's pull runs (filtered, paged, CSV); administrators get the buttons."""

    model = PullRun
    permission_required = VIEW
    template_name = "console/m365_connection.html"
    filterset_class = PullRunFilterSet
    paginate_by = 25
    csv_columns = (
        ("started", lambda r: r.started_at.isoformat()),
        ("finished", lambda r: r.finished_at.isoformat() if r.finished_at else ""),
        ("source", lambda r: r.source),
        ("status", lambda r: r.status),
        ("resumed", lambda r: r.resumed),
        ("pages", lambda r: r.pages),
        ("records", lambda r: r.records),
        ("accepted", lambda r: r.accepted),
        ("duplicates", lambda r: r.duplicates),
        ("rejected", lambda r: r.rejected),
        ("requests", lambda r: r.requests),
        ("throttled", lambda r: r.throttled),
        ("error", lambda r: r.error),
    )

    def get(  # type: ignore[override]  # as FilteredListView.get: the CSV export streams
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        self.connection = get_object_or_404(_connections().prefetch_related("cursors"), pk=kwargs["pk"])
        self.csv_filename = f"m365-pull-runs-{self.connection.tenant.slug}.csv"
        return super().get(request, *args, **kwargs)

    def base_queryset(self) -> QuerySet:
        return PullRun.objects.filter(connection=self.connection)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        for run in context["object_list"]:
            run.duration_text = span(run.duration)
        user = self.request.user
        return {
            **context,
            "connection": self.connection,
            "sources": source_statuses(self.connection),
            "requirements": requirement_rows(self.connection),
            "can_manage": user.has_perm(CHANGE),
            "can_delete": user.has_perm(DELETE),
        }


def _connection_or_404(pk: int) -> M365Connection:
    return get_object_or_404(M365Connection.objects.select_related("tenant"), pk=pk)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Sign in as the app and compare its permissions with the table; the result is saved and shown."""
    connection = _connection_or_404(pk)
    _report_test(request, services.test_connection(connection, actor=acting_user(request)))
    return redirect("console:m365_connection", pk=pk)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_pull(request: HttpRequest, pk: int) -> HttpResponse:
    """Pull every source now (or the one named in ``source``), whether it is due or not."""
    connection = _connection_or_404(pk)
    source = request.POST.get("source", "")
    if source and source not in Source.values:
        messages.error(request, "Choose a source to pull.")
    elif not connection.enabled:
        messages.error(request, "The connection is disabled: enable it to pull.")
    else:
        services.request_pull(connection, actor=acting_user(request), source=source)
        what = Source(source).label if source else "Every source"
        messages.success(request, f"{what}: pull queued. Refresh this page to follow it.")
    return redirect("console:m365_connection", pk=pk)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause (``enabled=false``) or resume (``enabled=true``) the pulls and actions of a connection."""
    connection = _connection_or_404(pk)
    enabled = request.POST.get("enabled") == "true"
    services.set_enabled(connection, actor=acting_user(request), enabled=enabled)
    messages.success(
        request, f"{connection.tenant.name}: Microsoft 365 {'enabled' if enabled else 'disabled'}."
    )
    return redirect("console:m365_connection", pk=pk)


@never_cache
@permission_required(CHANGE, raise_exception=True)
def connection_credential(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace the client secret or certificate, then test the connection with it."""
    connection = _connection_or_404(pk)
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        changed = call_service(
            form,
            lambda: services.change_credential(connection, actor=acting_user(request), **form.credential()),
        )
        if changed is not None:
            return _tested(request, connection, f"{connection.tenant.name}: credential changed.")
    return render(
        request,
        "console/m365_credential.html",
        {"connection": connection, "form": form},
        status=400 if form.errors else 200,
    )


@permission_required(DELETE, raise_exception=True)
def connection_disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask first (GET); forget the connection and its credential (POST). The organisation's data stays."""
    connection = _connection_or_404(pk)
    if request.method == "POST":
        tenant = services.disconnect(connection, actor=acting_user(request))
        messages.success(request, f"{tenant.name} is disconnected from Microsoft 365; its data stays.")
        return redirect("console:m365_connections")
    return render(request, "console/m365_disconnect.html", {"connection": connection})
