"""Times as the console shows them: UTC on the page, the analyst's local time on hover.

``{{ value|utc_time }}`` renders ``<time datetime="2026-03-02T12:00:00+00:00" title="…">2026-03-02 12:00
UTC</time>``; ``static/console/localtime.js`` replaces the title with the browser's local time (after htmx
swaps too). Without JavaScript the title says the same UTC time."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html

register = template.Library()

FORMATS = {"": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S"}


@register.filter
def utc_time(value: datetime | None, precision: str = "") -> str:
    """A ``<time>`` element in UTC (``precision="seconds"`` adds the seconds); "" for no value."""
    if not isinstance(value, datetime):
        return ""
    value = value.astimezone(UTC)
    shown = f"{value.strftime(FORMATS.get(precision, FORMATS['']))} UTC"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), shown, shown)


@register.filter
def utc_cell(value: datetime | None, precision: str = "") -> str:
    """A ``<time>`` for a table cell under a "(UTC)" header: the time without the repeated "UTC", kept on
    one line; the title (and the local time on hover) still says it."""
    if not isinstance(value, datetime):
        return ""
    value = value.astimezone(UTC)
    shown = value.strftime(FORMATS.get(precision, FORMATS[""]))
    return format_html(
        '<time class="cell-time" datetime="{}" title="{} UTC">{}</time>', value.isoformat(), shown, shown
    )
