"""Bar charts as plain geometry for an SVG template (templates/includes/bar_chart.html): no chart library.

A chart is a list of labelled bars, each a stack of series; the template only draws rectangles and text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Units of the SVG's viewBox. Text scales with the chart, so the width is kept small enough that the
# axis labels (16 units, static/css/site.css) read at about 16 px on a desktop and 10 px on a phone.
WIDTH = 480
HEIGHT = 200
LEFT_MARGIN = 44  # room for the value labels of the y axis
BOTTOM_MARGIN = 26  # room for the time labels of the x axis
TOP_MARGIN = 22  # room for the top value label, which sits above its grid line
LABEL_LIFT = 4  # value labels sit this far above their grid line, so "0" never meets the first time label
MOST_X_LABELS = 6


@dataclass(frozen=True)
class Series:
    key: str  # the CSS class suffix: .series-<key>
    label: str


@dataclass(frozen=True)
class Segment:
    series: Series
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    label: str
    x: float
    width: float
    segments: list[Segment]

    @property
    def total(self) -> int:
        return sum(segment.value for segment in self.segments)

    @property
    def summary(self) -> str:
        """What a pointer hover (the SVG <title>) says about the bar."""
        parts = ", ".join(f"{segment.series.label} {segment.value:,}" for segment in self.segments)
        return f"{self.label}: {parts}"


@dataclass(frozen=True)
class Tick:
    label: str
    y: float

    @property
    def label_y(self) -> float:
        return self.y - LABEL_LIFT


@dataclass(frozen=True)
class XLabel:
    label: str
    x: float


@dataclass(frozen=True)
class BarChart:
    title: str
    series: list[Series]
    bars: list[Bar]
    y_ticks: list[Tick]
    x_labels: list[XLabel]
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT_MARGIN
    plot_bottom: int = HEIGHT - BOTTOM_MARGIN

    @property
    def is_empty(self) -> bool:
        return all(bar.total == 0 for bar in self.bars)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten that is at least `value` (axes read better)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def tick_steps(top: int) -> int:
    """How many equal steps divide the axis into whole numbers: 4 or 5 where they fit, else fewer."""
    return next(steps for steps in (4, 5, 2, 1) if top % steps == 0)


def short_number(value: float) -> str:
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def bar_chart(*, title: str, series: Sequence[Series], points: Sequence[tuple[str, Sequence[int]]]) -> BarChart:
    """`points` are (x label, one value per series) in order; series stack from the bottom up."""
    plot_height = HEIGHT - BOTTOM_MARGIN - TOP_MARGIN
    plot_bottom = HEIGHT - BOTTOM_MARGIN
    top = nice_ceiling(max((sum(values) for _, values in points), default=0))
    slot = (WIDTH - LEFT_MARGIN) / max(len(points), 1)
    bar_width = max(slot * 0.7, 1.0)
    bars = []
    for index, (label, values) in enumerate(points):
        segments = []
        base = float(plot_bottom)
        for one_series, value in zip(series, values, strict=True):
            height = plot_height * value / top
            base -= height
            segments.append(Segment(series=one_series, value=value, y=round(base, 2), height=round(height, 2)))
        x = LEFT_MARGIN + slot * index + (slot - bar_width) / 2
        bars.append(Bar(label=label, x=round(x, 2), width=round(bar_width, 2), segments=segments))
    steps = tick_steps(top)
    ticks = [
        Tick(label=short_number(top * step / steps), y=round(plot_bottom - plot_height * step / steps, 2))
        for step in range(steps + 1)
    ]
    every = max(1, math.ceil(len(bars) / MOST_X_LABELS))
    x_labels = [XLabel(label=bar.label, x=round(bar.x + bar.width / 2, 2)) for bar in bars[::every]]
    return BarChart(title=title, series=list(series), bars=bars, y_ticks=ticks, x_labels=x_labels)
