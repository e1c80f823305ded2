"""Figure of the deformable convolution page: where the taps of an output sample, and what each sample reads.

Run by the ``.. plot::`` directive at build time. The sampling points and the corners they read come
from the functions that ``poolref.deform_conv2d`` itself calls (``sampling_points`` in
``poolref.ops.deform_conv``, ``zero_padded_bilinear`` in ``poolref._sampling_torchvision``).

Picture coordinates: pixel ``k`` is the unit square ``[k, k + 1)``, centred at ``k + 1/2``; an index
coordinate ``c`` (pixel ``k`` centred at ``k``) is drawn at ``c + 1/2``.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from poolref._sampling_torchvision import zero_padded_bilinear
from poolref.ops.deform_conv import DeformGeometry, sampling_points

SIZE = 7
KERNEL = 3


def _pixels(ax, title):
    ax.add_patch(Rectangle((-1, -1), SIZE + 2, SIZE + 2, facecolor="#f3f3f3", edgecolor="none"))  # the zero padding
    for r in range(SIZE):
        for c in range(SIZE):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.75", lw=0.7))
            ax.plot(c + 0.5, r + 0.5, ".", color="0.7", ms=2)
    ax.set_xlim(-1.6, SIZE + 0.6)
    ax.set_ylim(SIZE + 0.6, -1.6)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _taps(ax):
    """One output's 3 x 3 taps (padding 1, output (1, 4)), before and after a fixed set of offsets."""
    h, w = 1, 4
    geometry = DeformGeometry((KERNEL, KERNEL), (1, 1), (1, 1), (1, 1), (SIZE, SIZE), 1, 1)
    offset = np.zeros((1, 2 * KERNEL * KERNEL, SIZE, SIZE))
    shifts = np.array([[-0.9, -0.3], [-1.3, 0.2], [-0.6, 0.7], [0.3, -0.6], [0.2, 0.4], [0.5, 1.1],
                       [0.9, -0.4], [1.2, 0.5], [0.7, 1.1]])  # (dy, dx) per tap
    offset[0, 0::2, h, w], offset[0, 1::2, h, w] = shifts[:, 0], shifts[:, 1]
    base_y, base_x = sampling_points(np.zeros_like(offset), geometry, np.float64)
    ys, xs = sampling_points(offset, geometry, np.float64)
    points = zero_padded_bilinear(ys[0, 0, :, h, w], xs[0, 0, :, h, w], SIZE, SIZE)
    for t in range(KERNEL * KERNEL):
        y0, x0 = base_y[0, 0, t, h, w] + 0.5, base_x[0, 0, t, h, w] + 0.5
        y1, x1 = ys[0, 0, t, h, w] + 0.5, xs[0, 0, t, h, w] + 0.5
        ax.plot(x0, y0, "s", color="0.55", ms=5)
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="C0", lw=1))
        inside = bool(points.inside[t])
        ax.plot(x1, y1, "o" if inside else "X", color="C0" if inside else "C3", ms=6)
    ax.add_patch(Rectangle((w, h), 1, 1, facecolor="none", edgecolor="C1", lw=2))  # the output's own pixel


def _corners(ax):
    """Three points and the corners each reads, with their weights: inside, in the band above row 0, and outside."""
    ys, xs = np.array([2.3, -0.6, 5.2]), np.array([1.6, 4.25, -1.3])
    points = zero_padded_bilinear(ys, xs, SIZE, SIZE)
    for p, colour in enumerate(("C0", "C2", "C3")):
        ax.plot(xs[p] + 0.5, ys[p] + 0.5, "o" if points.inside[p] else "X", color=colour, ms=7)
        if not points.inside[p]:
            ax.text(xs[p] + 0.1, ys[p] + 1.5, "reads\nnothing", fontsize=7, color=colour)
            continue
        for corner in points.corners:
            weight = float(corner.weight_y[p] * corner.weight_x[p])
            row = int(corner.row[p]) if corner.valid[p] else int(np.floor(ys[p])) + (corner.slope_y > 0)
            col = int(corner.col[p]) if corner.valid[p] else int(np.floor(xs[p])) + (corner.slope_x > 0)
            style = "-" if corner.valid[p] else ":"
            ax.plot([xs[p] + 0.5, col + 0.5], [ys[p] + 0.5, row + 0.5], style, color=colour, lw=1)
            ax.plot(col + 0.5, row + 0.5, "s", color=colour if corner.valid[p] else "0.6", ms=4)
            label = f"{weight:.2f}" if corner.valid[p] else f"{weight:.2f}\u00d70"
            ax.text(col + 0.55, row + 0.35, label, fontsize=6.5, color=colour)


def deformable_sampling():
    """Left: one output's taps moved by their offsets. Right: what a sample reads."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    _pixels(axes[0], "the 3 x 3 taps of one output (orange), moved by their offsets")
    _taps(axes[0])
    _pixels(axes[1], "a sample reads its four corners; outside the image they read 0")
    _corners(axes[1])
    fig.tight_layout()


# --------------------------------------------------------------------------------------------------
# ASPP: the fields of view of its branches, and the module's data flow
# --------------------------------------------------------------------------------------------------
ASPP_SIZE = 21
ASPP_RATES = (2, 4, 7)


def _reads_of_centre(rate):
    """The input pixels the centre output of a 3x3 conv2d of this dilation reads: where the gradient of
    that one output reaches x (poolref's own conv2d and its backward), padding ``rate`` as in ASPP."""
    import poolref

    x = np.zeros((1, 1, ASPP_SIZE, ASPP_SIZE))
    _, pullback = poolref.vjp(lambda x: poolref.conv2d(x, np.ones((1, 1, 3, 3)), padding=rate, dilation=rate), x)
    seed = np.zeros((1, 1, ASPP_SIZE, ASPP_SIZE))
    seed[0, 0, ASPP_SIZE // 2, ASPP_SIZE // 2] = 1.0
    grad, = pullback(seed)
    return np.argwhere(grad[0, 0] != 0)  # (taps, 2) rows and columns


def _box(ax, xy, text, colour, width=2.2, height=0.8):
    ax.add_patch(Rectangle((xy[0] - width / 2, xy[1] - height / 2), width, height, facecolor=colour, edgecolor="0.3",
                           alpha=0.35, lw=1))
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=7.5)


def aspp_branches():
    """Left: the pixels the centre output of each branch reads. Right: the module, branch by branch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw=dict(width_ratios=(1, 1.25)))
    left.add_patch(Rectangle((0, 0), ASPP_SIZE, ASPP_SIZE, facecolor="C4", alpha=0.08, edgecolor="C4"))  # image pooling
    for r in range(ASPP_SIZE):
        for c in range(ASPP_SIZE):
            left.add_patch(Rectangle((c, r), 1, 1, facecolor="none", edgecolor="0.85", lw=0.5))
    centre = ASPP_SIZE // 2
    left.add_patch(Rectangle((centre, centre), 1, 1, facecolor="C0", alpha=0.6, edgecolor="none"))
    markers = ("s", "o", "D")
    for k, rate in enumerate(ASPP_RATES):
        taps = _reads_of_centre(rate)
        left.plot(taps[:, 1] + 0.5, taps[:, 0] + 0.5, markers[k], color=f"C{k + 1}", ms=5 + k, mfc="none", mew=1.5,
                  label=f"3x3, rate {rate}: a {2 * rate + 1} x {2 * rate + 1} field of view")
    left.plot([], [], "s", color="C0", alpha=0.6, label="1x1 branch: the pixel itself")
    left.plot([], [], "s", color="C4", alpha=0.3, label="image pooling: the whole map")
    left.set_xlim(-0.5, ASPP_SIZE + 0.5)
    left.set_ylim(ASPP_SIZE + 0.5, -0.5)
    left.set_aspect("equal")
    left.set_xticks([]), left.set_yticks([])
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    left.set_title("what one output position reads, per branch", fontsize=9)

    right.set_xlim(0, 12)
    right.set_ylim(0, 8)
    right.axis("off")
    _box(right, (1.3, 4), "x\n(N, C, H, W)", "0.8", width=2.0, height=1.0)
    branches = ["1x1 conv, BN, ReLU"] + [f"3x3 conv rate {r}, BN, ReLU" for r in ASPP_RATES]
    branches += ["avg pool to 1x1, 1x1 conv, BN,\nReLU, bilinear back to H x W"]
    for k, text in enumerate(branches):
        y = 7.2 - 1.6 * k
        _box(right, (5.0, y), text, f"C{k if k < 4 else 4}", width=3.8, height=1.0)
        right.annotate("", (3.1, y), (2.3, 4), arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8))
        right.annotate("", (7.6, 4), (6.9, y), arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8))
    _box(right, (8.3, 4), "concat\n(channels)", "0.8", width=1.4, height=1.0)
    _box(right, (10.6, 4), "1x1 conv, BN,\nReLU, Dropout", "0.8", width=2.2, height=1.0)
    right.annotate("", (9.5, 4), (9.0, 4), arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8))
    right.set_title("ASPP (DeepLab v3, torchvision's layout)", fontsize=9)
    fig.tight_layout()
