"""One look for the console's tables: ``{% listtable rows %}<caption>…</caption><thead>…</thead>
<tbody>…</tbody>{% empty %}No row yet.{% endlisttable %}`` renders the table in its scrolling wrapper when
``rows`` has any, and the sentence after ``{% empty %}`` in its place when it has none (nothing without
``{% empty %}``). Options: ``class="compact"`` (more classes of the table, after ``list``),
``empty_class="small"`` (the sentence's class, ``empty-state`` by default)."""

from __future__ import annotations

from django import template
from django.template import Context
from django.template.base import FilterExpression, Node, NodeList, Parser, Token, token_kwargs
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

OPTIONS = frozenset({"class", "empty_class"})


class ListTableNode(Node):
    def __init__(
        self,
        rows: FilterExpression,
        options: dict[str, FilterExpression],
        body: NodeList,
        empty: NodeList | None,
    ) -> None:
        self.rows = rows
        self.options = options
        self.body = body
        self.empty = empty

    def option(self, context: Context, name: str) -> str:
        value = self.options.get(name)
        return str(value.resolve(context)) if value is not None else ""

    def render(self, context: Context) -> SafeString:
        if self.rows.resolve(context, ignore_failures=True):
            more = self.option(context, "class")
            return format_html(
                '<div class="table-scroll"><table class="list{}">{}</table></div>',
                f" {more}" if more else "",
                self.body.render(context),
            )
        if self.empty is None:
            return SafeString()
        # The nodelist renders escaped already (autoescape): stripping the white space keeps it safe.
        sentence = mark_safe(self.empty.render(context).strip())  # noqa: S308
        css = self.option(context, "empty_class") or "empty-state"
        return format_html('<p class="{}">{}</p>', css, sentence)


@register.tag
def listtable(parser: Parser, token: Token) -> ListTableNode:
    """``{% listtable rows [class="…"] [empty_class="…"] %}…[{% empty %}…]{% endlisttable %}``."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("listtable takes the rows it shows: {% listtable rows %}")
    rows = parser.compile_filter(bits[1])
    remaining = bits[2:]
    options = token_kwargs(remaining, parser)
    if remaining or not OPTIONS.issuperset(options):
        raise template.TemplateSyntaxError(f"listtable options are {', '.join(sorted(OPTIONS))} (key=value)")
    body = parser.parse(("empty", "endlisttable"))
    empty = None
    if parser.next_token().contents == "empty":
        empty = parser.parse(("endlisttable",))
        parser.delete_first_token()
    return ListTableNode(rows, options, body, empty)
