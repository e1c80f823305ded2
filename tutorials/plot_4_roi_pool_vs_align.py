r"""
RoI Pool vs RoI Align
=====================

A detector proposes boxes in image coordinates, real numbers; the region-pooling layer must turn
the part of the feature map under each box into a fixed grid of bins. **RoI Pool** (Fast R-CNN)
rounds the box to whole pixels and takes the maximum over integer bins; **RoI Align** (Mask R-CNN)
does no rounding: it samples the map bilinearly at regular points inside each bin and averages them.
This tutorial shows what the rounding costs: outputs that jump as a box moves by a fraction of a
pixel, and gradients that reach a single pixel per bin.
"""

import matplotlib.pyplot as plt
import numpy as np

import poolref
from poolref.testing import assert_matches

# %%
# A smooth feature map
# --------------------
# One channel, 16 x 16, a Gaussian bump: a small move of the box should change the pooled values a
# little.

H = W = 16
rows, cols = np.mgrid[0:H, 0:W]
feature = np.exp(-((cols - 8.3) ** 2 + (rows - 7.6) ** 2) / 18.0)[None, None]  # (N, C, H, W) = (1, 1, 16, 16)

# %%
# Boxes are rows ``[batch_index, x1, y1, x2, y2]``. Slide one box to the right by steps of 1/20 of a
# pixel and pool it into 2 x 2 bins, with RoI Pool and with RoI Align (2 x 2 samples per bin; the
# ``aligned=True`` pixel model, in which pixel ``k`` covers ``[k, k + 1)``).

shifts = np.arange(0.0, 2.0001, 0.05)
boxes = np.array([[0, 2.0 + s, 3.0, 9.0 + s, 10.0] for s in shifts])  # (K, 5): all the shifted boxes at once
pooled = poolref.roi_pool(feature, boxes, 2)  # (K, C, 2, 2)
aligned_avg = poolref.roi_align(feature, boxes, 2, 1.0, 2, aligned=True)
print("RoI Pool, bin (0, 0), for the first 12 shifts:", pooled[:12, 0, 0, 0].round(3))
print("RoI Align (avg), bin (0, 0):              ", aligned_avg[:12, 0, 0, 0].round(3))

# %%
# RoI Pool's output is a staircase: it only changes when a rounded corner moves to the next pixel
# (corners are rounded half away from zero, so at shifts 0.5 and 1.5 here). RoI Align changes
# continuously with the box. (The two levels differ as well: a maximum over a bin against an average
# of samples. torchvision's RoI Align has no max mode; ONNX's ``RoiAlign`` has one, with a rule of
# its own, which poolref models as ``convention="onnx"``.)

jumps = np.flatnonzero(np.diff(pooled[:, 0, 0, 0]) != 0)
print("RoI Pool changes only between shifts", [(round(float(shifts[j]), 2), round(float(shifts[j + 1]), 2)) for j in jumps])
assert np.all(np.diff(aligned_avg[:, 0, 0, 0]) != 0)  # RoI Align moves at every step

fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(shifts, pooled[:, 0, 0, 0], drawstyle="steps-post", label="roi_pool (max over integer bins)")
ax.plot(shifts, aligned_avg[:, 0, 0, 0], label="roi_align (average of 2 x 2 bilinear samples)")
ax.set_xlabel("box shifted right by (pixels)")
ax.set_ylabel("bin (0, 0)")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside the axes, off the curves
ax.set_title("pooled value as the box slides by 1/20 pixel steps")
plt.show()

# %%
# Where the gradient goes
# -----------------------
# RoI Pool's backward is max pooling's: each bin's gradient goes to the one pixel that won it.
# RoI Align's backward spreads each sample's share (a quarter of the bin's gradient for 2 x 2
# samples) over the four pixels around the sample, with the bilinear weights. Both conserve the
# gradient when every sample lies inside the map.

box = np.array([[0, 2.3, 3.4, 9.6, 10.2]])
g = np.ones((1, 1, 2, 2))
_, pool_pullback = poolref.vjp(lambda t: poolref.roi_pool(t, box, 2), feature)
_, align_pullback = poolref.vjp(lambda t: poolref.roi_align(t, box, 2, 1.0, 2, aligned=True), feature)
(grad_pool,) = pool_pullback(g)
(grad_align,) = align_pullback(g)
print(f"RoI Pool: gradient on {np.count_nonzero(grad_pool)} pixels, sum {grad_pool.sum():g}")
print(f"RoI Align: gradient on {np.count_nonzero(grad_align)} pixels, sum {grad_align.sum():g}")
assert np.isclose(grad_pool.sum(), 4) and np.isclose(grad_align.sum(), 4)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
x1, y1, x2, y2 = box[0, 1:]
for ax, (values, title) in zip(axes, [(feature, "feature map and the box"), (grad_pool, "roi_pool: dL/dx"),
                                      (grad_align, "roi_align: dL/dx")]):
    # imshow puts pixel k's centre at k; the box is in aligned coordinates (pixel k covers [k, k+1))
    ax.imshow(values[0, 0], cmap="viridis" if values is feature else "magma")
    ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="w", lw=1.5, ls="--"))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("upstream gradient of ones on the 2 x 2 bins")
plt.show()

# %%
# ``aligned``: half a pixel
# -------------------------
# The original RoI Align (``aligned=False``, still torchvision's default and ONNX's
# ``output_half_pixel``) treats the box corners as pixel *centres*, so it reads the map half a pixel
# to the right of and below where an ``aligned=True`` layer reads. Detectron2 introduced
# ``aligned=True`` to correct this. For boxes larger than a pixel the two differ by exactly that
# shift:

box = np.array([[0, 2.3, 3.4, 9.6, 10.2]])
shifted = box + np.array([0, 0.5, 0.5, 0.5, 0.5])
assert_matches(poolref.roi_align(feature, box, 2, 1.0, 2, aligned=False),
               poolref.roi_align(feature, shifted, 2, 1.0, 2, aligned=True), rtol=1e-12)
print("roi_align(aligned=False) == roi_align(aligned=True) on the box moved by half a pixel")

# %%
# The worked case of the semantics notes shows the same shift on a ramp, where it is easy to read:
# ``x[h, w] = 10 h + w``, box ``[1, 1, 3, 3]``, 4 x 4 bins, one sample per bin. Moving half a pixel
# right and down adds ``0.5 + 5 = 5.5`` to every value.

ramp = np.arange(100.0).reshape(1, 1, 10, 10)
unit_box = np.array([[0, 1, 1, 3, 3]])
print("aligned=True: ", poolref.roi_align(ramp, unit_box, 4, 1.0, 1, aligned=True)[0, 0, 0])
print("aligned=False:", poolref.roi_align(ramp, unit_box, 4, 1.0, 1, aligned=False)[0, 0, 0])
