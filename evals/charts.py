"""Trend charts as inline SVG: the report page stays one self-contained file, no scripts, no CDN."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from evals.thresholds import Threshold

WIDTH = 320
HEIGHT = 96
PAD = 12


@dataclass(frozen=True, kw_only=True, slots=True)
class Point:
    label: str
    """Shown on hover: the run and its date."""
    score: float | None
    """0..1; None for a run where the metric was skipped (a gap in the line)."""


def trend_svg(points: Sequence[Point], threshold: Threshold, *, title: str) -> str:
    """A line of scores (0 at the bottom, 1 at the top) with the threshold dashed across."""
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(i: int) -> float:
        return PAD + (inner_w * i / (len(points) - 1) if len(points) > 1 else inner_w / 2)

    def y(score: float) -> float:
        return PAD + inner_h * (1 - max(0.0, min(1.0, score)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fafafa" stroke="#ddd"/>',
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(threshold.value):.1f}" y2="{y(threshold.value):.1f}" '
        f'stroke="#c0392b" stroke-dasharray="4 3"><title>threshold {escape(threshold.describe())}</title></line>',
    ]
    for segment in _segments(points):
        coords = " ".join(f"{x(i):.1f},{y(s):.1f}" for i, s in segment)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#2c6fbb" stroke-width="2"/>')
    for i, p in enumerate(points):
        if p.score is None:
            continue
        colour = "#27ae60" if threshold.meets(p.score) else "#c0392b"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(p.score):.1f}" r="3.5" fill="{colour}">'
            f"<title>{escape(p.label)}: {p.score:.3f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _segments(points: Sequence[Point]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive scored points; a skipped run breaks the line."""
    segments: list[list[tuple[int, float]]] = [[]]
    for i, p in enumerate(points):
        if p.score is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((i, p.score))
    return [s for s in segments if s]
