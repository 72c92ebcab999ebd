"""Template filters over :mod:`console.presenters`: ``{{ event.action|audit_action }}`` and
``{{ event|audit_change }}`` (one line per changed key, escaped), ``{{ value|human:key }}``."""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.models import AuditEvent

from .. import presenters

register = template.Library()


@register.filter
def audit_action(action: str) -> str:
    return presenters.action_label(action or "")


@register.filter
def audit_change(event: AuditEvent) -> SafeString:
    """The before → after of an audit row in words, one line per key, then its comment."""
    lines = presenters.change_lines(event.before, event.after)
    html = format_html_join("", '<div class="change-line">{}</div>', ((line,) for line in lines))
    if event.comment:
        html += format_html('<div class="comment">{}</div>', event.comment)
    return html


@register.filter
def human(value: object, key: str = "") -> str:
    """A stored value in words, with the unit of ``key`` when it is a known threshold."""
    return presenters.value_text(value, key or None)


@register.filter
def key_label(key: str) -> str:
    return presenters.key_label(key)
