"""Simple bar charts of the privacy officer's report, as geometry for server-made SVG.

Pure: from the report's JSON (``Report.as_json``) to bars and labels the template
``_charts.html`` draws. No script and no inline style (the CSP forbids both): colours
come from classes in vhnode.css, sizes from SVG attributes. Each chart has a title and a
description for assistive technology, and the page shows the same figures in a table
beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.flows.audit.kinds import STATUSES

PLOT_HEIGHT = 160  # the tallest bar
TOP = 24  # room above the tallest bar for its count
BOTTOM = 40  # room below the axis for the labels
BAR = 28
GAP = 16
LEFT = 16
LABEL_WIDTH = 150  # horizontal charts: the partner's name left of its bar
ROW = 28
PLOT_WIDTH = 420


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: str
    key: str
    count: int


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    axis: tuple[float, float, float, float] = (0, 0, 0, 0)


def _scale(total: int, largest: int, length: float) -> float:
    return 0.0 if largest <= 0 else total / largest * length


def columns(
    chart_id: str,
    title: str,
    keys: Sequence[str],
    counts: Sequence[Mapping[str, int]],
    series: Sequence[str],
    words: Mapping[str, str],
) -> Chart:
    """Vertical bars, one per key (a day), stacked by ``series``; the total above each."""
    totals = [sum(c.get(s, 0) for s in series) for c in counts]
    largest = max(totals, default=0)
    width = LEFT * 2 + max(len(keys), 1) * (BAR + GAP)
    base = TOP + PLOT_HEIGHT
    described = "; ".join(
        f"{k}: {t}"
        + (
            " (" + ", ".join(f"{words.get(s, s)} {c.get(s, 0)}" for s in series if c.get(s)) + ")"
            if len(series) > 1 and t
            else ""
        )
        for k, t, c in zip(keys, totals, counts, strict=True)
    )
    chart = Chart(
        chart_id, title, described or "Geen gegevens in deze periode.", width, base + BOTTOM
    )
    chart.axis = (LEFT / 2, base, width - LEFT / 2, base)
    for i, (key, c, total) in enumerate(zip(keys, counts, totals, strict=True)):
        x = LEFT + i * (BAR + GAP) + GAP / 2
        y = float(base)
        for s in series:
            n = c.get(s, 0)
            if n <= 0:
                continue
            h = _scale(n, largest, PLOT_HEIGHT)
            y -= h
            chart.bars.append(Bar(x, round(y, 1), BAR, round(h, 1), s, key, n))
        chart.labels.append(Label(x + BAR / 2, round(y - 6, 1), str(total)))
        chart.labels.append(Label(x + BAR / 2, base + 16, key[5:]))  # MM-DD: the year is above
    if len(series) > 1:
        chart.legend = [(s, words.get(s, s)) for s in series]
    return chart


def rows(
    chart_id: str,
    title: str,
    keys: Sequence[str],
    counts: Sequence[Mapping[str, int]],
    series: Sequence[str],
    words: Mapping[str, str],
) -> Chart:
    """Horizontal bars, one per key (a partner), stacked by ``series``; the total after."""
    totals = [sum(c.get(s, 0) for s in series) for c in counts]
    largest = max(totals, default=0)
    height = TOP + max(len(keys), 1) * ROW + 8
    described = "; ".join(
        f"{k}: " + ", ".join(f"{words.get(s, s)} {c.get(s, 0)}" for s in series if c.get(s))
        if t
        else f"{k}: 0"
        for k, t, c in zip(keys, totals, counts, strict=True)
    )
    chart = Chart(
        chart_id,
        title,
        described or "Geen gegevens in deze periode.",
        LABEL_WIDTH + PLOT_WIDTH + 60,
        height,
    )
    chart.axis = (LABEL_WIDTH, TOP - 8, LABEL_WIDTH, height - 4)
    for i, (key, c, total) in enumerate(zip(keys, counts, totals, strict=True)):
        y = TOP + i * ROW
        x = float(LABEL_WIDTH)
        for s in series:
            n = c.get(s, 0)
            if n <= 0:
                continue
            w = _scale(n, largest, PLOT_WIDTH)
            chart.bars.append(Bar(round(x, 1), y, round(w, 1), ROW - 8, s, key, n))
            x += w
        chart.labels.append(Label(LABEL_WIDTH - 8, y + ROW / 2, key, "end"))
        chart.labels.append(Label(round(x + 6, 1), y + ROW / 2, str(total), "start"))
    chart.legend = [(s, words.get(s, s)) for s in series]
    return chart


def report_charts(doc: Mapping[str, Any], status_words: Mapping[str, str]) -> list[Chart]:
    """Rounds per day, statuses per day, statuses per partner: from the report's JSON."""
    per_day = list(doc["asked"]["per_day"])
    days = [str(d["day"]) for d in per_day]
    partners = list(doc["asked"]["partners"])
    return [
        columns(
            "grafiek-rondes-per-dag",
            "Bevragingen per dag",
            days,
            per_day,
            ["rounds"],
            {"rounds": "bevragingen"},
        ),
        columns(
            "grafiek-statussen-per-dag",
            "Antwoorden per dag, per status",
            days,
            per_day,
            STATUSES,
            status_words,
        ),
        rows(
            "grafiek-statussen-per-partner",
            "Antwoorden per partner, per status",
            [str(p["partner"]) for p in partners],
            partners,
            STATUSES,
            status_words,
        ),
    ]
