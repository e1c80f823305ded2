r"""
Max vs average pooling, forward and backward
============================================

Max pooling and average pooling read the same windows but send gradients back in very different
ways: max pooling hands each window's whole gradient to the one element that won, average pooling
spreads it evenly over the window. This tutorial computes both passes **by hand** with NumPy, then
with poolref, and checks that the two agree. Along the way it meets the one thing a hand-written
backward most often gets wrong: windows that overlap.
"""

import matplotlib.pyplot as plt
import numpy as np

import poolref
from poolref.testing import assert_matches

# %%
# The input
# ---------
# One image with one channel, 4 x 4, shaped ``(N, C, H, W) = (1, 1, 4, 4)`` as PyTorch and poolref
# expect. Its values are all different, so every window has a single, clear maximum.

x = np.array(
    [
        [1.0, 6.0, 2.0, 3.0],
        [5.0, 0.0, 9.0, 4.0],
        [7.0, 8.0, 3.5, 2.5],
        [0.5, 4.5, 1.5, 6.5],
    ]
)[None, None]
print(x[0, 0])

# %%
# Forward pass by hand: 2 x 2 windows, stride 2
# ---------------------------------------------
# With kernel 2 and stride 2 the windows tile the input exactly. Reshaping ``(4, 4)`` into
# ``(2, 2, 2, 2)`` (output row, row within the window, output column, column within the window)
# and moving the window axes to the end gives one row of 4 values per window.

windows = x[0, 0].reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)  # (H_out, W_out, 4 taps)
max_by_hand = windows.max(axis=-1)
avg_by_hand = windows.mean(axis=-1)
print("max pooling:\n", max_by_hand)
print("average pooling:\n", avg_by_hand)

# %%
# poolref computes the same thing, with PyTorch's names and arguments:

assert_matches(poolref.max_pool2d(x, 2)[0, 0], max_by_hand)
assert_matches(poolref.avg_pool2d(x, 2)[0, 0], avg_by_hand)

# %%
# Backward pass by hand
# ---------------------
# The backward pass receives the gradient of the loss with respect to each output,
# :math:`g_o = \partial L / \partial y_o`, and must return :math:`\partial L / \partial x`.
# Take a loss whose output gradient is easy to follow, :math:`L = \sum_o w_o y_o` with weights
# ``1, 2, 3, 4``, so :math:`g = w`.
#
# * **Max pooling** is a selection, :math:`y_o = x_{\mathrm{argmax}_o}`: its derivative is 1 for
#   the winner and 0 for the others, so :math:`g_o` goes to the winner of window :math:`o` alone.
# * **Average pooling** is :math:`y_o = \frac14 \sum_{i \in W_o} x_i`: every element of the window
#   gets :math:`g_o / 4`.

g = np.array([[1.0, 2.0], [3.0, 4.0]])

winner = windows.argmax(axis=-1)  # (2, 2): which of the 4 taps won
grad_windows_max = np.zeros_like(windows)
np.put_along_axis(grad_windows_max, winner[..., None], g[..., None], axis=-1)
grad_windows_avg = np.broadcast_to(g[..., None] / 4, windows.shape)


def windows_to_image(w):
    """Undo the reshape above: (2, 2, 4) window rows back to the (4, 4) image."""
    return w.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)


grad_max_by_hand = windows_to_image(grad_windows_max)
grad_avg_by_hand = windows_to_image(grad_windows_avg)
print("max pooling, dL/dx:\n", grad_max_by_hand)
print("average pooling, dL/dx:\n", grad_avg_by_hand)

# %%
# With poolref
# ------------
# :func:`poolref.vjp` runs an op's forward and returns a *pullback*: the hand-written backward of
# that op, ready to take an output gradient.

y, pullback = poolref.vjp(lambda t: poolref.max_pool2d(t, 2), x)
(grad_max,) = pullback(g[None, None])
assert_matches(grad_max[0, 0], grad_max_by_hand, what="max pooling gradient")

y, pullback = poolref.vjp(lambda t: poolref.avg_pool2d(t, 2), x)
(grad_avg,) = pullback(g[None, None])
assert_matches(grad_avg[0, 0], grad_avg_by_hand, what="average pooling gradient")
print("poolref agrees with the hand-written passes")

# %%
# The same computation on the tape: wrap the input in a :class:`poolref.Tensor`, compute the loss
# under a :class:`poolref.Tape`, and ask for the gradient. Printing the tape shows the Wengert list,
# one line per op; the backward walks it in reverse, calling each op's own backward function.

t = poolref.Tensor(x, requires_grad=True)
with poolref.Tape() as tape:
    loss = (poolref.max_pool2d(t, 2) * g).sum()
print(tape)
assert_matches(tape.gradient(loss, t), grad_max)

# %%
# Overlapping windows: gradients add up
# -------------------------------------
# With kernel 2 and **stride 1** the windows overlap: there are 3 x 3 of them and most inputs
# belong to several. An input that wins in two windows must receive *both* gradients. A backward
# written with assignment (``grad[i] = g``) keeps only the last one; the correct backward
# accumulates (``grad[i] += g``, a scatter-add).

y, indices = poolref.max_pool2d(x, 2, 1, return_indices=True)
print("maxima:\n", y[0, 0])
print("flat index of each window's maximum (h * W + w):\n", indices[0, 0])

ones = np.ones_like(y)
assigned = np.zeros(16)
assigned[indices.ravel()] = ones.ravel()  # WRONG: a repeated index keeps one value
accumulated = np.zeros(16)
np.add.at(accumulated, indices.ravel(), ones.ravel())  # right: a repeated index sums
_, pullback = poolref.vjp(lambda t: poolref.max_pool2d(t, 2, 1), x)
(grad_overlap,) = pullback(ones)
print("assignment:\n", assigned.reshape(4, 4))
print("scatter-add (and poolref):\n", grad_overlap[0, 0])
assert_matches(grad_overlap.ravel(), accumulated)
assert not np.array_equal(assigned, accumulated)  # the 9 wins at 4 windows, the 8 at 3

# %%
# Conservation
# ------------
# Because every output gradient goes somewhere, and exactly once, the input gradient of max
# pooling sums to the sum of the output gradients, whatever the windows do. Average pooling
# conserves the sum too, here, because no window reaches into padding. (Tutorial 2 turns these
# facts into property tests; the Concepts page shows when average pooling's sum is *not* kept.)

_, avg_pullback = poolref.vjp(lambda t: poolref.avg_pool2d(t, 2, 1), x)
(grad_avg_overlap,) = avg_pullback(ones)
print(f"sum of output gradients {ones.sum():g}; max pooling passes back {grad_overlap.sum():g}, "
      f"average pooling {grad_avg_overlap.sum():g}")
assert np.isclose(grad_overlap.sum(), ones.sum()) and np.isclose(grad_avg_overlap.sum(), ones.sum())

# %%
# The picture
# -----------
# Max pooling concentrates the gradient on a few winners (here the 9 collects four windows'
# gradients and most inputs get nothing); average pooling smooths it over every input, the
# centre ones getting the most because they lie in the most windows.

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
panels = [(x[0, 0], "input x", "Greys"), (grad_overlap[0, 0], "max pooling: dL/dx", "Reds"),
          (grad_avg_overlap[0, 0], "average pooling: dL/dx", "Blues")]
for ax, (values, title, cmap) in zip(axes, panels):
    ax.imshow(values, cmap=cmap)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:g}", ha="center", va="center")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("kernel 2, stride 1, upstream gradient of ones")
plt.show()
