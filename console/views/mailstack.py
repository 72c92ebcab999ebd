"""The Mail servers pages (self-hosted Postfix + Dovecot + Rspamd, DESIGN section 13): the connections, and
each connection's status: the two endpoints with their configuration snippets, the last request and event
per source (Rspamd, Dovecot, Sieve) with its lag, errors, events waiting, the last Sieve read and the last
test. Everyone with a role reads them; administrators connect, test, read Sieve now, rotate the secrets and
change the settings, through :mod:`mailstack.services`. The secrets are shown once, in the answer to the
request that generated them; the console keeps only their hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.actors import acting_user
from mailstack import geo, services, snippets, state
from mailstack.doveadm import DoveadmError
from mailstack.exceptions import MailstackError
from mailstack.models import MailstackConnection, SieveScript

from ..forms_mailstack import ConnectMailServersForm, MailServersSettingsForm
from .m365 import span

VIEW = "mailstack.view_mailstackconnection"
ADD = "mailstack.add_mailstackconnection"
CHANGE = "mailstack.change_mailstackconnection"
SOURCES = (
    ("rspamd", "Rspamd (sent mail and verdicts)"),
    ("dovecot", "Dovecot (sign-ins)"),
    ("sieve", "Sieve (rules and forwarding)"),
)


def _at(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def source_rows(connection: MailstackConnection) -> tuple[list[dict], dict]:
    status = state.read_status(connection.tenant.slug)
    now = datetime.now(UTC)
    rows = []
    for key, label in SOURCES:
        entry = status.get(key, {})
        last_event = _at(entry.get("event_at"))
        rows.append(
            {
                "label": label,
                "last_request": _at(entry.get("last_at")),
                "last_event": last_event,
                "lag": span(now - last_event) if last_event else "—",
                "count": entry.get("count", 0),
                "skipped": entry.get("skipped", 0),
                "dropped": entry.get("dropped", 0),
                "error": entry.get("error", ""),
                "error_at": _at(entry.get("error_at")),
            }
        )
    return rows, status


def _context(
    request: HttpRequest, connection: MailstackConnection, fresh: services.Secrets | None = None
) -> dict:
    console_url = request.build_absolute_uri("/").rstrip("/")
    slug = connection.tenant.slug
    rows, status = source_rows(connection)
    return {
        "connection": connection,
        "sources": rows,
        "redis_error": status.get("redis", {}).get("error", ""),
        "waiting": status.get("queue", {}).get("waiting", 0),
        "endpoints": snippets.endpoint_urls(console_url, slug),
        "rspamd_snippet": snippets.rspamd(console_url, slug, fresh.exporter if fresh else ""),
        "dovecot_snippet": snippets.dovecot(console_url, slug, fresh.policy if fresh else ""),
        "postfix_snippet": snippets.postfix(),
        "fresh": fresh,
        "scripts": SieveScript.objects.filter(tenant=connection.tenant).count(),
        "geoip": geo.source(),
        "doveadm_key_set": bool(settings.MAILSTACK_DOVEADM_API_KEY),
        "can_manage": request.user.has_perm(CHANGE),
        "form": MailServersSettingsForm(
            initial={"doveadm_url": connection.doveadm_url, "enabled": connection.enabled}
        ),
    }


@permission_required(VIEW, raise_exception=True)
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = list(MailstackConnection.objects.select_related("tenant"))
    form = ConnectMailServersForm() if request.user.has_perm(ADD) else None
    return render(request, "console/mailstack_connections.html", {"connections": connections, "form": form})


@require_POST
@permission_required(ADD, raise_exception=True)
def connection_connect(request: HttpRequest) -> HttpResponse:
    """Connect an organisation; the answer shows the two new secrets, once."""
    form = ConnectMailServersForm(request.POST)
    if form.is_valid():
        try:
            connection, fresh = services.connect_mail_servers(
                form.cleaned_data["tenant"],
                actor=acting_user(request),
                doveadm_url=form.cleaned_data["doveadm_url"],
            )
        except MailstackError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{connection.tenant.name} is connected to its mail servers.")
            return render(request, "console/mailstack_connection.html", _context(request, connection, fresh))
    connections = list(MailstackConnection.objects.select_related("tenant"))
    return render(
        request, "console/mailstack_connections.html", {"connections": connections, "form": form}, status=400
    )


@permission_required(VIEW, raise_exception=True)
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(MailstackConnection.objects.select_related("tenant"), pk=pk)
    return render(request, "console/mailstack_connection.html", _context(request, connection))


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(MailstackConnection.objects.select_related("tenant"), pk=pk)
    ok, message = services.test_connection(connection, actor=acting_user(request))
    (messages.success if ok else messages.error)(request, f"Test: {message}")
    return redirect("console:mailstack_connection", pk=pk)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_secrets(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(MailstackConnection.objects.select_related("tenant"), pk=pk)
    fresh = services.rotate_secrets(connection, actor=acting_user(request))
    messages.warning(request, "New secrets: copy them into Rspamd and Dovecot now; they are not shown again.")
    connection.refresh_from_db()
    return render(request, "console/mailstack_connection.html", _context(request, connection, fresh))


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_settings(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(MailstackConnection.objects.select_related("tenant"), pk=pk)
    form = MailServersSettingsForm(request.POST)
    if form.is_valid():
        try:
            services.update_connection(connection, actor=acting_user(request), **form.cleaned_data)
        except MailstackError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Settings saved.")
    else:
        messages.error(request, "Give the doveadm URL as http(s)://host:port/doveadm/v1.")
    return redirect("console:mailstack_connection", pk=pk)


@require_POST
@permission_required(CHANGE, raise_exception=True)
def connection_read_sieve(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(MailstackConnection.objects.select_related("tenant"), pk=pk)
    try:
        result = services.read_sieve(connection)
    except (DoveadmError, MailstackError) as exc:
        messages.error(request, f"Sieve read failed: {exc}")
    else:
        messages.success(request, f"Sieve scripts read: {result.accepted} change(s) stored.")
    return redirect("console:mailstack_connection", pk=pk)
