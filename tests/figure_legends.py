"""Whether a matplotlib figure's legends keep off its data: no bar, point, line, image or label drawn
in an axes lies under a legend box. Shared by tests/test_figure_legends.py (the figures of the docs,
docs/figures/*.py) and tests/test_tutorials.py (the tutorials' figures).

The check works in display space, after the figure has been drawn: each legend's box (less a pixel of
margin all round, so that a legend placed edge to edge with the axes passes) against

* the boxes of the patches (bars, rectangles), texts (value labels, a target's label) and images of
  every axes of the figure, and
* the points of every line and collection, and points every 2 pixels along each line segment, so that
  a line passing under a legend is seen even when none of its vertices is.
"""

from __future__ import annotations

import numpy as np
from matplotlib.transforms import Bbox

STEP_PX = 2.0  # spacing of the points checked along a line segment
MARGIN_PX = 1.0  # a legend may touch what it sits next to


def _points_along(points: np.ndarray) -> np.ndarray:
    """(P, 2) display points -> the same polyline sampled every STEP_PX pixels (NaN gaps dropped)."""
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    pieces = [points]
    for start, end in zip(points[:-1], points[1:]):
        steps = int(np.hypot(*(end - start)) // STEP_PX)
        if steps > 1:
            t = np.linspace(0.0, 1.0, steps + 1)[1:-1, None]
            pieces.append(start + t * (end - start))
    return np.concatenate(pieces)


def _what_lies_under(legend_box, ax, renderer) -> list[str]:
    """Descriptions of the artists of ``ax`` that overlap ``legend_box`` (a display-space Bbox)."""
    box = legend_box.expanded(1.0, 1.0).padded(-MARGIN_PX)
    found = []
    for kind, artists in (("bar/patch", ax.patches), ("text", ax.texts), ("image", ax.images)):
        for artist in artists:
            if not artist.get_visible():
                continue
            extent = artist.get_window_extent(renderer)
            if artist.get_clip_on():  # what the axes clip away is not drawn
                extent = Bbox.intersection(extent, artist.get_clip_box() or ax.bbox)
                if extent is None:
                    continue
            if extent.width > 0 and extent.height > 0 and box.overlaps(extent):
                label = artist.get_text() if kind == "text" else artist.get_label()
                found.append(f"{kind} {label!r} at {tuple(round(float(v), 1) for v in extent.bounds)}")
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        inside = [p for p in _points_along(xy) if box.contains(*p)]
        if inside:
            found.append(f"line {line.get_label()!r} through {tuple(round(float(v), 1) for v in inside[0])}")
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        points = [collection.get_offset_transform().transform(offsets)] if offsets.size else []
        points += [path.transformed(collection.get_transform()).vertices for path in collection.get_paths()]
        inside = [p for pts in points for p in _points_along(np.asarray(pts, dtype=float)) if box.contains(*p)]
        if inside:
            found.append(f"{type(collection).__name__} {collection.get_label()!r} at {tuple(round(float(v), 1) for v in inside[0])}")
    return found


def legends_over_data(figure) -> list[str]:
    """Every (legend, artist) overlap in ``figure``, described; [] when every legend keeps off the data."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    problems = []
    for legend in legends:
        if not legend.get_visible():
            continue
        legend_box = legend.get_window_extent(renderer)
        entries = ", ".join(text.get_text() for text in legend.get_texts())[:60]
        for ax in figure.axes:
            problems += [f"legend ({entries}) covers {what}" for what in _what_lies_under(legend_box, ax, renderer)]
    return problems
