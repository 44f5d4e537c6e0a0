"""Charts drawn on the server as SVG: numbers in, rectangles and polylines out.

A page's chart is plain SVG elements with classes (colours come from static/css/charts.css), so the
Content-Security-Policy stays strict: no script and no inline style, and nothing to load. Each chart
carries its numbers as rows too, which the template renders as the table behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

# The drawing's coordinate system (the SVG's viewBox); the page scales it to the width it has.
WIDTH, HEIGHT = 1000, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 22
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass
class Series:
    key: str  # also the CSS class that colours it
    label: str
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass
class Bucket:
    start: datetime
    label: str  # what the table's row and the axis say ("14:00", "Dec 7")


@dataclass
class Chart:
    """Counts per time bucket per series. `stacked`: bars whose segments add up (outcomes of runs);
    otherwise one line per series (measures that overlap, like sent and delivered)."""

    title: str
    caption: str
    buckets: list[Bucket]
    series: list[Series]
    stacked: bool
    empty_text: str = "Nothing in this period yet."
    bars: list[dict] = field(init=False, default_factory=list)
    lines: list[dict] = field(init=False, default_factory=list)
    ticks: list[dict] = field(init=False, default_factory=list)
    x_labels: list[dict] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        top = nice_ceiling(self.highest())
        values = sorted({0, top // 2, top})
        self.ticks = [{"value": v, "y": self._y(v, top), "x": LEFT - 6} for v in values]
        slot = PLOT_W / max(len(self.buckets), 1)
        every = max(1, math.ceil(len(self.buckets) / 12))  # at most a dozen labels under the axis
        self.x_labels = [
            {"x": round(LEFT + slot * (i + 0.5), 1), "text": b.label}
            for i, b in enumerate(self.buckets)
            if i % every == 0
        ]
        if self.stacked:
            self.bars = self._bars(top, slot)
        else:
            self.lines = self._lines(top, slot)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)

    @property
    def rows(self) -> list[dict]:
        """The table behind the chart: one row per bucket, a cell per series."""
        return [
            {"label": bucket.label, "start": bucket.start, "cells": [s.values[i] for s in self.series]}
            for i, bucket in enumerate(self.buckets)
        ]

    @property
    def height(self) -> int:
        return HEIGHT

    @property
    def width(self) -> int:
        return WIDTH

    @property
    def axis(self) -> dict:
        return {"x1": LEFT, "x2": WIDTH - RIGHT, "y": TOP + PLOT_H}

    def highest(self) -> int:
        if not self.buckets:
            return 0
        if self.stacked:
            return max(sum(s.values[i] for s in self.series) for i in range(len(self.buckets)))
        return max((max(s.values) for s in self.series if s.values), default=0)

    def _y(self, value: float, top: int) -> float:
        return round(TOP + PLOT_H - (value / top) * PLOT_H, 1) if top else TOP + PLOT_H

    def _bars(self, top: int, slot: float) -> list[dict]:
        width = max(1.0, round(slot * 0.7, 1))
        bars = []
        for i, bucket in enumerate(self.buckets):
            x, base, segments = round(LEFT + slot * i + (slot - width) / 2, 1), 0, []
            for s in self.series:
                value = s.values[i]
                if value:
                    y_top, y_base = self._y(base + value, top), self._y(base, top)
                    segments.append(
                        {
                            "key": s.key,
                            "label": s.label,
                            "value": value,
                            "y": y_top,
                            "h": round(y_base - y_top, 1),
                        }
                    )
                    base += value
            bars.append({"x": x, "width": width, "label": bucket.label, "total": base, "segments": segments})
        return bars

    def _lines(self, top: int, slot: float) -> list[dict]:
        lines = []
        for s in self.series:
            points = [
                {"x": round(LEFT + slot * (i + 0.5), 1), "y": self._y(v, top), "value": v, "label": b.label}
                for i, (b, v) in enumerate(zip(self.buckets, s.values, strict=True))
            ]
            lines.append(
                {
                    "key": s.key,
                    "label": s.label,
                    "total": s.total,
                    "points": points,
                    "path": " ".join(f"{p['x']},{p['y']}" for p in points),
                }
            )
        return lines


def nice_ceiling(value: int) -> int:
    """The axis's top: the value rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if value <= step * power)
