"""One behaviour for every console list: server-side filters kept in the URL, sorting, pagination, a result
count, CSV export of the filtered set, and the rows partial for htmx requests."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from django import forms
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase, QueryDict, StreamingHttpResponse
from django.views.generic import ListView

from core.filters import FilterSet, UtcDateTimeField
from core.models import Tenant

# One ISO 8601 text control per bound of a time range, read in UTC (the browser's datetime-local control shows
# the analyst's locale, mm/dd/yyyy AM/PM in the US, while every time on the page is ISO UTC).
ISO_UTC_ATTRS = {
    "placeholder": "YYYY-MM-DD HH:MM",
    "pattern": r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?",
    "inputmode": "numeric",
    "size": "16",
    "autocomplete": "off",
}
# Filters that pick a period: shown together with the range bounds as one "Activity" control.
PERIOD_FILTERS = frozenset({"last", "period"})


# A list counts its rows up to this many: past it the page says "more than 10,000" (a COUNT over a million
# alerts costs more than the rest of the page) and pages stop at the cap; filters narrow it down.
RESULT_CAP = 10_000


class CappedPaginator(Paginator):
    """A paginator whose ``count`` stops at :data:`RESULT_CAP` rows, with ``capped`` telling whether there
    are more: the count reads at most ``RESULT_CAP + 1`` rows, unsorted, whatever the size of the list."""

    cap = RESULT_CAP

    @cached_property
    def _capped_count(self) -> tuple[int, bool]:
        rows = self.object_list
        # Only the keys, unsorted: the annotations a page shows (incident, investigation) cost per row.
        found = (
            rows.order_by().values("pk")[: self.cap + 1].count() if isinstance(rows, QuerySet) else len(rows)
        )
        return min(found, self.cap), found > self.cap

    @cached_property
    def count(self) -> int:
        return self._capped_count[0]

    @property
    def capped(self) -> bool:
        return self._capped_count[1]


class _Echo:
    def write(self, value: str) -> str:
        return value


class FilteredListView(PermissionRequiredMixin, ListView):
    """A list page. Subclasses set ``filterset_class``, ``template_name``, ``permission_required`` and
    ``csv_columns`` ((header, getter) pairs)."""

    filterset_class: type[FilterSet]
    paginate_by = 50
    paginator_class = CappedPaginator
    csv_columns: tuple[tuple[str, Callable], ...] = ()
    csv_filename = "export.csv"
    raise_exception = True
    # With one tenant, drop the filter's "Tenant" field and tell the template (``single_tenant``) so its
    # column goes too.
    hide_single_tenant = False

    def base_queryset(self) -> QuerySet:
        if self.model is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs a model or a base_queryset()")
        return self.model._default_manager.all()

    def get_queryset(self) -> QuerySet:
        # Always bound, so an invalid filter value is shown as a form error and simply not applied.
        self.filterset = self.filterset_class(
            single_valued(self.request.GET), queryset=self.base_queryset(), request=self.request
        )
        return self.filterset.qs

    def get(  # type: ignore[override]  # the CSV export streams (not an HttpResponse)
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        if request.GET.get("format") == "csv" and self.csv_columns:
            return self.csv_response(self.get_queryset())
        return super().get(request, *args, **kwargs)

    def get_template_names(self) -> list[str]:
        names = super().get_template_names()
        htmx = getattr(self.request, "htmx", None)
        if htmx and not htmx.boosted:
            return [f"{names[0]}#rows"]
        return names

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = single_valued(self.request.GET)
        params.pop("page", None)
        params.pop("format", None)
        context["filter"] = self.filterset
        context["querystring"] = params.urlencode()
        context["ordering"] = params.get("ordering", "")
        context["filter_layout"] = FilterLayout(self.filterset.form)
        paginator = context.get("paginator")
        context["result_count"] = paginator.count if paginator else len(context["object_list"])
        context["result_count_capped"] = bool(paginator and paginator.capped)
        if self.hide_single_tenant and Tenant.objects.is_single():
            self.filterset.form.fields.pop("tenant", None)
            context["single_tenant"] = True
        return context

    def csv_rows(self, queryset: QuerySet) -> Iterable[list]:
        yield [header for header, _ in self.csv_columns]
        for obj in queryset.iterator(chunk_size=2000):
            yield [_csv_safe(getter(obj)) for _, getter in self.csv_columns]

    def csv_response(self, queryset: QuerySet) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in self.csv_rows(queryset)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{self.csv_filename}"'
        return response


def single_valued(params: QueryDict) -> QueryDict:
    """``params`` with one value per key, the last one given (what ``QueryDict.get`` reads): a URL that
    repeats a key (an old bookmark, a hand-edited address) filters, paginates and exports as that value."""
    single = QueryDict(mutable=True)
    for key in params:
        single[key] = params.getlist(key)[-1]
    return single


class FilterLayout:
    """The filter form's fields split in two: the ordinary ones, and the time range (period and ISO UTC
    bounds) shown as one control, whose bounds become ISO text inputs. Split when the template first reads
    it, so a view may still drop fields (a single tenant's "Tenant") after building its context."""

    def __init__(self, form: forms.Form) -> None:
        self.form = form
        self._split: tuple[list, list] | None = None

    def _parts(self) -> tuple[list, list]:
        if self._split is None:
            plain, time_range = [], []
            for name, field in self.form.fields.items():
                if isinstance(field, UtcDateTimeField):
                    if not isinstance(field.widget, forms.TextInput) or field.widget.input_type != "text":
                        field.widget = forms.TextInput(attrs=ISO_UTC_ATTRS)
                    time_range.append(self.form[name])
                elif name in PERIOD_FILTERS:
                    time_range.append(self.form[name])
                else:
                    plain.append(self.form[name])
            self._split = (plain, time_range)
        return self._split

    @property
    def fields(self) -> list:
        return self._parts()[0]

    @property
    def time_range(self) -> list:
        return self._parts()[1]


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formulas in exported telemetry (subjects and names come from attackers)."""
    text = "" if value is None else str(value)
    if text[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + text
    return text
