"""The investigation graph (alert → mailbox → entities → actions → result), laid out here and drawn by the
template as server-side SVG: rectangles, text and paths with CSS classes only (the Content-Security-Policy
blocks inline ``style``), so no JavaScript is needed. Labels are plain text; the template escapes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alerts.models import Alert
from investigations.models import Finding, Investigation, RemediationAction

COLUMNS = ("Alerts", "User", "Entities", "Actions", "Result")
NODE_WIDTH = 196
NODE_HEIGHT = 56
COLUMN_GAP = 40
ROW_GAP = 12
HEADER = 26
MARGIN = 8
MAX_PER_COLUMN = 7
LABEL_CHARS = 24  # per line; a label wraps onto a second line, and its full text is the node's hover title
LABEL_LINES = 2


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    detail: str
    kind: str  # CSS modifier: alert, mailbox, malicious, suspicious, action-<status>, result-<status>, more
    x: float
    y: float
    href: str = ""
    title: str = ""

    @property
    def text_x(self) -> float:
        return self.x + 8

    @property
    def label_y(self) -> float:
        return self.y + 16

    @property
    def lines(self) -> tuple[tuple[str, float], ...]:
        """The label wrapped on word boundaries, each line with its baseline."""
        return tuple((line, self.y + 16 + 14 * n) for n, line in enumerate(_wrap(self.label)))

    @property
    def detail_y(self) -> float:
        return self.y + 16 + 14 * len(_wrap(self.label)) + 2


@dataclass(frozen=True)
class Edge:
    path: str
    kind: str


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    node_width: int
    node_height: int
    headers: tuple[tuple[str, float], ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class _Item:
    key: str
    label: str
    detail: str
    kind: str
    href: str = ""
    title: str = ""


def _short(text: str, limit: int = LABEL_CHARS * LABEL_LINES) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int = LABEL_CHARS, lines: int = LABEL_LINES) -> list[str]:
    """``text`` on at most ``lines`` lines of ``width`` characters, broken at spaces (or inside a long word,
    such as an address); the last line ends with "…" when text is left over."""
    words, out, current = text.split(), [], ""
    for word in words:
        while len(word) > width:
            if current:
                out.append(current)
                current = ""
            out.append(word[:width])
            word = word[width:]
        candidate = f"{current} {word}".strip()
        if len(candidate) <= width:
            current = candidate
        else:
            out.append(current)
            current = word
    if current:
        out.append(current)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1] + "…"
    return out or [""]


def _capped(items: Sequence[_Item], noun: str) -> list[_Item]:
    if len(items) <= MAX_PER_COLUMN:
        return list(items)
    hidden = len(items) - (MAX_PER_COLUMN - 1)
    return [
        *items[: MAX_PER_COLUMN - 1],
        _Item(f"more-{noun}", f"+{hidden} more {noun}", "open the list", "more"),
    ]


def _x(column: int) -> float:
    return MARGIN + column * (NODE_WIDTH + COLUMN_GAP)


def _curve(start: Node, end: Node) -> str:
    x1, y1 = start.x + NODE_WIDTH, start.y + NODE_HEIGHT / 2
    x2, y2 = end.x, end.y + NODE_HEIGHT / 2
    middle = (x1 + x2) / 2
    return f"M{x1:.1f},{y1:.1f} C{middle:.1f},{y1:.1f} {middle:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"


def build_graph(
    investigation: Investigation,
    *,
    alerts: Sequence[Alert],
    findings: Sequence[Finding],
    actions: Sequence[RemediationAction],
    urls: dict[str, str] | None = None,
    remediated: set[int] | frozenset[int] = frozenset(),
) -> Graph:
    """Lay the investigation out in five columns; each column shows at most ``MAX_PER_COLUMN`` nodes (the
    rest folded into a "+N more" node). Findings judged clean are left out: the graph shows threats.

    ``urls`` maps node keys (``alert-<id>``, ``mailbox``, ``finding-<id>``, ``action-<id>``, ``result``) to
    links; ``remediated`` holds the findings whose action was carried out: drawn as remediated, not as
    threats.
    """
    urls = urls or {}
    threats = [f for f in findings if f.verdict != Finding.Verdict.CLEAN]
    columns = _columns(investigation, alerts, threats, actions, remediated)
    tallest = max(len(column) for column in columns)
    height = HEADER + tallest * (NODE_HEIGHT + ROW_GAP) + MARGIN
    nodes = _place(columns, height, urls)
    edges = _edges(columns, nodes, actions)
    width = int(_x(len(COLUMNS) - 1) + NODE_WIDTH + MARGIN)
    headers = tuple((name, _x(index)) for index, name in enumerate(COLUMNS))
    return Graph(
        width=width,
        height=int(height),
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
        headers=headers,
        nodes=tuple(nodes.values()),
        edges=tuple(edges),
    )


def _columns(
    investigation: Investigation,
    alerts: Sequence[Alert],
    threats: Sequence[Finding],
    actions: Sequence[RemediationAction],
    remediated: set[int] | frozenset[int],
) -> list[list[_Item]]:
    """The five columns' items, each column capped at ``MAX_PER_COLUMN``."""
    mailbox = investigation.mailbox
    mailbox = investigation.mailbox
    return [
        _capped(
            [
                _Item(f"alert-{a.pk}", _short(a.title), a.get_severity_display(), "alert", title=a.title)
                for a in alerts
            ]
            or [_Item("alert-none", "Started by hand", "no alert", "alert")],
            "alerts",
        ),
        [
            _Item(
                "mailbox",
                _short(mailbox.address),
                _short(mailbox.display_name or "mailbox"),
                "mailbox",
                title=mailbox.address,
            )
        ],
        _capped(
            [
                _Item(
                    f"finding-{f.pk}",
                    _short(f.entity_label),
                    f"{f.get_entity_type_display()} · "
                    + ("Remediated" if f.pk in remediated else f.get_verdict_display()),
                    "remediated" if f.pk in remediated else f.verdict,
                    title=f"{f.get_entity_type_display()}: {f.entity_label}"
                    + (" (remediated)" if f.pk in remediated else f" ({f.get_verdict_display().lower()})"),
                )
                for f in threats
            ],
            "entities",
        ),
        _capped(
            [
                _Item(
                    f"action-{a.pk}",
                    _short(a.get_action_type_display()),
                    a.get_status_display(),
                    f"action-{a.status}",
                    title=f"{a.get_action_type_display()}: {a.target_label} ({a.get_status_display()})",
                )
                for a in actions
            ],
            "actions",
        ),
        [
            _Item(
                "result",
                investigation.get_status_display(),
                investigation.get_verdict_display() if investigation.verdict else "no verdict yet",
                f"result-{investigation.status}",
            )
        ],
    ]


def _place(columns: list[list[_Item]], height: float, urls: dict[str, str]) -> dict[str, Node]:
    """The nodes by key, each column centred vertically."""
    nodes: dict[str, Node] = {}
    for index, column in enumerate(columns):
        block = len(column) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
        top = HEADER + (height - HEADER - MARGIN - block) / 2
        for row, item in enumerate(column):
            nodes[item.key] = Node(
                key=item.key,
                label=item.label,
                detail=item.detail,
                kind=item.kind,
                x=_x(index),
                y=round(top + row * (NODE_HEIGHT + ROW_GAP), 1),
                href=urls.get(item.key, ""),
                title=item.title or item.label,
            )
    return nodes


def _edges(
    columns: list[list[_Item]], nodes: dict[str, Node], actions: Sequence[RemediationAction]
) -> list[Edge]:
    """Alerts into the user, the user out to each threat, each action from its finding (else the user) on to
    the result; without actions, the threats (else the user) straight to the result."""
    edges: list[Edge] = []
    mailbox_node = nodes["mailbox"]
    result_node = nodes["result"]
    for item in columns[0]:
        edges.append(Edge(_curve(nodes[item.key], mailbox_node), "edge"))
    for item in columns[2]:
        edges.append(Edge(_curve(mailbox_node, nodes[item.key]), "edge"))
    shown_findings = {item.key for item in columns[2]}
    for item in columns[3]:
        node = nodes[item.key]
        action = next((a for a in actions if f"action-{a.pk}" == item.key), None)
        source_key = f"finding-{action.finding_id}" if action is not None and action.finding_id else ""
        source = nodes[source_key] if source_key in shown_findings else mailbox_node
        edges.append(Edge(_curve(source, node), "edge"))
        edges.append(Edge(_curve(node, result_node), f"edge edge-{item.kind}"))
    if not columns[3]:
        for item in columns[2] or [columns[1][0]]:
            edges.append(Edge(_curve(nodes[item.key], result_node), "edge edge-quiet"))
    return edges
