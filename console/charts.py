"""Server-drawn SVG charts: the view computes the geometry here, the template draws rectangles with CSS
classes (no inline ``style``: the Content-Security-Policy blocks it), so no JavaScript library is needed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Bar:
    label: str  # the bucket as a person reads it ("14:00", "Mon 3 Mar")
    count: int
    x: float
    y: float
    width: float
    height: float
    tick: bool  # whether the axis shows this bucket's label
    label_x: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    plot_height: int
    maximum: int
    total: int


def buckets(end: datetime, step: timedelta, count: int) -> list[datetime]:
    """The starts of ``count`` consecutive buckets of length ``step``, the last one containing ``end``."""
    return [end - step * offset for offset in range(count - 1, -1, -1)]


def bar_chart(
    title: str,
    points: Sequence[tuple[str, int]],
    *,
    width: int = 480,
    height: int = 140,
    tick_every: int = 1,
) -> BarChart:
    """Lay ``(label, count)`` points out as bars in a ``width`` by ``height`` box (the axis labels below)."""
    plot_height = height - 18
    maximum = max((count for _, count in points), default=0)
    pad = 16  # room for the first and last axis labels
    slot = (width - 2 * pad) / max(len(points), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    for index, (label, count) in enumerate(points):
        bar_height = round(plot_height * count / maximum, 1) if maximum else 0.0
        if count and bar_height < 2:
            bar_height = 2.0  # a non-zero bucket stays visible
        bars.append(
            Bar(
                label=label,
                count=count,
                x=round(pad + index * slot + gap / 2, 1),
                y=round(plot_height - bar_height, 1),
                width=round(slot - gap, 1),
                height=bar_height,
                tick=(len(points) - 1 - index) % tick_every == 0,
                label_x=round(pad + index * slot + slot / 2, 1),
            )
        )
    return BarChart(
        title=title,
        bars=tuple(bars),
        width=width,
        height=height,
        plot_height=plot_height,
        maximum=maximum,
        total=sum(count for _, count in points),
    )
