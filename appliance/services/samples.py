"""The printer chart: downsampled status samples, drawn as a server-rendered SVG.

Samples are taken when status is flushed (at most one per printer per
``SAMPLE_EVERY``) and trimmed to ``SAMPLE_WINDOW`` by the periodic purge, so
the table stays bounded: at most 720 rows per printer with the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.db import shielded
from appliance.models import StatusSample
from appliance.services.printers import SAMPLE_WINDOW

WIDTH, HEIGHT = 720, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 44, 12, 28
MAX_SERIES = 6


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class for the stroke colour
    points: str  # SVG polyline points


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    series: list[Series]
    progress: Series | None
    y_ticks: list[tuple[float, str]]  # (y, label) temperatures on the left
    p_ticks: list[tuple[float, str]]  # (y, label) progress on the right
    x_ticks: list[tuple[float, str]]  # (x, label) times, UTC
    plot: tuple[int, int, int, int]  # left, top, right, bottom
    summary: str  # the text alternative


def _number(value: Any) -> float | None:
    """A reading the chart can draw: a finite number (rows stored before NaN was refused may hold one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _actual(sample: StatusSample, name: str) -> float | None:
    reading = (sample.temperatures or {}).get(name)
    return _number(reading.get("actual")) if isinstance(reading, dict) else None


async def chart_for(herald, printer_id: str) -> Chart | None:
    since = herald.clock.now() - SAMPLE_WINDOW
    samples = await StatusSample.filter(printer_id=printer_id, taken_at__gte=since).order_by("taken_at")
    return build_chart(samples)


def build_chart(samples: list[StatusSample]) -> Chart | None:
    if len(samples) < 2:
        return None
    start, end = samples[0].taken_at, samples[-1].taken_at
    span = max((end - start).total_seconds(), 1.0)
    left, top, right, bottom = PAD_LEFT, PAD_TOP, WIDTH - PAD_RIGHT, HEIGHT - PAD_BOTTOM
    names: list[str] = []
    hottest = 50.0
    for sample in samples:
        for name, reading in (sample.temperatures or {}).items():
            if not isinstance(reading, dict):
                continue
            if name not in names and len(names) < MAX_SERIES:
                names.append(name)
            for value in (_number(reading.get("actual")), _number(reading.get("target"))):
                if value is not None:
                    hottest = max(hottest, value)
    top_temp = (int(hottest) // 50 + 1) * 50

    def x_of(moment: datetime) -> float:
        return left + (moment - start).total_seconds() / span * (right - left)

    def y_of(value: float, scale: float) -> float:
        return bottom - max(0.0, min(value, scale)) / scale * (bottom - top)

    series = []
    for index, name in enumerate(sorted(names, key=lambda n: (not n.startswith("tool"), n))):
        points = []
        for sample in samples:
            value = _actual(sample, name)
            if value is not None:
                points.append(f"{x_of(sample.taken_at):.1f},{y_of(value, top_temp):.1f}")
        if points:
            series.append(Series(name=name, css=f"series-{index}", points=" ".join(points)))
    progress_points = [f"{x_of(s.taken_at):.1f},{y_of(p, 100.0):.1f}"
                       for s in samples if (p := _number(s.progress)) is not None]
    progress = Series("progress %", "series-progress", " ".join(progress_points)) if progress_points else None
    y_ticks = [(y_of(t, top_temp), f"{t}°") for t in range(0, top_temp + 1, max(50, top_temp // 5 // 50 * 50))]
    p_ticks = [(y_of(p, 100.0), f"{p}%") for p in (0, 50, 100)]
    x_ticks = []
    for i in range(5):
        moment = start + (end - start) * (i / 4)
        x_ticks.append((x_of(moment), moment.strftime("%H:%M")))
    latest = samples[-1]
    parts = [f"{len(samples)} samples from {start:%H:%M} to {end:%H:%M} UTC"]
    for name in names:
        value = _actual(latest, name)
        if value is not None:
            parts.append(f"{name} last {value:.0f}°C")
    if (last_progress := _number(latest.progress)) is not None:
        parts.append(f"progress last {last_progress:.0f}%")
    return Chart(WIDTH, HEIGHT, series, progress, y_ticks, p_ticks, x_ticks, (left, top, right, bottom),
                 "; ".join(parts) + ".")


async def trim_samples(herald) -> int:
    cutoff = herald.clock.now() - SAMPLE_WINDOW
    return await shielded(StatusSample.filter(taken_at__lt=cutoff).delete())
