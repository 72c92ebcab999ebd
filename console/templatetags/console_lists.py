"""Column headers that sort a list: ``{% sort_header "severity" "Severity" %}`` renders a ``<th>`` whose link
orders the list by that field (a second click reverses it), keeps every other filter once, drops the page,
and tells assistive technology the current order with ``aria-sort``."""

from __future__ import annotations

from django import template
from django.template import Context
from django.utils.html import format_html

from ..lists import single_valued

register = template.Library()


@register.simple_tag(takes_context=True)
def sort_header(context: Context, field: str, label: str, first: str = "asc", css: str = "") -> str:
    """A sortable ``<th>``; ``first="desc"`` when the newest / highest first is what an analyst wants."""
    request = context["request"]
    params = single_valued(request.GET)
    params.pop("page", None)
    params.pop("format", None)
    current = params.get("ordering", "")
    if current == field:
        state, target, arrow = "ascending", f"-{field}", " ▲"
    elif current == f"-{field}":
        state, target, arrow = "descending", field, " ▼"
    else:
        state, target, arrow = "none", f"-{field}" if first == "desc" else field, ""
    params["ordering"] = target
    return format_html(
        '<th scope="col" class="sortable{}" aria-sort="{}"><a href="?{}">{}<span aria-hidden="true">{}</span>'
        "</a></th>",
        f" {css}" if css else "",
        state,
        params.urlencode(),
        label,
        arrow,
    )
