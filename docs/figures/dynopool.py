"""Figure of DynOPool's query points for several values of alpha.

Run by the ``.. plot::`` directive at build time. The query coordinates come from
``poolref.ops.dynopool.query_axis``, the function ``poolref.dynopool2d`` itself uses, one call per axis.

Picture coordinates: pixel ``k`` is the unit square ``[k, k + 1)``. DynOPool works in pixel-centre
coordinates (pixel ``k`` centred at ``k``), so a query coordinate ``u`` is drawn at ``u + 1/2``.
"""

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from poolref.ops.dynopool import query_axis

SIZE = 8  # an 8 x 8 input
ALPHAS = [(2.0, 2.0), (2.7, 1.6), (3.2, 3.2), (0.9, 1.3)]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _query_coordinates(axis):
    """(O, 2) query coordinates u(i, a) = (i + 1/4 + a/2) * s - 1/2, unclamped, as in docs/dynopool.rst."""
    cell = axis.length / axis.out_length
    return (axis.phase * cell - 0.5).reshape(axis.out_length, 2)


def dynopool_query_points():
    """Query points (four per output cell) and output cells over an 8 x 8 input, for four alphas."""
    fig, axes = plt.subplots(1, len(ALPHAS), figsize=(12, 3.6))
    for ax, (alpha_h, alpha_w) in zip(axes, ALPHAS):
        rows, cols = query_axis(SIZE, alpha_h), query_axis(SIZE, alpha_w)
        u, v = _query_coordinates(rows), _query_coordinates(cols)  # (H_out, 2), (W_out, 2)
        cell_h, cell_w = SIZE / rows.out_length, SIZE / cols.out_length
        for r in range(SIZE):
            for c in range(SIZE):
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.8", lw=0.6))
                ax.plot(c + 0.5, r + 0.5, ".", color="0.75", ms=2)
        for i in range(rows.out_length):
            for j in range(cols.out_length):
                colour = COLOURS[(i + j) % len(COLOURS)]
                ax.add_patch(Rectangle((j * cell_w, i * cell_h), cell_w, cell_h, facecolor=colour, alpha=0.08,
                                       edgecolor=colour, lw=1.0))
                for a in range(2):
                    for b in range(2):
                        y, x = u[i, a], v[j, b]
                        # a point beyond the outermost pixel centres is clamped onto them (border handling)
                        clamped = not (0 <= y <= SIZE - 1 and 0 <= x <= SIZE - 1)
                        ax.plot(x + 0.5, y + 0.5, "x" if clamped else "o", color=colour, ms=4 if not clamped else 5)
        ax.set_xlim(-0.3, SIZE + 0.3)
        ax.set_ylim(SIZE + 0.3, -0.3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"alpha = ({alpha_h:g}, {alpha_w:g})\n"
            f"{SIZE}/alpha = ({SIZE / alpha_h:.3g}, {SIZE / alpha_w:.3g}) -> output {rows.out_length} x {cols.out_length}",
            fontsize=9,
        )
    fig.suptitle("DynOPool on an 8 x 8 input: output cells (shaded) and their four query points each; "
                 "x: a point outside the pixel centres, clamped before sampling", fontsize=9, y=0.06)
    fig.subplots_adjust(wspace=0.08)
