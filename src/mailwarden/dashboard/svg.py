"""Charts drawn on the server as SVG: no script, no external resource, every label escaped."""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["COLOURS", "bars_svg", "timeline_svg"]

COLOURS = {
    "accept": "#2e7d32",
    "greylist": "#f9a825",
    "add_header": "#ef6c00",
    "soft_reject": "#8e24aa",
    "reject": "#c62828",
}
OTHER = "#607d8b"


def _label(start: float, bucket: int) -> str:
    shape = "%H:%M" if bucket < 6 * 3600 else "%a %H:%M"
    return time.strftime(shape, time.gmtime(start))


def timeline_svg(
    timeline: Sequence[dict[str, Any]],
    actions: Sequence[str],
    bucket: int,
    *,
    width: int = 760,
    height: int = 220,
) -> str:
    """Stacked bars of transactions by action, one per bucket (UTC times on the axis)."""
    left, bottom, top = 40, 24, 10
    plot_h = height - bottom - top
    n = max(len(timeline), 1)
    slot = (width - left - 4) / n
    peak = max((row["total"] for row in timeline), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>Transactions by action</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    every = max(1, n // 8)
    for i, row in enumerate(timeline):
        x = left + i * slot
        y = top + plot_h
        order = [a for a in actions if a in row["counts"]]
        order += sorted(a for a in row["counts"] if a not in actions)
        for action in order:
            count = row["counts"][action]
            h = plot_h * count / peak
            y -= h
            colour = COLOURS.get(action, OTHER)
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(_label(row["start"], bucket))} '
                f"{escape(action)}: {count}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - 8}" font-size="10" '
                f'text-anchor="middle">{escape(_label(row["start"], bucket))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(rows: Sequence[tuple[str, float, str]], *, width: int = 360, unit: str = "") -> str:
    """Horizontal bars: (label, value, shown text) per row, the longest bar the largest."""
    if not rows:
        return '<p class="empty">nothing in this period</p>'
    label_w, bar_h = 170, 18
    height = bar_h * len(rows) + 4
    peak = max(value for _, value, _ in rows) or 1
    room = width - label_w - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for i, (label, value, shown) in enumerate(rows):
        y = 2 + i * bar_h
        length = room * value / peak
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{label_w - 4}" y="{y + 13}" font-size="11" text-anchor="end">'
            f"{escape(short)}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{bar_h - 5}" '
            f'fill="#1565c0"><title>{escape(label)}: {escape(shown)}{escape(unit)}</title></rect>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{escape(shown)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
