r"""
Where deformable samples go
===========================

A convolution reads its input on a rigid grid: the 3 x 3 taps of every output sit one pixel apart
around it. **Deformable convolution** (Dai et al. 2017, :func:`poolref.deform_conv2d`, torchvision's
``deform_conv2d``) adds a learned offset ``(dy, dx)`` to every tap of every output and reads the
input there by bilinear interpolation; **deformable RoI pooling** (:func:`poolref.deform_roi_pool`)
does the same for the bins of a box. The offsets learn through the derivative of the interpolation.

This tutorial makes that visible on a small image: it trains the offsets alone, with poolref's tape
and its Adam optimiser, on a toy objective whose answer is known (the image rotated, the object
moved), and draws the sampling points before and after, with the first gradient to the offsets as
arrows. ``POOLREF_TUTORIAL_QUICK=1`` runs fewer steps.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import poolref
from poolref import nn

QUICK = os.environ.get("POOLREF_TUTORIAL_QUICK") == "1"
STEPS = 40 if QUICK else 300

# %%
# A small image
# -------------
# 20 x 20 pixels, two channels of soft blobs: smooth, so that the bilinear slopes point somewhere
# useful near them, and placed differently in the two channels, so that their slopes point in
# different directions (one channel alone only tells a sample how to move along its own slope).

H = W = 20
rows, cols = np.mgrid[0:H, 0:W].astype(float)


def blobs(spec):
    return sum(a * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * s**2)) for a, r, c, s in spec)


image = blobs([(1.0, 6.0, 7.0, 2.2), (0.8, 13.0, 12.0, 2.8), (0.6, 7.0, 14.5, 1.6)])
second = blobs([(1.0, 8.0, 5.0, 2.5), (0.8, 11.0, 14.0, 2.4), (0.7, 4.0, 11.0, 2.0)])
x = np.stack([image, second])[None]  # (N, C, H, W) = (1, 2, 20, 20)

# %%
# The sampling points of a 3 x 3 convolution
# ------------------------------------------
# With padding 1 and stride 1, tap ``(i, j)`` of output ``(h, w)`` sits at ``(h - 1 + i, w - 1 + j)``
# and moves by its offset: ``offset[n, 2 t]`` is its ``dy`` and ``offset[n, 2 t + 1]`` its ``dx``,
# ``t = 3 i + j`` (torchvision's layout, one ``(dy, dx)`` pair per tap, shared here by both
# channels). To watch every tap, the weights pick one tap of one channel per output channel
# (``groups=2``: 9 outputs per input channel): output ``9 c + t`` *is* the sample of tap ``t`` of
# channel ``c``, the im2col column that a convolution would weigh.

K = 3
weight = np.zeros((2 * K * K, 1, K, K))
for c in range(2):
    for t in range(K * K):
        weight[c * K * K + t, 0, t // K, t % K] = 1.0


def sampling_points(offset):
    """(rows, cols) of every tap of every output, each (9, H, W)."""
    taps = np.arange(K * K)
    base_rows = rows[None] - 1 + (taps // K)[:, None, None]
    base_cols = cols[None] - 1 + (taps % K)[:, None, None]
    return base_rows + offset[0, 0::2], base_cols + offset[0, 1::2]


# %%
# The toy objective: the image rotated by 20 degrees about its centre. Each tap's point, rotated, is
# where the target reads; poolref computes that target with the same op, so the offsets that fit it
# exactly exist.

angle = np.deg2rad(20.0)
centre = (H - 1) / 2
base_rows, base_cols = sampling_points(np.zeros((1, 2 * K * K, H, W)))
turned_rows = centre + np.cos(angle) * (base_rows - centre) - np.sin(angle) * (base_cols - centre)
turned_cols = centre + np.sin(angle) * (base_rows - centre) + np.cos(angle) * (base_cols - centre)
true_offset = np.zeros((1, 2 * K * K, H, W))
true_offset[0, 0::2], true_offset[0, 1::2] = turned_rows - base_rows, turned_cols - base_cols
target = poolref.deform_conv2d(x, true_offset, weight, padding=1)

# %%
# Training the offsets
# --------------------
# The offsets are a :class:`poolref.nn.Parameter` (in a network, :class:`poolref.nn.DeformConv2d`
# predicts them with a convolution that starts at zero; here they are free, one per tap and pixel).
# They start at zero: a plain convolution. Each step records the op on the tape; ``backward`` calls
# its hand-written backward, which sends every sample's gradient through the slopes of the bilinear
# interpolation to its ``(dy, dx)``.

offset = nn.Parameter(np.zeros((1, 2 * K * K, H, W)))
optimizer = nn.Adam([offset], lr=0.05)
losses, first_gradient = [], None
for step in range(STEPS):
    optimizer.zero_grad()
    loss = ((poolref.deform_conv2d(x, offset, weight, padding=1) - target) ** 2).mean()
    loss.backward()
    if first_gradient is None:
        first_gradient = offset.grad.copy()
    optimizer.step()
    losses.append(float(loss.data))
print(f"loss {losses[0]:.2e} at the start, {losses[-1]:.2e} after {STEPS} steps")
assert losses[-1] < 0.2 * losses[0]

# %%
# Where the samples went
# ----------------------
# For a few outputs near the blobs: the regular 3 x 3 grid they started with (grey), where they
# ended (colour), and where the rotated target reads (crosses). The arrows are the first step's
# gradient to the centre tap's offset, reversed (the way gradient descent moves it), at every pixel:
# they appear where the image has a slope and point along the rotation, and vanish on flat ground,
# where moving a sample changes nothing.

learned_rows, learned_cols = sampling_points(offset.data)
watched = [(6, 5), (10, 9), (13, 13), (5, 13)]
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax in axes:
    ax.imshow(image + second, cmap="Greys", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    ax.set_xlim(-1.5, W + 0.5)
    ax.set_ylim(H + 0.5, -1.5)
ax = axes[0]
for n, (h, w) in enumerate(watched):
    colour = f"C{n}"
    ax.plot(base_cols[:, h, w], base_rows[:, h, w], "o", color="0.6", ms=4)
    ax.plot(learned_cols[:, h, w], learned_rows[:, h, w], "o", color=colour, ms=5)
    ax.plot(turned_cols[:, h, w], turned_rows[:, h, w], "x", color=colour, ms=6)
ax.set_title("3 x 3 taps of four outputs: start (grey), learned (colour), target (x)", fontsize=9)
ax = axes[1]
centre_tap = K * K // 2
step_y, step_x = -first_gradient[0, 2 * centre_tap], -first_gradient[0, 2 * centre_tap + 1]
ax.quiver(cols, rows, step_x, step_y, color="C3", angles="xy", scale_units="xy", scale=np.abs(first_gradient).max() / 0.9)
ax.set_title("minus the first gradient to the centre tap's (dy, dx)", fontsize=9)
plt.show()

# %%
# The learned offsets match the rotation where the image tells them anything: near the blobs the
# samples land close to the target's points.

near = (image > 0.3) | (second > 0.3)
error = np.hypot(learned_rows - turned_rows, learned_cols - turned_cols)[:, near]
start = np.hypot(base_rows - turned_rows, base_cols - turned_cols)[:, near]
print(f"distance to the target's points near the blobs: {start.mean():.2f} px at the start, {error.mean():.2f} px learned")
assert error.mean() < 0.7 * start.mean()

# %%
# Deformable RoI pooling
# ----------------------
# The same idea for a box: :func:`poolref.deform_roi_pool` is RoI Align (``aligned=True``) with every
# bin moved by ``gamma`` times the box size times its offset. Here the box sits over the first blob,
# and the target pools the same box with its bins moved by 2.5 rows and 1.5 columns, as if the
# object had moved; training the bins' offsets moves them there.

box = np.array([[0, 3.0, 2.0, 11.0, 10.0]])  # [batch, x1, y1, x2, y2]: 8 x 8 pixels
bins, gamma = 3, 0.1
box_w = box_h = 8.0
true_shift = np.zeros((1, 2, bins, bins))
moved_by = (2.5, 1.5)  # rows, columns
true_shift[0, 0], true_shift[0, 1] = moved_by[1] / (gamma * box_w), moved_by[0] / (gamma * box_h)  # (x, y), in units of gamma * box
pooled_target = poolref.deform_roi_pool(x, box, true_shift, bins, sampling_ratio=2, gamma=gamma)

shift = nn.Parameter(np.zeros((1, 2, bins, bins)))
optimizer = nn.Adam([shift], lr=0.5)
roi_losses, roi_gradient = [], None
for step in range(STEPS):
    optimizer.zero_grad()
    loss = ((poolref.deform_roi_pool(x, box, shift, bins, sampling_ratio=2, gamma=gamma) - pooled_target) ** 2).mean()
    loss.backward()
    if roi_gradient is None:
        roi_gradient = shift.grad.copy()
    optimizer.step()
    roi_losses.append(float(loss.data))
print(f"deform_roi_pool loss {roi_losses[0]:.2e} at the start, {roi_losses[-1]:.2e} after {STEPS} steps")
assert roi_losses[-1] < 0.5 * roi_losses[0]

# %%
# Bin centres before (grey), after (colour) and of the target (crosses); arrows: minus the first
# gradient to each bin's offset. Every bin is pulled along the slope under it, the way its own
# samples must go to meet its target value.

bin_rows = 2.0 - 0.5 + (np.arange(bins) + 0.5) * box_h / bins  # aligned=True: start = y1 - 0.5
bin_cols = 3.0 - 0.5 + (np.arange(bins) + 0.5) * box_w / bins
centre_rows, centre_cols = np.meshgrid(bin_rows, bin_cols, indexing="ij")
moved_cols = centre_cols + gamma * box_w * shift.data[0, 0]
moved_rows = centre_rows + gamma * box_h * shift.data[0, 1]
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.imshow(image + second, cmap="Greys", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
ax.add_patch(plt.Rectangle((box[0, 1] - 0.5, box[0, 2] - 0.5), box_w, box_h, fill=False, ls="--", color="0.3"))
ax.plot(centre_cols, centre_rows, "o", color="0.6", ms=5)
ax.plot(np.stack([centre_cols.ravel(), moved_cols.ravel()]), np.stack([centre_rows.ravel(), moved_rows.ravel()]), "-", color="0.6", lw=0.8)
ax.plot(moved_cols, moved_rows, "o", color="C0", ms=6)
ax.plot(centre_cols + moved_by[1], centre_rows + moved_by[0], "x", color="C0", ms=7)
ax.quiver(centre_cols, centre_rows, -roi_gradient[0, 0], -roi_gradient[0, 1], color="C3", angles="xy")
ax.set_title("deform_roi_pool: bin centres, start / learned / target", fontsize=9)
plt.show()
