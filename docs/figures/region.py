"""Figure of the region-pooling page: RoI pool's quantisation against RoI Align's sampling points.

Run by the ``.. plot::`` directive at build time. The bins and sampling points come from the
geometry functions that ``poolref.roi_pool`` and ``poolref.roi_align`` themselves call
(``pool_bins``, ``align_geometry``, ``sample_coordinates`` in ``poolref.ops.region.boxes``).

Picture coordinates: pixel ``k`` is the unit square ``[k, k + 1)``, so its centre is at ``k + 1/2``.
The kernels work in *index* coordinates, where pixel ``k`` is centred at ``k``: an index coordinate
``c`` is drawn at ``c + 1/2``.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from poolref.ops.region.boxes import align_geometry, pool_bins, sample_coordinates

SIZE = 8  # an 8 x 8 feature map
BOX = np.array([[0, 1.4, 1.7, 6.4, 5.6]])  # [batch, x1, y1, x2, y2]
BINS = (2, 2)
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def _pixels(ax, title):
    for r in range(SIZE):
        for c in range(SIZE):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.75", lw=0.7))
            ax.plot(c + 0.5, r + 0.5, ".", color="0.7", ms=2)
    x1, y1, x2, y2 = BOX[0, 1:]
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor="none", edgecolor="k", lw=1.6, ls="--"))
    ax.set_xlim(-0.2, SIZE + 0.2)
    ax.set_ylim(SIZE + 0.2, -0.2)
    ax.set_aspect("equal")
    ax.set_xticks(range(0, SIZE + 1, 2))
    ax.set_yticks(range(0, SIZE + 1, 2))
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _roi_pool(ax):
    bins = pool_bins(BOX, BINS, 1.0, end_inclusive=True, clip_h=SIZE, clip_w=SIZE, op="figure")
    n = 0
    for i in range(BINS[0]):
        for j in range(BINS[1]):
            r0, r1 = int(bins.h_start[0, i]), int(bins.h_end[0, i])
            c0, c1 = int(bins.w_start[0, j]), int(bins.w_end[0, j])
            inset = 0.07 * (n + 1)  # bins may share a row or column of pixels: draw each a little inside
            ax.add_patch(Rectangle((c0 + inset, r0 + inset), c1 - c0 - 2 * inset, r1 - r0 - 2 * inset,
                                   facecolor=COLOURS[n], alpha=0.2, edgecolor=COLOURS[n], lw=1.8))
            ax.text(c0 + inset + 0.12, r0 + inset + 0.45, f"({i},{j})", fontsize=7, color=COLOURS[n], fontweight="bold")
            n += 1


def _roi_align(ax, aligned):
    rois = BOX.astype(np.float64)
    geometry = align_geometry(rois, BINS, 1.0, 2, 0.5 if aligned else 0.0, min_size=not aligned)
    ys = sample_coordinates(geometry.start_h, geometry.bin_h, geometry.grid_h, BINS[0])[0]  # (bins, g)
    xs = sample_coordinates(geometry.start_w, geometry.bin_w, geometry.grid_w, BINS[1])[0]
    start_x, start_y = float(geometry.start_w[0]) + 0.5, float(geometry.start_h[0]) + 0.5  # drawn in picture coordinates
    bin_w, bin_h = float(geometry.bin_w[0]), float(geometry.bin_h[0])
    n = 0
    for i in range(BINS[0]):
        for j in range(BINS[1]):
            ax.add_patch(Rectangle((start_x + j * bin_w, start_y + i * bin_h), bin_w, bin_h,
                                   facecolor=COLOURS[n], alpha=0.12, edgecolor=COLOURS[n], lw=1.2))
            for y in ys[i]:
                for x in xs[j]:
                    ax.plot(x + 0.5, y + 0.5, "o", color=COLOURS[n], ms=4)
            n += 1
    # the four pixels one sampling point blends (bilinear interpolation)
    y, x = float(ys[0, 0]), float(xs[0, 0])
    for r in (int(np.floor(y)), int(np.floor(y)) + 1):
        for c in (int(np.floor(x)), int(np.floor(x)) + 1):
            ax.plot([x + 0.5, c + 0.5], [y + 0.5, r + 0.5], "-", color="0.3", lw=0.8)
            ax.plot(c + 0.5, r + 0.5, "s", color="0.3", ms=3)


def roi_pool_vs_align():
    """RoI pool (rounded box, integer bins), RoI Align aligned=True and aligned=False (2 x 2 samples per bin)."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    x1, y1, x2, y2 = BOX[0, 1:]
    _pixels(axes[0], f"roi_pool: box rounded to pixels {round(x1)}..{round(x2)} x {round(y1)}..{round(y2)}\n"
                     "(end inclusive); integer bins, which may overlap")
    _roi_pool(axes[0])
    _pixels(axes[1], "roi_align, aligned=True: no rounding;\n2 x 2 bilinear samples per bin, averaged")
    _roi_align(axes[1], aligned=True)
    _pixels(axes[2], "roi_align, aligned=False: box corners taken\nas pixel centres: samples half a pixel off")
    _roi_align(axes[2], aligned=False)
    fig.suptitle(f"box [x1, y1, x2, y2] = [{x1}, {y1}, {x2}, {y2}] (dashed) on an 8 x 8 map, 2 x 2 bins; "
                 "grey lines: the four pixels one sample blends", fontsize=9, y=0.07)
