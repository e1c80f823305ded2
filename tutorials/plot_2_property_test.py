r"""
A gradient-conservation property test with hypothesis
=====================================================

A pooling op's backward routes every output gradient back onto its window, so the input gradient
must add up to a known total. For max pooling that total is simply the sum of the output gradients,
for **every** kernel, stride, padding, dilation and ceil mode. A law that holds for every
configuration is exactly what a property-based test checks: `hypothesis
<https://hypothesis.readthedocs.io>`_ draws configurations, runs the check on each, and when one fails
it *shrinks* it to the smallest failing case.

poolref ships the pieces in :mod:`poolref.testing`:

* ``poolref.testing.strategies.pool_cases(n, op=...)`` draws a valid configuration (one PyTorch accepts) and an
  input for it; inputs of max-type ops hold distinct values, so no argmax is ambiguous;
* :func:`~poolref.testing.assert_conserves_gradient` runs an op forward and backward with a random
  upstream gradient and compares the two sums;
* :func:`~poolref.testing.avg_pool_window_mass` says how much of each average-pooling window's
  gradient reaches the input (less than all of it when the divisor counts padding).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from hypothesis import Phase, given, settings

import poolref
from poolref.autograd import Function, apply
from poolref.testing import assert_conserves_gradient, avg_pool_window_mass
from poolref.testing.strategies import pool_cases

# sphinx_gallery_thumbnail_number = 1
# (the gallery's thumbnail: the figure of the assignment bug below)

# The test suite runs every tutorial with POOLREF_TUTORIAL_QUICK=1: fewer examples per property.
QUICK = os.environ.get("POOLREF_TUTORIAL_QUICK") == "1"
EXAMPLES = 25 if QUICK else 200
# derandomize: the same examples on every run, so these pages show the same output every build;
# no "explain" phase: the shrunk failing example is all we print
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

# %%
# The property, for poolref's max pooling
# ---------------------------------------
# A hypothesis test is a function decorated with ``@given``; calling it runs it on ``EXAMPLES``
# drawn cases. In a test file you would let pytest call it; here we call it ourselves.

drawn = []


@SETTINGS
@given(pool_cases(n=2, op="max"))
def test_max_pool_conserves_gradient(case):
    drawn.append(case.kwargs)
    assert_conserves_gradient(poolref.max_pool2d, case.x, **case.kwargs)


test_max_pool_conserves_gradient()
print(f"max pooling conserved the gradient in all {len(drawn)} drawn configurations, e.g.")
for kwargs in drawn[:3]:
    print("   ", kwargs)

# %%
# Average pooling: the law with its window mass
# ---------------------------------------------
# Average pooling divides each window's gradient by its divisor :math:`D_o` and hands
# :math:`g_o / D_o` to each of its :math:`V_o` valid elements, so window :math:`o` passes on
# :math:`g_o V_o / D_o`. That is all of :math:`g_o` unless the divisor counts padding
# (``count_include_pad=True`` with a window in the padding) or is overridden. The law with the
# window mass :math:`V_o / D_o` holds always:


@SETTINGS
@given(pool_cases(n=2, op="avg"))
def test_avg_pool_passes_on_its_window_mass(case):
    spatial = case.x.shape[2:]
    mass = avg_pool_window_mass(spatial, **case.kwargs)  # (H_out, W_out), broadcast over N and C
    assert_conserves_gradient(poolref.avg_pool2d, case.x, window_mass=mass, **case.kwargs)


test_avg_pool_passes_on_its_window_mass()
print("average pooling passed on exactly its window mass in every drawn configuration")

# %%
# Without the mass the law is false, and hypothesis finds a configuration that shows it. The
# failure is the answer we want here, so we catch it and print the smallest case hypothesis found:


@SETTINGS
@given(pool_cases(n=2, op="avg"))
def test_avg_pool_naive_law(case):
    assert_conserves_gradient(poolref.avg_pool2d, case.x, **case.kwargs)


try:
    test_avg_pool_naive_law()
except AssertionError as error:
    print("as expected, the naive law fails:", str(error).splitlines()[0])
    for note in getattr(error, "__notes__", []):
        print(note)
else:
    raise RuntimeError("hypothesis should have found a window whose divisor counts padding")

# %%
# Catching a bug in a backward
# ----------------------------
# Now the law earns its keep. Here is a max pooling whose forward is right but whose backward
# writes each output gradient to the winner with an **assignment**, ``grad[index] = g``, instead of
# adding it (tutorial 1 showed why that is wrong: where windows overlap, an element that wins twice
# keeps only one of its gradients). It is a poolref :class:`~poolref.autograd.Function`: a forward
# that returns its output and what the backward needs, and a backward, so that the tape (and so
# :func:`~poolref.testing.assert_conserves_gradient`) can run it.


def buggy_forward(x, **kwargs):
    y, indices = poolref.max_pool2d(x, return_indices=True, **kwargs)
    return y, (indices, x.shape)


def buggy_backward(saved, grad_y):
    indices, x_shape = saved
    planes = x_shape[0] * x_shape[1]  # one (n, c) plane per row
    grad = np.zeros((planes, int(np.prod(x_shape[2:]))), dtype=grad_y.dtype)  # (N*C, H*W)
    outputs = int(np.prod(grad_y.shape[2:]))  # explicit sizes: an empty batch has no -1 to infer
    # BUG: put_along_axis assigns, so a repeated index keeps one gradient; np.add.at would sum them
    np.put_along_axis(grad, indices.reshape(planes, outputs), grad_y.reshape(planes, outputs), axis=1)
    return (grad.reshape(x_shape),)


buggy_max_pool = Function("buggy_max_pool2d", buggy_forward, buggy_backward)


def buggy_max_pool2d(x, **kwargs):
    return apply(buggy_max_pool, x, **kwargs)


# %%
# On non-overlapping windows the bug is invisible, which is why a handful of hand-picked test cases
# can miss it:

x = np.random.default_rng(0).permutation(16).reshape(1, 1, 4, 4).astype(float)
assert_conserves_gradient(buggy_max_pool2d, x, kernel_size=2, stride=2)
print("kernel 2, stride 2: the buggy backward passes")

# %%
# The property test draws overlapping configurations too, finds the bug, and shrinks the failing
# case to a small one:


@SETTINGS
@given(pool_cases(n=2, op="max"))
def test_buggy_max_pool_conserves_gradient(case):
    assert_conserves_gradient(buggy_max_pool2d, case.x, **case.kwargs)


try:
    test_buggy_max_pool_conserves_gradient()
except AssertionError as error:
    print("the property test caught the bug:", str(error).splitlines()[0])
    for note in getattr(error, "__notes__", []):
        print(note)
else:
    raise RuntimeError("the conservation law should have caught the assignment bug")

# %%
# What the law sees
# -----------------
# On a 5 x 5 input with a 3 x 3 window and stride 1, the nine windows overlap and the largest values
# win several of them. With an upstream gradient of ones, the right backward hands each element as
# many ones as it has won windows, and the input gradient sums to 9, one per output; the assignment
# keeps a single one per winner, so its sum is only the number of distinct winners:

x = np.random.default_rng(2).permutation(25).reshape(1, 1, 5, 5).astype(float)  # (1, 1, 5, 5)
ones = np.ones((1, 1, 3, 3))  # one upstream gradient per output
_, right = poolref.vjp(lambda t: poolref.max_pool2d(t, 3, stride=1), x)
_, buggy = poolref.vjp(lambda t: buggy_max_pool2d(t, kernel_size=3, stride=1), x)
grad_right, grad_buggy = right(ones)[0], buggy(ones)[0]
print(f"sum of the upstream gradient: {ones.sum():g}; right backward: {grad_right.sum():g}; "
      f"assignment: {grad_buggy.sum():g}")
assert grad_right.sum() == ones.sum() and grad_buggy.sum() < ones.sum()

fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
panels = [(x[0, 0], "input x", "Greys"),
          (grad_right[0, 0], f"right backward: sum {grad_right.sum():g}", "Greens"),
          (grad_buggy[0, 0], f"assignment bug: sum {grad_buggy.sum():g}", "Reds")]
for ax, (values, title, cmap) in zip(axes, panels):
    ax.imshow(values, cmap=cmap)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("max_pool2d(x, 3, stride=1), upstream gradient of ones: dL/dx")
plt.show()

# %%
# In your own test suite
# ----------------------
# In a test file the same property is only a few lines; pytest runs it and hypothesis reports the
# shrunk failing case::
#
#     from hypothesis import given
#     import poolref
#     from poolref.testing import assert_conserves_gradient
#     from poolref.testing.strategies import pool_cases
#
#     @given(pool_cases(n=2, op="max"))
#     def test_my_max_pool_conserves_gradient(case):
#         assert_conserves_gradient(my_max_pool2d, case.x, **case.kwargs)
#
# ``pool_configs`` takes options to narrow the drawing (``convention="onnx"``, ``string_padding=True``
# for ``"same"`` padding, ``overlapping=False``, ...), and ``adaptive_cases`` draws adaptive pooling
# cases. Tutorial 3 checks a kernel's values and gradients, not only their sums.
