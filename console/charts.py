"""Server-drawn SVG charts: the view computes the geometry here, the template draws rectangles with CSS
classes (no inline ``style``: the Content-Security-Policy blocks it), so no JavaScript library is needed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


def buckets(end: datetime, step: timedelta, count: int) -> list[datetime]:
    """The starts of ``count`` consecutive buckets of length ``step``, the last one containing ``end``."""
    return [end - step * offset for offset in range(count - 1, -1, -1)]


@dataclass(frozen=True)
class Segment:
    key: str  # CSS modifier (the severity)
    label: str
    count: int
    y: float
    height: float


@dataclass(frozen=True)
class StackedBar:
    label: str
    count: int
    x: float
    width: float
    segments: tuple[Segment, ...]
    tick: bool
    label_x: float


@dataclass(frozen=True)
class StackedChart:
    """Bars stacked by series (bottom first), with a y axis: gridlines and their values at 0, half, max."""

    title: str
    bars: tuple[StackedBar, ...]
    series: tuple[tuple[str, str], ...]
    width: int
    height: int
    plot_top: int
    plot_height: int
    axis_x: int
    maximum: int
    total: int
    ticks: tuple[tuple[int, float], ...]


def stacked_chart(
    title: str,
    points: Sequence[tuple[str, dict[str, int]]],
    series: Sequence[tuple[str, str]],
    *,
    width: int = 480,
    height: int = 160,
    tick_every: int = 1,
) -> StackedChart:
    """Lay ``(label, {series: count})`` points out as stacked bars; ``series`` is (key, label), bottom
    first."""
    axis_x, plot_top, bottom_room = 30, 6, 18
    plot_height = height - plot_top - bottom_room
    totals = [sum(counts.get(key, 0) for key, _ in series) for _, counts in points]
    maximum = max(totals, default=0)
    scale_max = _nice_ceiling(maximum)
    slot = (width - axis_x - 8) / max(len(points), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    for index, ((label, counts), total) in enumerate(zip(points, totals, strict=True)):
        base: float = plot_top + plot_height
        segments = []
        for key, series_label in series:
            count = counts.get(key, 0)
            if not count:
                continue
            segment_height = max(round(plot_height * count / scale_max, 1), 1.5)
            base -= segment_height
            segments.append(Segment(key, series_label, count, round(base, 1), segment_height))
        bars.append(
            StackedBar(
                label=label,
                count=total,
                x=round(axis_x + index * slot + gap / 2, 1),
                width=round(slot - gap, 1),
                segments=tuple(segments),
                tick=(len(points) - 1 - index) % tick_every == 0,
                label_x=round(axis_x + index * slot + slot / 2, 1),
            )
        )
    ticks = tuple(
        (value, round(plot_top + plot_height - plot_height * value / scale_max, 1))
        for value in sorted({0, scale_max // 2, scale_max})
    )
    return StackedChart(
        title=title,
        bars=tuple(bars),
        series=tuple(series),
        width=width,
        height=height,
        plot_top=plot_top,
        plot_height=plot_height,
        axis_x=axis_x,
        maximum=maximum,
        total=sum(totals),
        ticks=ticks,
    )


def _nice_ceiling(value: int) -> int:
    """The axis top: ``value`` rounded up to 1, 2 or 5 × a power of ten (at least 2, so half is whole)."""
    if value <= 2:
        return 2
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude
