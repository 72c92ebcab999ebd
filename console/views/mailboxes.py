"""Mailboxes: the list (search, department, VIP, tenant, sorts, CSV, rule / forwarding / delegation
indicators, sent mail), a mailbox's detail (rules, forwarding and delegations with their history, sign-ins,
sent mail, open alerts, restriction) and the accepted domains page. Reads go through
:mod:`console.mailbox_queries`; changes through :mod:`mailboxes.services`. Readers see the pages without the
forms, and the server refuses their POSTs (403)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from alerts.models import Alert
from core.actors import acting_user
from core.exceptions import DomainError
from core.models import Tenant
from incidents.models import Incident
from investigations.models import Investigation
from mailboxes import services
from mailboxes.models import AcceptedDomain, Mailbox
from restricted_users.models import Restriction

from .. import mailbox_queries as queries
from ..forms_mailboxes import AcceptedDomainForm
from ..lists import FilteredListView, _csv_safe

VIEW = "mailboxes.view_mailbox"
VIEW_DOMAINS = "mailboxes.view_accepteddomain"
ADD_DOMAIN = "mailboxes.add_accepteddomain"
REMOVE_DOMAIN = "mailboxes.delete_accepteddomain"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _targets(targets: Iterable[queries.Target]) -> str:
    return " ".join(t.address for t in targets)


class MailboxListView(FilteredListView):
    """Mailboxes of every tenant, filtered in the URL, sortable (sent mail included), exportable as CSV."""

    model = Mailbox
    permission_required = VIEW
    template_name = "console/mailboxes.html"
    filterset_class = queries.MailboxListFilterSet
    csv_filename = "mailboxes.csv"
    csv_columns = (
        ("id", lambda m: m.pk),
        ("tenant", lambda m: m.tenant.slug),
        ("address", lambda m: m.address),
        ("display_name", lambda m: m.display_name),
        ("department", lambda m: m.department),
        ("vip", lambda m: m.vip),
        ("account_enabled", lambda m: m.account_enabled),
        ("first_seen", lambda m: _iso(m.first_seen)),
        ("last_sign_in", lambda m: _iso(m.last_sign_in_at)),
        ("last_sign_in_result", lambda m: m.last_sign_in_result or ""),
        ("last_sign_in_country", lambda m: m.last_sign_in_country or ""),
        ("sent_24h", lambda m: m.sent_24h),
        ("sent_7d", lambda m: m.sent_7d),
        ("inbox_rules", lambda m: m.indicators.rule_count),
        ("rule_forwarding_external", lambda m: _targets(m.indicators.external_rule_targets)),
        ("forwarding_to", lambda m: m.indicators.forwarding.address if m.indicators.forwarding else ""),
        ("forwarding_external", lambda m: m.indicators.external_forwarding),
        ("delegations", lambda m: m.indicators.delegation_count),
    )

    def base_queryset(self) -> QuerySet[Mailbox]:
        return queries.mailbox_list_queryset()

    def get_queryset(self) -> QuerySet[Mailbox]:
        self.single_tenant = Tenant.objects.is_single()
        self.filterset = self.filterset_class(
            self.request.GET,
            queryset=self.base_queryset(),
            request=self.request,
            show_tenant=not self.single_tenant,
        )
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(single_tenant=self.single_tenant, **kwargs)
        rows = context["object_list"]
        queries.attach_indicators(rows, queries.accepted_domains_by_tenant({m.tenant_id for m in rows}))
        return context

    def csv_rows(self, queryset: QuerySet[Mailbox]) -> Iterator[list[str]]:
        """The export streams in chunks; the indicators need the accepted domains, read once up front."""
        domains = queries.accepted_domains_by_tenant()
        yield [header for header, _ in self.csv_columns]
        for mailbox in queryset.iterator(chunk_size=2000):
            queries.attach_indicators([mailbox], domains)
            yield [_csv_safe(getter(mailbox)) for _, getter in self.csv_columns]


def _security_context(request: HttpRequest, mailbox: Mailbox) -> dict:
    """The mailbox's open alerts (count) and the restriction in force, for users who may see them."""
    user = request.user
    context: dict[str, Any] = {
        "open_alert_count": None,
        "restriction": None,
        "can_see_restrictions": False,
        "incidents": None,
        "open_investigation": None,
    }
    if user.has_perm("incidents.view_incident"):
        context["incidents"] = list(
            Incident.objects.for_mailbox(mailbox).order_by("-last_activity_at", "-id")[:10]
        )
    if user.has_perm("investigations.view_investigation"):
        # While one is open, the page links to it instead of offering to start another.
        context["open_investigation"] = (
            Investigation.objects.open().filter(mailbox=mailbox).order_by("-created_at", "-id").first()
        )
    if user.has_perm("alerts.view_alert"):
        context["open_alert_count"] = Alert.objects.open().filter(mailbox=mailbox).count()
    if user.has_perm("restricted_users.view_restriction"):
        context["can_see_restrictions"] = True
        context["restriction"] = (
            Restriction.objects.active().for_mailbox(mailbox).order_by("-placed_at").first()
        )
    return context


@permission_required(VIEW, raise_exception=True)
def mailbox_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One mailbox; an htmx request for another page of sent mail (``?sent_page=``) gets that section only."""
    mailbox = get_object_or_404(Mailbox.objects.select_related("tenant", "forwarding"), pk=pk)
    detail = queries.mailbox_detail(mailbox, sent_page=request.GET.get("sent_page") or 1)
    context = {
        "mailbox": mailbox,
        "detail": detail,
        "single_tenant": Tenant.objects.is_single(),
        "sign_ins_shown": queries.SIGN_INS_SHOWN,
        "history_cap": queries.HISTORY_CAP,
        "legacy_client_apps": queries.LEGACY_CLIENT_APPS,
        "bad_verdicts": queries.BAD_VERDICTS,
        **_security_context(request, mailbox),
    }
    template = "console/mailbox_detail.html"
    htmx = getattr(request, "htmx", None)
    if htmx and not htmx.boosted and "sent_page" in request.GET:
        template += "#sent"
    return render(request, template, context)


def _only_tenant() -> Tenant:
    """The tenant of a single-tenant deployment (the form then has no tenant field)."""
    return Tenant.objects.order_by("-is_default", "pk").first() or Tenant.objects.default()


@permission_required(VIEW_DOMAINS, raise_exception=True)
def accepted_domains(request: HttpRequest) -> HttpResponse:
    """The accepted domains of every tenant; administrators add one here (``POST``), others get 403."""
    single_tenant = Tenant.objects.is_single()
    can_add = request.user.has_perm(ADD_DOMAIN)
    form = AcceptedDomainForm(single_tenant=single_tenant) if can_add else None
    if request.method == "POST":
        if not can_add:
            raise PermissionDenied
        form = AcceptedDomainForm(request.POST, single_tenant=single_tenant)
        if form.is_valid():
            tenant = form.cleaned_data.get("tenant") or _only_tenant()
            try:
                accepted = services.add_accepted_domain(
                    tenant, form.cleaned_data["domain"], actor=acting_user(request)
                )
            except DomainError as exc:
                form.add_error("domain", str(exc))
            else:
                messages.success(request, f"{accepted.domain} is now an accepted domain of {tenant.name}.")
                return redirect("console:accepted_domains")
    context = {
        "domains": AcceptedDomain.objects.select_related("tenant").order_by("tenant__name", "domain"),
        "form": form,
        "single_tenant": single_tenant,
        "can_remove": request.user.has_perm(REMOVE_DOMAIN),
    }
    return render(
        request, "console/accepted_domains.html", context, status=400 if form and form.errors else 200
    )


@require_POST
@permission_required(REMOVE_DOMAIN, raise_exception=True)
def accepted_domain_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop accepting a domain (administrators); its mailboxes stay."""
    accepted = get_object_or_404(AcceptedDomain.objects.select_related("tenant"), pk=pk)
    services.remove_accepted_domain(accepted, actor=acting_user(request))
    messages.success(request, f"{accepted.domain} is no longer an accepted domain of {accepted.tenant.name}.")
    return redirect("console:accepted_domains")
