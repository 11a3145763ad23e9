"""The printer chart: downsampled status samples, drawn as a server-rendered SVG.

Samples are taken when status is flushed (at most one per printer per
``SAMPLE_EVERY``) and trimmed to ``SAMPLE_WINDOW`` by the periodic purge, so
the table stays bounded: at most 720 rows per printer with the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from appliance.core.db import shielded
from appliance.core.herald import Herald
from appliance.printers.models import StatusSample
from appliance.printers.status import SAMPLE_WINDOW

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
    progress: Series | None  # the first job's span (kept for callers that draw one line)
    y_ticks: list[tuple[float, str]]  # (y, label) temperatures on the left
    p_ticks: list[tuple[float, str]]  # (y, label) progress on the right
    x_ticks: list[tuple[float, str]]  # (x, label) times in the zone build_chart was given
    plot: tuple[int, int, int, int]  # left, top, right, bottom
    summary: str  # the text alternative
    # One polyline per job: a gap between jobs, never a line falling from 100 % to 0 %.
    progress_spans: tuple[Series, ...] = ()


def _number(value: Any) -> float | None:
    """A reading the chart can draw: a finite number (rows stored before NaN was refused may hold one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _actual(sample: StatusSample, name: str) -> float | None:
    reading = (sample.temperatures or {}).get(name)
    return _number(reading.get("actual")) if isinstance(reading, dict) else None


async def chart_for(herald: Herald, printer_id: str, zone: tzinfo = UTC) -> Chart | None:
    since = herald.clock.now() - SAMPLE_WINDOW
    samples = await StatusSample.filter(printer_id=printer_id, taken_at__gte=since).order_by("taken_at")
    return build_chart(samples, zone)


def build_chart(samples: list[StatusSample], zone: tzinfo = UTC) -> Chart | None:
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
    spans = [Series("progress %", "series-progress", " ".join(f"{x_of(t):.1f},{y_of(p, 100.0):.1f}" for t, p in span))
             for span in job_spans(samples)]
    progress = spans[0] if spans else None
    y_ticks = [(y_of(t, top_temp), f"{t}°") for t in range(0, top_temp + 1, max(50, top_temp // 5 // 50 * 50))]
    p_ticks = [(y_of(p, 100.0), f"{p}%") for p in (0, 50, 100)]
    x_ticks = [(x_of(moment), label) for moment, label in time_ticks(start, end, zone)]
    latest = samples[-1]
    parts = [f"{len(samples)} samples from {start.astimezone(zone):%H:%M} to {end.astimezone(zone):%H:%M %Z}"]
    for name in names:
        value = _actual(latest, name)
        if value is not None:
            parts.append(f"{name} last {value:.0f}°C")
    if (last_progress := _number(latest.progress)) is not None:
        parts.append(f"progress last {last_progress:.0f}%")
    if len(spans) > 1:
        parts.append(f"{len(spans)} jobs")
    return Chart(WIDTH, HEIGHT, series, progress, y_ticks, p_ticks, x_ticks, (left, top, right, bottom),
                 "; ".join(parts) + ".", tuple(spans))


def job_spans(samples: list[StatusSample]) -> list[list[tuple[datetime, float]]]:
    """The progress readings cut into one run per job: a run ends at a sample without progress
    (no job under way) or where progress falls back (the next job started)."""
    spans: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    for sample in samples:
        value = _number(sample.progress)
        if sample.progress is not None and value is None:
            continue  # a non-finite reading stored before they were refused: skipped, not a gap
        if value is None or (current and value < current[-1][1] - 0.5):
            if current:
                spans.append(current)
            current = []
        if value is not None:
            current.append((sample.taken_at, value))
    if current:
        spans.append(current)
    return spans


# Steps for the time axis, in seconds: the smallest that gives at most MAX_X_TICKS labels.
TICK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_X_TICKS = 6


def time_ticks(start: datetime, end: datetime, zone: tzinfo = UTC) -> list[tuple[datetime, str]]:
    """Round wall-clock times in ``zone`` (06:35, 06:40, 06:45 ...) at one fixed step between
    start and end; start and end themselves when no round time falls between them."""
    span = (end - start).total_seconds()
    step = next((s for s in TICK_STEPS if span / s < MAX_X_TICKS), TICK_STEPS[-1])
    offset = (start.astimezone(zone).utcoffset() or timedelta(0)).total_seconds()
    local_start = start.timestamp() + offset
    tick = -(-local_start // step) * step  # the first multiple of step at or after start
    ticks = []
    while tick <= end.timestamp() + offset:
        moment = datetime.fromtimestamp(tick - offset, UTC)
        ticks.append((moment, moment.astimezone(zone).strftime("%H:%M")))
        tick += step
    if not ticks:
        ticks = [(m, m.astimezone(zone).strftime("%H:%M")) for m in (start, end)]
    return ticks


async def trim_samples(herald: Herald) -> int:
    cutoff = herald.clock.now() - SAMPLE_WINDOW
    return await shielded(StatusSample.filter(taken_at__lt=cutoff).delete())
