"""Figure of the sampling page: where grid_sample and interpolate read the input.

Run by the ``.. plot::`` directive at build time. The source positions of ``interpolate`` are
measured with poolref itself: resizing the ramp ``x[k] = k`` returns, at every output position, the
(clamped) input coordinate it read for the linear modes and the index it picked for the nearest modes.

Picture coordinates: pixel ``k`` is the unit square ``[k, k + 1)``, centred at ``k + 1/2``.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import poolref

L = 4
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def _pixel_row(ax, y, length=L):
    for k in range(length):
        ax.add_patch(Rectangle((k, y - 0.3), 1, 0.6, facecolor="white", edgecolor="0.5"))
        ax.text(k + 0.5, y, f"pixel {k}", ha="center", va="center", fontsize=7, color="0.4")


def sampling_coordinates():
    """Left: grid_sample's normalized coordinates on 4 pixels. Right: interpolate 4 -> 6, per mode."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    g = np.linspace(-1, 1, 5)
    _pixel_row(left, 0)
    maps = [
        ("align_corners=False:\n-1 and 1 are the outer edges", (g + 1) * L / 2 - 0.5, 1.1),
        ("align_corners=True:\n-1 and 1 are the corner centres", (g + 1) * (L - 1) / 2, -1.1),
    ]
    for n, (label, index, y) in enumerate(maps):
        picture = index + 0.5  # index coordinate -> picture coordinate
        left.plot([picture[0], picture[-1]], [y, y], "-", color=COLOURS[n], lw=1)
        for gv, xv in zip(g, picture):
            left.plot(xv, y, "o", color=COLOURS[n], ms=5)
            left.text(xv, y + (0.28 if y > 0 else -0.28), f"{gv:g}", ha="center", va="center", fontsize=7, color=COLOURS[n])
            left.plot([xv, xv], [y, 0.3 if y > 0 else -0.3], ":", color=COLOURS[n], lw=0.8)
        left.text(-0.3, y, label, ha="right", va="center", fontsize=8, color=COLOURS[n])
    left.set_xlim(-2.8, L + 0.3)
    left.set_ylim(-1.6, 1.6)
    left.axis("off")
    left.set_title("grid_sample: grid value g -> pixel coordinate", fontsize=9)

    out = 6
    ramp = np.arange(L, dtype=np.float64)[None, None]  # x[k] = k: a read value is a read coordinate
    modes = [
        ("nearest (PyTorch legacy)", dict(mode="nearest")),
        ("nearest-exact", dict(mode="nearest-exact")),
        ("linear, align_corners=False", dict(mode="linear", align_corners=False)),
        ("linear, align_corners=True", dict(mode="linear", align_corners=True)),
    ]
    _pixel_row(right, 0)
    for n, (label, kwargs) in enumerate(modes):
        read = poolref.interpolate(ramp, size=out, **kwargs)[0, 0]  # (6,) source coordinate of each output
        y = -(n + 1) * 0.75
        right.text(-0.3, y, label, ha="right", va="center", fontsize=8, color=COLOURS[n])
        readers = {}  # coordinate -> the outputs that read it (nearest modes read a pixel twice)
        for d, coordinate in enumerate(read.tolist()):
            readers.setdefault(coordinate, []).append(str(d))
        for coordinate, outputs in readers.items():
            right.plot(coordinate + 0.5, y, "o", color=COLOURS[n], ms=5)
            right.text(coordinate + 0.5, y + 0.22, ",".join(outputs), ha="center", fontsize=6, color=COLOURS[n])
    right.set_xlim(-3.6, L + 0.3)
    right.set_ylim(-(len(modes) + 0.6) * 0.75, 0.5)
    right.axis("off")
    right.set_title(f"interpolate {L} -> {out}: where output d reads (measured on a ramp)", fontsize=9)


def antialias_weights():
    """The weights of a 12 -> 4 resize per output, read from poolref's tap tables (poolref._sampling_weights)."""
    from poolref import _sampling_weights as taps

    L, O = 12, 4
    tables = [
        ("linear (PyTorch, antialias=False)", taps.torch_linear(L, O, align_corners=False).matrix()),
        ("antialiased triangle (PyTorch; TensorFlow and JAX alike)", taps.torch_antialias(L, O, align_corners=False).matrix()),
        ("area (TensorFlow, JAX): pixel coverage", taps.jax_dense(L, O, "area", antialias=False).matrix()),
    ]
    fig, axes = plt.subplots(1, len(tables), figsize=(12, 2.8), sharey=True)
    width = 0.8 / O
    for ax, (title, matrix) in zip(axes, tables):
        for o in range(O):
            ax.bar(np.arange(L) + (o - (O - 1) / 2) * width, matrix[o], width=width, color=COLOURS[o],
                   label=f"output {o}")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(L))
        ax.set_xlabel("input pixel", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("weight", fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room below the panels for the legend, off the bars
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=O, fontsize=7, frameon=False)


def cubic_kernel_and_resize():
    """Left: Keys' cubic kernels (a = -3/4, PyTorch; a = -1/2, antialiased PyTorch, TensorFlow, JAX)
    beside the triangle. Right: a step of 6 pixels resized to 24, bicubic and bilinear, by poolref."""
    from poolref import _sampling_weights as taps

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
    t = np.linspace(-2.5, 2.5, 501)
    left.plot(t, np.maximum(1 - np.abs(t), 0), color="0.5", lw=1, label="triangle (linear)")
    for n, a in enumerate((-0.75, -0.5)):
        left.plot(t, taps.cubic_kernel(np.abs(t), a), color=COLOURS[n], lw=1.5, label=f"cubic, a = {a}")
    left.axhline(0, color="0.8", lw=0.8)
    left.set_xlabel("distance from the sample point (pixels)", fontsize=8)
    left.set_title("interpolation kernels", fontsize=9)
    left.legend(fontsize=7, frameon=False)
    left.tick_params(labelsize=7)

    step = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]).reshape(1, 1, 1, 6)
    out = 24
    centres = (np.arange(out) + 0.5) * 6 / out  # output centres in picture coordinates
    right.step(np.arange(7), np.append(step.ravel(), 1.0), where="post", color="0.6", lw=1, label="input (6 pixels)")
    for n, mode in enumerate(("bicubic", "bilinear")):
        y = poolref.interpolate(step, size=(1, out), mode=mode).ravel()
        right.plot(centres, y, "o-" if mode == "bicubic" else ".--", color=COLOURS[n], ms=3, lw=1, label=f"{mode}, 6 -> {out}")
    right.set_xlabel("position (pixels)", fontsize=8)
    right.set_title("a step resized: the cubic overshoots by 11% on each side", fontsize=9)
    right.legend(fontsize=7, frameon=False)
    right.tick_params(labelsize=7)
    fig.tight_layout()
