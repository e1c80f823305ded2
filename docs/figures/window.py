"""Figures of the windowed-pooling pages: windows drawn over an input grid, and gradient routing.

Run by the ``.. plot::`` directive at build time. Every window is placed by poolref's own geometry
(``poolref._geometry.axis_windows``, the one module that decides where windows lie), and every
gradient is computed by poolref's own backward functions, so the pictures cannot drift from the code.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import poolref
from poolref._geometry import axis_windows

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def _draw_grid(ax, length, pad_begin, pad_end, overhang=0):
    """Input cells (white), padding cells (grey, hatched) and overhang cells (dotted outline).

    Cell ``(r, c)`` of the input is the unit square with lower-left corner ``(c, r)``; the y axis
    is inverted so that row 0 is at the top, as in an array.
    """
    low, high = -pad_begin, length + pad_end + overhang
    for r in range(low, high):
        for c in range(low, high):
            inside = 0 <= r < length and 0 <= c < length
            padded = -pad_begin <= r < length + pad_end and -pad_begin <= c < length + pad_end
            if inside:
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.55", lw=0.8))
            elif padded:
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor="0.88", edgecolor="0.7", lw=0.6, hatch="///"))
            else:
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor="none", edgecolor="0.75", lw=0.6, ls=":"))
    ax.set_xlim(low - 0.3, high + 0.3)
    ax.set_ylim(high + 0.3, low - 0.3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _draw_window(ax, rows, cols, colour, label=None):
    """The taps of one window (filled cells) and the outline of its span."""
    for r in rows:
        for c in cols:
            ax.add_patch(Rectangle((c + 0.08, r + 0.08), 0.84, 0.84, facecolor=colour, alpha=0.35, lw=0))
    ax.add_patch(Rectangle((cols[0] + 0.04, rows[0] + 0.04), cols[-1] - cols[0] + 0.92, rows[-1] - rows[0] + 0.92,
                           facecolor="none", edgecolor=colour, lw=2))
    if label:
        ax.text(cols[0] + 0.15, rows[0] + 0.35, label, color=colour, fontsize=8, fontweight="bold")


def windows_over_grid():
    """Three configurations on a 5 x 5 input: padding and stride, ceil mode, dilation."""
    configs = [
        ("kernel 3, stride 2, padding 1", dict(kernel=3, stride=2, padding=(1, 1), dilation=1, ceil_mode=False)),
        ("kernel 2, stride 2, ceil_mode=True", dict(kernel=2, stride=2, padding=(0, 0), dilation=1, ceil_mode=True)),
        ("kernel 2, dilation 2, stride 1", dict(kernel=2, stride=1, padding=(0, 0), dilation=2, ceil_mode=False)),
    ]
    length = 5
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    for ax, (title, cfg) in zip(axes, configs):
        axis = axis_windows(length, cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
        _draw_grid(ax, length, axis.pad_begin, axis.pad_end, axis.end_overhang)
        taps = axis.taps()  # (O, k): input position of every tap of every window, along each axis
        O = axis.out_length
        # colour a few windows (the corners and, where there is one, the centre), outline the rest
        chosen = [(0, 0), (0, O - 1), (O - 1, 0), (O - 1, O - 1)]
        if O >= 3:
            chosen.append((O // 2, O // 2))
        for n, (i, j) in enumerate(dict.fromkeys(chosen)):
            _draw_window(ax, taps[i], taps[j], COLOURS[n % len(COLOURS)], f"({i},{j})")
        ax.set_title(f"{title}\noutput {O} x {O}", fontsize=9)
    fig.legend(
        handles=[
            Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.55"),
            Rectangle((0, 0), 1, 1, facecolor="0.88", edgecolor="0.7", hatch="///"),
            Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="0.75", ls=":"),
        ],
        labels=["input", "padding", "ceil-mode overhang (not counted)"],
        loc="lower center", ncol=3, frameon=False,
    )
    fig.subplots_adjust(bottom=0.12, wspace=0.1)


def _annotated(ax, values, title, cmap, fmt="{:g}", vmin=None, vmax=None):
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def gradient_routing():
    """Max vs average pooling (kernel 2, stride 1, on 4 x 4): where each output's gradient goes."""
    x = np.array([[1.0, 6.0, 2.0, 3.0], [5.0, 0.0, 9.0, 4.0], [7.0, 8.0, 3.5, 2.5], [0.5, 4.5, 1.5, 6.5]])[None, None]
    kernel, stride = 2, 1
    (values, indices), max_pullback = poolref.vjp(lambda t: poolref.max_pool2d(t, kernel, stride, return_indices=True), x)
    ones = np.ones_like(values)
    (grad_max,) = max_pullback(ones)
    avg, avg_pullback = poolref.vjp(lambda t: poolref.avg_pool2d(t, kernel, stride), x)
    (grad_avg,) = avg_pullback(ones)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    _annotated(axes[0], x[0, 0], "input x and max pooling's routes\n(arrow: window centre -> its maximum)", "Greys", vmin=-4, vmax=12)
    width = x.shape[-1]
    for (i, j), flat in np.ndenumerate(indices[0, 0]):
        r, c = divmod(int(flat), width)  # indices are flat positions in the (n, c) plane, as PyTorch's
        centre = (j * stride + (kernel - 1) / 2, i * stride + (kernel - 1) / 2)
        axes[0].annotate("", xy=(c, r), xytext=centre,
                         arrowprops=dict(arrowstyle="->", color=COLOURS[1], lw=1.3, shrinkA=0, shrinkB=6))
        axes[0].plot(*centre, "o", color=COLOURS[1], ms=3)
    _annotated(axes[1], grad_max[0, 0], f"max pooling: grad x\n(sum {grad_max.sum():g} = number of windows)", "Reds", vmin=0, vmax=4)
    _annotated(axes[2], grad_avg[0, 0], f"average pooling: grad x\n(sum {grad_avg.sum():g}: every window spreads 1/4)", "Blues",
               fmt="{:.2f}", vmin=0, vmax=1.5)
    fig.suptitle("upstream gradient: ones on the 3 x 3 output (windows 2 x 2, stride 1, overlapping)", fontsize=9, y=0.08)
    fig.subplots_adjust(wspace=0.15)
