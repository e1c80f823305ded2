r"""
Checking your own pooling kernel against poolref
================================================

You have written a max pooling kernel: for a new framework, an accelerator, or a fused layer. Does it
compute what PyTorch computes, on every configuration, forward **and** backward? poolref is built
to answer that question: it implements PyTorch's rules exactly (window geometry, ceil mode, ties,
indices) with a hand-written backward, so *your output and gradient must match poolref's*.

This tutorial checks a kernel with two deliberate, realistic bugs, using only
:func:`poolref.testing.assert_matches`, :func:`poolref.testing.assert_conserves_gradient` and
:func:`poolref.autograd.gradcheck`. Along the way it shows why the checks that compare a kernel
with *itself* (finite differences, conservation laws) are not enough: both bugs pass them.
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np

import poolref
from poolref.autograd import Function, apply, gradcheck
from poolref.testing import assert_conserves_gradient, assert_matches

# %%
# The kernel under test
# ---------------------
# A vectorised max pooling in NumPy, the way one would write it: pad with :math:`-\infty`, loop
# over the ``k * k`` kernel taps, keep a running maximum and where it came from. The backward adds
# each output gradient onto the input element that won (a scatter-add). ``fixed=False`` gives the
# version with the two bugs, marked ``BUG`` below.


def output_length(length, kernel, stride, padding, ceil_mode, fixed):
    span = length + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    # BUG 1 (when not fixed): PyTorch drops a last window that would start inside the end padding
    if fixed and ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


def my_max_pool2d_forward(x, *, kernel, stride, padding, ceil_mode, fixed):
    N, C, H, W = x.shape
    Ho = output_length(H, kernel, stride, padding, ceil_mode, fixed)
    Wo = output_length(W, kernel, stride, padding, ceil_mode, fixed)
    # padded input, large enough for the last window even when ceil mode lets it hang over the end
    Hp, Wp = max((Ho - 1) * stride + kernel, H + 2 * padding), max((Wo - 1) * stride + kernel, W + 2 * padding)
    padded = np.full((N, C, Hp, Wp), -np.inf, dtype=x.dtype)
    padded[:, :, padding:padding + H, padding:padding + W] = x
    best = np.full((N, C, Ho, Wo), -np.inf, dtype=x.dtype)
    where = np.zeros((N, C, Ho, Wo), dtype=np.int64)  # flat index h * W + w of the winner
    top, left = np.arange(Ho) * stride - padding, np.arange(Wo) * stride - padding  # window origins
    for dy, dx in itertools.product(range(kernel), range(kernel)):
        tap = padded[:, :, dy:dy + (Ho - 1) * stride + 1:stride, dx:dx + (Wo - 1) * stride + 1:stride]
        # BUG 2 (when not fixed): ">=" lets a later equal value win; PyTorch keeps the FIRST maximum
        wins = tap >= best if not fixed else tap > best
        best = np.where(wins, tap, best)
        where = np.where(wins, (top + dy)[:, None] * W + (left + dx)[None, :], where)
    return (best, where), (where, x.shape)


def my_max_pool2d_backward(saved, grad_values, grad_indices):
    where, x_shape = saved
    planes, pixels = x_shape[0] * x_shape[1], x_shape[2] * x_shape[3]
    grad = np.zeros((planes, pixels), dtype=grad_values.dtype)
    rows = np.repeat(np.arange(planes), where[0, 0].size)  # (N*C*Ho*Wo,): the plane of each output
    np.add.at(grad, (rows, where.ravel()), grad_values.ravel())  # scatter-add: winners of 2 windows get 2
    return (grad.reshape(x_shape),)


# A poolref Function (a forward/backward pair), so that poolref's tape can run its backward
my_max_pool = Function("my_max_pool2d", my_max_pool2d_forward, my_max_pool2d_backward)


def my_max_pool2d(x, kernel, stride, padding=0, ceil_mode=False, fixed=False):
    return apply(my_max_pool, x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, fixed=fixed)


# %%
# Checks against itself: they pass
# --------------------------------
# First the checks a kernel author usually writes: the backward against finite differences of the
# forward (:func:`~poolref.autograd.gradcheck`, in float64), and the conservation law of max
# pooling (the input gradient sums to the output gradient). On an input with distinct values both
# pass, even for the buggy kernel: its backward is a faithful derivative of its own forward.

rng = np.random.default_rng(0)
x = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 4.0  # distinct, well-separated values
config = dict(kernel=3, stride=2, padding=1, ceil_mode=True)
assert gradcheck(lambda t: my_max_pool2d(t, **config), x)
assert_conserves_gradient(lambda t: my_max_pool2d(t, **config)[0], x)
print("gradcheck and the conservation law pass for the buggy kernel")

# %%
# Checks against poolref: a sweep of configurations
# -------------------------------------------------
# Now the oracle check: for every configuration, the output values, the indices and the input
# gradient (for the same random upstream gradient) must match poolref's. :func:`assert_matches`
# reports the number of mismatches, the first mismatching index with both values and the largest
# error, so that a failing window can be found at once.


def compare_with_poolref(x, kernel, stride, padding, ceil_mode, fixed):
    """Raise AssertionError if the kernel differs from poolref in shape, values, indices or gradient."""
    (values, indices), pullback = poolref.vjp(
        lambda t: my_max_pool2d(t, kernel, stride, padding, ceil_mode, fixed), x)
    (want_values, want_indices), want_pullback = poolref.vjp(
        lambda t: poolref.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True), x)
    assert_matches(values, want_values, what="values")
    assert_matches(indices, want_indices, what="indices")
    g = np.random.default_rng(1).normal(size=want_values.shape)
    assert_matches(pullback(g)[0], want_pullback(g)[0], what="gradient")


def sweep(fixed, make_input):
    """Run compare_with_poolref over a grid of configurations; return the failures."""
    failures, checked = [], 0
    for size, kernel, stride, ceil_mode in itertools.product((5, 6, 7), (2, 3), (1, 2, 3), (False, True)):
        for padding in range(kernel // 2 + 1):  # PyTorch allows padding up to half the kernel
            x = make_input((2, 2, size, size))
            checked += 1
            try:
                compare_with_poolref(x, kernel, stride, padding, ceil_mode, fixed)
            except AssertionError as error:
                failures.append((dict(size=size, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode),
                                 str(error)))
    return checked, failures


def distinct(shape):
    return np.random.default_rng(2).permutation(int(np.prod(shape))).reshape(shape) / 4.0


checked, failures = sweep(fixed=False, make_input=distinct)
print(f"distinct inputs: {len(failures)} of {checked} configurations differ from poolref")
for config, message in failures[:3]:
    print("  ", config, "->", message)

# %%
# Every failure is BUG 1: in ceil mode, when the last window would start inside the end padding,
# PyTorch (and so poolref) drops it; the kernel keeps it and returns one row and column too many.
# (The Semantics pages give the rule, which ONNX also adopted in version 1.16.)

assert failures and all(config["ceil_mode"] and "shape" in message for config, message in failures)

# %%
# Ties: the second bug
# --------------------
# Random real numbers are never equal, so the sweep above cannot see how ties are broken. Real
# activations tie all the time: ReLU outputs are full of zeros, and quantised values repeat. Run the
# sweep again on small integers:


def small_integers(shape):
    return np.random.default_rng(3).integers(0, 3, size=shape).astype(np.float64)


checked, tie_failures = sweep(fixed=False, make_input=small_integers)
print(f"tied inputs: {len(tie_failures)} of {checked} configurations differ from poolref")
for config, message in tie_failures[:2]:
    print("  ", config, "->", message)
assert any("indices" in message for _, message in tie_failures)

# %%
# The values still agree (a maximum is a maximum), but the indices do not, and so neither does the
# gradient: with ``>=`` a later equal element replaces the winner, while PyTorch keeps the first in
# scan order. The picture shows where the gradient of one tied window goes:

x = np.array([[2.0, 0.0, 1.0, 2.0], [1.0, 2.0, 2.0, 0.0], [0.0, 1.0, 2.0, 2.0], [2.0, 0.0, 0.0, 1.0]])[None, None]
_, mine = poolref.vjp(lambda t: my_max_pool2d(t, 2, 2)[0], x)
_, theirs = poolref.vjp(lambda t: poolref.max_pool2d(t, 2, 2), x)
ones = np.ones((1, 1, 2, 2))
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, (values, title, cmap) in zip(axes, [(x, "input: every window holds two 2s", "Greys"),
                                            (theirs(ones)[0], "poolref (PyTorch): first 2 wins", "Greens"),
                                            (mine(ones)[0], "buggy kernel: last 2 wins", "Reds")]):
    ax.imshow(values[0, 0], cmap=cmap, vmin=0, vmax=2.5)
    for (r, c), v in np.ndenumerate(values[0, 0]):
        ax.text(c, r, f"{v:g}", ha="center", va="center")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("max_pool2d(x, 2): where each window's gradient (1) goes")
plt.show()

# %%
# The fixed kernel
# ----------------
# With both bugs fixed (``fixed=True``: drop the window that starts in the padding, and ``>``
# instead of ``>=``), every configuration matches poolref, with distinct and with tied inputs:

for make_input in (distinct, small_integers):
    checked, failures = sweep(fixed=True, make_input=make_input)
    assert not failures, failures
    print(f"{make_input.__name__}: all {checked} configurations match poolref (values, indices, gradient)")

# %%
# Where to go from here
# ---------------------
# * Check more than the defaults: dilation, asymmetric or ``"same"`` padding, NaN (a window holding
#   a NaN returns NaN, with the index of its last NaN), float16, empty batches. The property
#   strategies of tutorial 2 (:mod:`poolref.testing.strategies`) draw such configurations for you.
# * If your kernel follows ONNX's or TensorFlow's rules rather than PyTorch's, compare with
#   ``poolref.max_pool2d(..., convention="onnx")`` or ``"tensorflow"``: poolref models their
#   differences explicitly (see the Semantics pages).
# * To cross-check a whole framework rather than one kernel, run the oracle: ``poolref check`` on
#   the command line (:doc:`/oracle`).
