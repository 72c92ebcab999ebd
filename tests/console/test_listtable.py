"""``{% listtable %}``: the console's tables in their scrolling wrapper, or the sentence that stands in
their place when there is no row, escaped like the rest of the page."""

from __future__ import annotations

import pytest
from django.template import TemplateSyntaxError, engines

TABLE = (
    "{% load console_tables %}{% listtable rows class=css empty_class=empty_css %}"
    "<tbody>{% for row in rows %}<tr><td>{{ row }}</td></tr>{% endfor %}</tbody>"
    "{% empty %}\n  No <em>{{ what }}</em> yet.\n{% endlisttable %}"
)


def render(source: str, **context: object) -> str:
    return engines["django"].from_string(source).render(context)


def test_it_draws_the_rows_in_the_scrolling_list_table() -> None:
    html = render(TABLE, rows=["a", "<b>"])
    assert html == (
        '<div class="table-scroll"><table class="list">'
        "<tbody><tr><td>a</td></tr><tr><td>&lt;b&gt;</td></tr></tbody></table></div>"
    )


def test_it_adds_the_classes_it_is_given_after_list() -> None:
    assert render(TABLE, rows=["a"], css="compact history").startswith(
        '<div class="table-scroll"><table class="list compact history">'
    )


def test_without_rows_it_shows_the_empty_sentence_escaped_and_trimmed() -> None:
    html = render(TABLE, rows=[], what="<token>")
    assert html == '<p class="empty-state">No <em>&lt;token&gt;</em> yet.</p>'


def test_the_empty_sentence_takes_the_class_it_is_given() -> None:
    html = render(TABLE, rows=None, what="token", empty_css="small")
    assert html == '<p class="small">No <em>token</em> yet.</p>'


def test_without_an_empty_part_it_shows_nothing_when_there_is_no_row() -> None:
    source = "{% load console_tables %}{% listtable rows %}<tbody></tbody>{% endlisttable %}."
    assert render(source, rows=[]) == "."
    assert render(source) == "."


@pytest.mark.parametrize(
    "tag",
    ["{% listtable %}", '{% listtable rows colour="red" %}', "{% listtable rows compact %}"],
)
def test_it_refuses_a_tag_it_cannot_read(tag: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        render("{% load console_tables %}" + tag + "{% endlisttable %}")
