"""Figure of the adaptive-pooling page: how adaptive bins are cut, in 1-D and in 2-D.

Run by the ``.. plot::`` directive at build time; the bins come from
``poolref._geometry.adaptive_bins``, the function every adaptive op uses.
"""

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from poolref._geometry import adaptive_bins

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def adaptive_bins_figure():
    """Left: bins of 8 -> 6, 8 -> 3 and 5 -> 8 along one axis. Right: a 7 x 5 input cut into 3 x 2 bins."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw=dict(width_ratios=[1.5, 1]))
    cases = [(8, 6), (8, 3), (5, 8)]
    row = 0.0
    yticks, ylabels = [], []
    for length, out in cases:
        starts, ends = adaptive_bins(length, out)
        # the input cells, then one bar per bin below them
        for k in range(length):
            left.add_patch(Rectangle((k, row), 1, 0.8, facecolor="white", edgecolor="0.5"))
            left.text(k + 0.5, row + 0.4, str(k), ha="center", va="center", fontsize=7, color="0.4")
        yticks.append(row + 0.4)
        ylabels.append(f"L = {length}")
        for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            y = row + 1.0 + 0.45 * i
            left.add_patch(Rectangle((s + 0.05, y), e - s - 0.1, 0.35, facecolor=COLOURS[i % len(COLOURS)], alpha=0.7))
            left.text(e + 0.1, y + 0.17, f"bin {i}: [{s}, {e})", va="center", fontsize=7)
        yticks.append(row + 1.0 + 0.45 * (out - 1) / 2 + 0.17)
        ylabels.append(f"O = {out}")
        row += 1.0 + 0.45 * out + 0.7
    left.set_xlim(-0.2, 11.5)
    left.set_ylim(row, -0.3)
    left.set_yticks(yticks, ylabels)
    left.set_xticks([])
    for side in left.spines.values():
        side.set_visible(False)
    left.set_title(r"bin $i$ of $O$ over $L$: $[\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)$", fontsize=9)

    H, W, out_h, out_w = 7, 5, 3, 2
    rows, cols = adaptive_bins(H, out_h), adaptive_bins(W, out_w)
    for r in range(H):
        for c in range(W):
            right.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.6"))
    n = 0
    for i in range(out_h):
        for j in range(out_w):
            (r0, r1), (c0, c1) = (rows[0][i], rows[1][i]), (cols[0][j], cols[1][j])
            inset = 0.06 * (n + 1)  # overlapping bins drawn a little inside each other so both show
            right.add_patch(Rectangle((c0 + inset, r0 + inset), c1 - c0 - 2 * inset, r1 - r0 - 2 * inset,
                                      facecolor=COLOURS[n], alpha=0.18, edgecolor=COLOURS[n], lw=2))
            right.text(c0 + inset + 0.1, r0 + inset + 0.35, f"({i},{j})", color=COLOURS[n], fontsize=8, fontweight="bold")
            n += 1
    right.set_xlim(-0.2, W + 0.2)
    right.set_ylim(H + 0.2, -0.2)
    right.set_aspect("equal")
    right.set_xticks([])
    right.set_yticks([])
    for side in right.spines.values():
        side.set_visible(False)
    spans = lambda bins: " ".join(f"[{s},{e})" for s, e in zip(*(b.tolist() for b in bins)))  # noqa: E731
    right.set_title(f"adaptive {H} x {W} -> {out_h} x {out_w}\nrows {spans(rows)}, columns {spans(cols)}", fontsize=9)
