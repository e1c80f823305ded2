"""Figures of the stochastic and learned pooling pages.

Run by the ``.. plot::`` directive at build time; every value is computed by poolref's own ops
(``fractional_starts`` is the function ``poolref.fractional_max_pool2d`` uses to place its windows).
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import poolref
from poolref.ops.fractional import fractional_starts

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def fractional_windows():
    """Fractional max pooling along one axis: 10 -> 6 with 2-wide windows, for three samples u."""
    length, out, kernel = 10, 6, 2
    samples = [0.0, 0.45, 0.9]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    row = 0.0
    for u in samples:
        starts = fractional_starts(np.array([u]), length, out, kernel)[0]  # (O,)
        for k in range(length):
            ax.add_patch(Rectangle((k, row), 1, 0.6, facecolor="white", edgecolor="0.6"))
        for i, s in enumerate(starts.tolist()):
            y = row + 0.75 + 0.22 * (i % 2)  # alternate heights so neighbouring windows stay apart
            ax.add_patch(Rectangle((s + 0.05, y), kernel - 0.1, 0.18, facecolor=COLOURS[i % len(COLOURS)], alpha=0.8))
        ax.text(-0.3, row + 0.7, f"u = {u:g}\nstarts {starts.tolist()}", ha="right", va="center", fontsize=8)
        row += 1.6
    ax.set_xlim(-4.5, length + 0.2)
    ax.set_ylim(row, -0.2)
    ax.axis("off")
    ax.set_title(f"fractional_max_pool: L = {length} -> O = {out}, kernel {kernel}:\nstrides of 1 and 2, "
                 "mixed pseudo-randomly by u; the last window always ends at L", fontsize=9)


def smooth_aggregates():
    """GeM and LSE on one window as their parameter grows: from the mean to the maximum."""
    x = np.array([0.2, 1.0, 0.5, 1.6, 0.3, 0.9]).reshape(1, 1, 2, 3)
    parameters = np.geomspace(0.05, 60, 80)
    gem = [float(poolref.gem_pool(x, p)[0, 0, 0, 0]) for p in parameters]
    lse = [float(poolref.lse_pool(x, r)[0, 0, 0, 0]) for r in parameters]
    soft = float(poolref.soft_pool2d(x, (2, 3))[0, 0, 0, 0])
    mean, peak = float(x.mean()), float(x.max())
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.axhline(peak, color="0.3", lw=1, ls="--")
    ax.axhline(mean, color="0.3", lw=1, ls=":")
    ax.text(parameters[0], peak + 0.02, "max", fontsize=8)
    ax.text(parameters[0], mean + 0.02, "mean", fontsize=8)
    ax.plot(parameters, gem, color=COLOURS[0], label="gem_pool(x, p): power mean, p = 1 is the mean")
    ax.plot(parameters, lse, color=COLOURS[1], label="lse_pool(x, r): log-mean-exp, r -> 0 is the mean")
    ax.axhline(soft, color=COLOURS[2], lw=1.5, label=f"soft_pool2d: softmax-weighted mean ({soft:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("parameter (p for GeM, r for LSE)")
    ax.set_ylabel("pooled value")
    ax.set_title(f"one window x = {x.ravel().tolist()}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside the axes, off the curves
