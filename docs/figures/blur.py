"""Figure of the blur pooling page: max pooling aliases, max-blur pooling much less.

Run by the ``.. plot::`` directive at build time. The input is Zhang's (2019) example, columns
``0 0 1 1 0 0 1 1 ...`` repeated over the rows, shifted by 0 to 3 pixels; every curve is one row of
``poolref.max_pool2d(x, 2)``, ``poolref.max_blur_pool2d(x, 3)`` and ``poolref.blur_pool2d(x, 3)`` on
those inputs, computed here, so the figure draws what the ops return.
"""

import matplotlib.pyplot as plt
import numpy as np

import poolref

PERIOD = (0.0, 0.0, 1.0, 1.0)
WIDTH, HEIGHT = 16, 8
SHIFTS = range(4)


def _stripes(shift):
    """(1, 1, 8, 16): the columns 0 0 1 1 .. moved ``shift`` pixels right, the same on every row."""
    row = np.roll(np.tile(PERIOD, WIDTH // len(PERIOD)), shift)
    return np.tile(row, (HEIGHT, 1))[None, None]


def shift_variance():
    """Left: the input and its shifts. Middle: a row of max_pool2d(x, 2). Right: max_blur_pool2d(x, 3)."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), gridspec_kw=dict(width_ratios=(1.25, 1, 1)))
    ops = (("max_pool2d(x, 2)", lambda x: poolref.max_pool2d(x, 2)),
           ("max_blur_pool2d(x, 3)", lambda x: poolref.max_blur_pool2d(x, 3)))
    for shift in SHIFTS:
        x = _stripes(shift)
        axes[0].step(np.arange(WIDTH), x[0, 0, 0] + 1.4 * shift, where="mid", color=f"C{shift}", lw=1.4)
        for ax, (_, op) in zip(axes[1:], ops):
            row = op(x)[0, 0, 1]  # an interior row: the columns alone change with the shift
            ax.plot(np.arange(row.size), row + 0.02 * shift, "o-", color=f"C{shift}", ms=4, lw=1,
                    label=f"shift {shift}")
    axes[0].set_title("input row, shifted 0 to 3 pixels", fontsize=9)
    axes[0].set_yticks([1.4 * s + 0.5 for s in SHIFTS], [f"shift {s}" for s in SHIFTS], fontsize=7)
    axes[0].set_xlabel("column", fontsize=8)
    for ax, (name, _) in zip(axes[1:], ops):
        ax.set_title(name + ": one output row", fontsize=9)
        ax.set_ylim(-0.1, 1.15)
        ax.set_xlabel("output column", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[2].legend(fontsize=7, loc="lower center")
    fig.tight_layout()
    return fig
