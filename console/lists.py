"""One behaviour for every console list: server-side filters kept in the URL, sorting, pagination, a result
count, CSV export of the filtered set, and the rows partial for htmx requests."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import StreamingHttpResponse
from django.views.generic import ListView


class _Echo:
    def write(self, value: str) -> str:
        return value


class FilteredListView(PermissionRequiredMixin, ListView):
    """A list page. Subclasses set ``filterset_class``, ``template_name``, ``permission_required`` and
    ``csv_columns`` ((header, getter) pairs)."""

    filterset_class = None
    paginate_by = 50
    csv_columns: tuple[tuple[str, Callable], ...] = ()
    csv_filename = "export.csv"
    raise_exception = True

    def base_queryset(self):
        return self.model.objects.all()

    def get_queryset(self):
        # Always bound, so an invalid filter value is shown as a form error and simply not applied.
        self.filterset = self.filterset_class(
            self.request.GET, queryset=self.base_queryset(), request=self.request
        )
        return self.filterset.qs

    def get(self, request, *args, **kwargs):
        if request.GET.get("format") == "csv" and self.csv_columns:
            return self.csv_response(self.get_queryset())
        return super().get(request, *args, **kwargs)

    def get_template_names(self) -> list[str]:
        names = super().get_template_names()
        if getattr(self.request, "htmx", False) and not self.request.htmx.boosted:
            return [f"{names[0]}#rows"]
        return names

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET.copy()
        params.pop("page", None)
        params.pop("format", None)
        context["filter"] = self.filterset
        context["querystring"] = params.urlencode()
        context["result_count"] = (
            context["paginator"].count if context.get("paginator") else len(context["object_list"])
        )
        return context

    def csv_rows(self, queryset) -> Iterable[list]:
        yield [header for header, _ in self.csv_columns]
        for obj in queryset.iterator(chunk_size=2000):
            yield [_csv_safe(getter(obj)) for _, getter in self.csv_columns]

    def csv_response(self, queryset) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in self.csv_rows(queryset)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{self.csv_filename}"'
        return response


def _csv_safe(value) -> str:
    """Neutralise spreadsheet formulas in exported telemetry (subjects and names come from attackers)."""
    text = "" if value is None else str(value)
    if text[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + text
    return text
