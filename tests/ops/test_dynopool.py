"""DynOPool (docs/dynopool.rst): max-pool equivalence, loop reference, gradients to x and to alpha, PyTorch."""

import re

import numpy
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import poolref
from helpers import assert_same_bits, torch_or_skip
from poolref.autograd import gradcheck, vjp
from poolref.ops.dynopool.arrays import _backward_by_matrices, _backward_by_points, _forward_arrays, _gather, _points
from poolref.ops.dynopool.geometry import query_axis
from poolref.reference import dynopool as ref
from poolref.testing import assert_matches
from poolref.testing.torch_compositions import dynopool_by_grid_sample
from poolref.testing.strategies import distinct_values

alphas = st.floats(0.4, 4.0, allow_nan=False)
lengths = st.integers(1, 9)


def random_values(shape, seed):
    """Gaussian values: unlike an arithmetic progression, bilinear blends of them do not tie."""
    return numpy.random.default_rng(seed).standard_normal(shape)


def has_integer_query(length, alpha):
    """Whether a query coordinate lies on a pixel, where the value has a kink in u.

    Inside the image the slope there is a one-sided difference; on the border (u = 0 or L - 1) the
    slope is 0 by convention while central differences see half a slope. Gradients to alpha are
    compared away from both.
    """
    axis = query_axis(length, alpha)
    u = axis.phase * (length / axis.out_length) - 0.5
    # 1e-3: a central difference moves u by up to ~20 * eps when alpha is small; stay clear of the kink
    near = 1e-3
    return bool(numpy.any((numpy.abs(u - numpy.round(u)) < near) & (u > -near) & (u < length - 1 + near)))


def smallest_max_gap(x, alpha):
    """The smallest nonzero gap between the largest and second-largest query point of any cell.

    Where it is tiny, a finite-difference step can switch the winner, and central differences see
    a kink the derivative does not have.
    """
    rows, columns = query_axis(x.shape[-2], alpha[0]), query_axis(x.shape[-1], alpha[1])
    points = numpy.stack(_points(_gather(_gather(x, rows, -2, numpy), columns, -1, numpy)), axis=-1)
    top_two = numpy.sort(points, axis=-1)[..., -2:]
    gaps = top_two[..., 1] - top_two[..., 0]
    gaps = gaps[gaps > 0]  # 0: coincident points (clamped to the same pixel), which move together
    return float(gaps.min()) if gaps.size else numpy.inf


def smooth_alpha(draw, H, W):
    """An alpha whose query points avoid pixel coordinates (so the derivative to alpha is defined)."""
    alpha = numpy.array([draw(alphas), draw(alphas)])
    if has_integer_query(H, alpha[0]) or has_integer_query(W, alpha[1]):
        alpha = alpha + 0.0123  # away from the kink; checked again below
    return alpha


# --------------------------------------------------------------------------------------------------
# Worked cases
# --------------------------------------------------------------------------------------------------
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_alpha_two_is_a_two_by_two_max_pool(N, C, half_h, half_w, seed):
    rng = numpy.random.default_rng(seed)
    for dtype in (numpy.float64, numpy.float32):
        x = rng.standard_normal((N, C, 2 * half_h, 2 * half_w)).astype(dtype)
        y = poolref.dynopool2d(x, numpy.array([2.0, 2.0]))
        numpy.testing.assert_array_equal(y, poolref.max_pool2d(x, 2))


def test_alpha_two_backward_is_the_max_pool_backward():
    x = distinct_values((2, 3, 6, 8), seed=1)
    g = numpy.random.default_rng(2).standard_normal((2, 3, 3, 4))
    _, pull = vjp(lambda t: poolref.dynopool2d(t, numpy.array([2.0, 2.0])), x)
    _, pull_max = vjp(lambda t: poolref.max_pool2d(t, 2), x)
    numpy.testing.assert_array_equal(pull(g)[0], pull_max(g)[0])


def test_output_size_rounds_half_to_even_and_never_below_one():
    x = numpy.zeros((1, 1, 10, 5))
    assert poolref.dynopool2d(x, numpy.array([4.0, 2.0])).shape == (1, 1, 2, 2)  # 2.5 -> 2, 2.5 -> 2
    assert poolref.dynopool2d(x, numpy.array([100.0, 100.0])).shape == (1, 1, 1, 1)
    assert poolref.dynopool2d(x, numpy.array([0.5, 0.75])).shape == (1, 1, 20, 7)  # 6.67 -> 7: enlarges


def test_ties_go_to_the_first_query_point_and_avg_is_the_mean():
    x = numpy.ones((1, 1, 2, 2))
    y, pull = vjp(lambda t: poolref.dynopool2d(t, numpy.array([2.0, 2.0])), x)
    numpy.testing.assert_array_equal(pull(numpy.ones((1, 1, 1, 1)))[0], [[[[1, 0], [0, 0]]]])
    x = numpy.arange(4.0).reshape(1, 1, 2, 2)
    numpy.testing.assert_array_equal(poolref.dynopool2d(x, numpy.array([2.0, 2.0]), aggregate="avg"), [[[[1.5]]]])


def test_a_nan_wins_the_max_like_the_loop_reference_and_pytorch():
    torch = torch_or_skip()
    x = random_values((1, 2, 6, 7), seed=9)
    x[0, 0, 2, 3] = numpy.nan
    alpha = numpy.array([1.7, 2.6])
    y = poolref.dynopool2d(x, alpha)
    assert_matches(y, ref.dynopool_reference(x, alpha), rtol=1e-12, atol=1e-12)  # NaN where NaN
    want = dynopool_by_grid_sample(torch, torch.tensor(x), torch.tensor(alpha)).numpy()
    numpy.testing.assert_array_equal(numpy.isnan(y), numpy.isnan(want))
    assert numpy.isnan(y[0, 0]).any() and not numpy.isnan(y[0, 1]).any()


def test_max_pool2d_and_dynopool2d_send_a_nan_window_gradient_to_the_same_last_nan():
    # regression: at alpha = 2 max_pool2d sent a NaN window's gradient to the LAST NaN (PyTorch's
    # rule), dynopool2d to the FIRST; both follow poolref._running_max.TORCH now
    x = numpy.array([[[[numpy.nan, 1.0], [numpy.nan, 2.0]]]])
    grads = []
    for op in (lambda t: poolref.max_pool2d(t, 2), lambda t: poolref.dynopool2d(t, numpy.array([2.0, 2.0]))):
        y, pull = vjp(op, x)
        assert numpy.isnan(y).all()
        grads.append(pull(numpy.ones(y.shape))[0])
    numpy.testing.assert_array_equal(grads[0], [[[[0, 0], [1, 0]]]])
    numpy.testing.assert_array_equal(grads[1], grads[0])


def test_dynopool2d_at_alpha_2_is_max_pool2d_with_nan_infinities_and_signed_zeros():
    # every query point lies on a pixel, which it alone reads: the NaN, infinities and -0. of a
    # neighbour must not leak in (0 * NaN), and the routing, index for index, is max_pool2d's
    x = random_values((2, 3, 6, 8), seed=2).round(0)  # many ties
    flat = x.reshape(-1)
    flat[::7] = numpy.nan
    flat[3::11] = numpy.inf
    flat[5::13] = -numpy.inf
    flat[1::9] = -0.0
    x[1, 2] = -0.0
    x[1, 1, :2, :2] = -numpy.inf
    (y, i), pull = vjp(lambda t: poolref.max_pool2d(t, 2, return_indices=True), x)
    yd, pull_d = vjp(lambda t: poolref.dynopool2d(t, numpy.array([2.0, 2.0])), x)
    numpy.testing.assert_array_equal(yd, y)
    numpy.testing.assert_array_equal(numpy.signbit(yd), numpy.signbit(y))
    g = random_values(y.shape, seed=3)
    g.reshape(-1)[[0, 5, 9]] = [numpy.inf, numpy.nan, -numpy.inf]
    numpy.testing.assert_array_equal(pull_d(g)[0], pull(g)[0])  # inf and NaN at the argmax only


def test_dynopool_alpha_gradient_ignores_a_nan_no_query_point_reads():
    # regression: row 2 of this 5-row map is read by no query point (alpha_h = 3.75: one output row,
    # query rows 0.75 and 3.25), but the NumPy alpha gradient multiplied it by zeros: [nan, 1.5156]
    x = numpy.random.default_rng(0).standard_normal((1, 1, 5, 3))
    x[0, 0, 2, 1] = numpy.nan
    alpha = numpy.array([3.75, 1.0])
    y, pull = vjp(lambda t, a: poolref.dynopool2d(t, a), x, alpha)
    grad_x, grad_alpha = pull(numpy.ones(y.shape))
    numpy.testing.assert_allclose(grad_alpha, [-0.29868355, 1.51564035], rtol=1e-7)
    numpy.testing.assert_allclose(grad_alpha, ref.dynopool_backward_reference(numpy.ones(y.shape), x, alpha)[1], rtol=1e-12)
    assert not numpy.isnan(y).any() and not numpy.isnan(grad_x).any() and grad_x[0, 0, 2].tolist() == [0, 0, 0]


def test_dynopool_backward_keeps_an_infinite_upstream_gradient_on_the_pixels_its_point_read():
    x = random_values((1, 1, 7, 6), seed=4)
    alpha = numpy.array([1.7, 2.6])
    y, pull = vjp(lambda t, a: poolref.dynopool2d(t, a), x, alpha)
    g = numpy.zeros(y.shape)
    g[0, 0, 1, 1] = numpy.inf
    grad_x, _ = pull(g)
    one = numpy.zeros(y.shape)
    one[0, 0, 1, 1] = 1.0
    reads = pull(one)[0] != 0  # the pixels that output's chosen point read, with nonzero weight
    assert numpy.isinf(grad_x[reads]).all() and (grad_x[~reads] == 0).all()


@pytest.mark.parametrize("alpha", [(2.0, 2.0), (1.7, 2.6), (3.75, 1.0), (0.6, 0.8)])
@pytest.mark.parametrize("aggregate", ["max", "avg"])
def test_the_matrix_backward_equals_the_point_backward_on_finite_inputs(alpha, aggregate):
    # the speed trick of _backward_arrays: with finite x and upstream gradient, products with zeros are
    # zeros and the matrix formulation is the point-wise definition, up to rounding
    x = random_values((2, 3, 7, 9), seed=5)
    rows, columns = query_axis(7, alpha[0]), query_axis(9, alpha[1])
    y, choice, query_rows = _forward_arrays(x, rows, columns, aggregate, numpy)
    g = random_values(y.shape, seed=6)
    by_points = _backward_by_points(x, query_rows, g, choice, rows, columns, aggregate, numpy)
    by_matrices = _backward_by_matrices(x, query_rows, g, choice, rows, columns, aggregate, numpy)
    numpy.testing.assert_allclose(by_matrices[0], by_points[0], rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(by_matrices[1], by_points[1], rtol=1e-10)


def test_return_size_and_its_straight_through_gradient():
    x = numpy.zeros((1, 1, 12, 9))
    alpha = numpy.array([2.5, 1.5])
    (y, size), pull = vjp(lambda t, a: poolref.dynopool2d(t, a, return_size=True), x, alpha)
    numpy.testing.assert_array_equal(size, [5.0, 6.0])  # round(4.8), round(6)
    _, grad_alpha = pull((numpy.zeros(y.shape), numpy.array([1.0, 2.0])))
    numpy.testing.assert_allclose(grad_alpha, [-12 / 2.5**2, -2 * 9 / 1.5**2])


# --------------------------------------------------------------------------------------------------
# x and alpha on different devices (cupy: real CuPy on a GPU, else the stand-in running the kernels
# in the emulator): each gradient lives with its input, whichever outputs receive one
# --------------------------------------------------------------------------------------------------
def _dynopool_gradients(module, x, alpha, into, g_y, g_size):
    """Gradients of x and alpha (Tensors of `module`'s arrays) for upstream gradients into `into`."""
    from poolref.autograd import Tape

    x, alpha = poolref.Tensor(x, requires_grad=True), poolref.Tensor(alpha, requires_grad=True)
    with Tape() as tape:
        y, size = poolref.dynopool2d(x, alpha, return_size=True)
    targets = {"y": [y], "size": [size], "both": [y, size]}[into]
    seeds = {"y": [g_y], "size": [g_size], "both": [g_y, g_size]}[into]
    return tape.gradient(targets, [x, alpha], seeds)


@pytest.mark.parametrize("into", ["y", "size", "both"])
@pytest.mark.parametrize("x_on, alpha_on", [("device", "host"), ("host", "device"), ("device", "device")])
def test_return_size_with_x_and_alpha_on_different_devices_takes_gradients_into_y_size_or_both(cupy, into, x_on, alpha_on):
    # the defects: with x on the device and alpha on the host, a gradient into y and size raised
    # "inputs mix numpy and cupy arrays"; into size alone, the backward took its array module from
    # y's (host) zero gradient and handed numpy to the kernel launcher ("module 'numpy' has no
    # attribute 'cuda'"). A host alpha gets a host gradient, a device x a device gradient
    from poolref._backend import array_module, to_numpy

    x, alpha = random_values((2, 3, 9, 11), 46), numpy.array([1.7, 2.6])
    g_y, g_size = random_values((2, 3, 5, 4), 47), numpy.array([0.5, -0.25])
    want = _dynopool_gradients(numpy, x, alpha, into, g_y, g_size)
    place = {"host": numpy.asarray, "device": cupy.asarray}
    got = _dynopool_gradients(cupy, place[x_on](x), place[alpha_on](alpha), into, place[x_on](g_y), place[alpha_on](g_size))
    assert array_module(got[0]) is array_module(place[x_on](x)) and array_module(got[1]) is array_module(place[alpha_on](alpha))
    assert_matches(to_numpy(got[0]), want[0], rtol=1e-12, atol=1e-12, what="gradient of x")
    assert_matches(to_numpy(got[1]), want[1], rtol=1e-10, atol=1e-12, what="gradient of alpha")


def test_dynopool_backward_with_x_and_alpha_on_the_device_never_waits_for_the_device(cupy, monkeypatch):
    # the backward read the kernels' alpha sums back to the host (grad_cell.get()), a synchronisation
    # per call; now the sums stay on the device and the gradient of a device alpha is computed there
    import poolref.ops.dynopool as dynopool_module

    if not hasattr(cupy, "_core"):
        pytest.skip("counts host transfers on the CuPy stand-in only")
    x, alpha = poolref.Tensor(cupy.asarray(random_values((2, 3, 9, 11), 48)), requires_grad=True), \
        poolref.Tensor(cupy.asarray(numpy.array([1.7, 2.6])), requires_grad=True)
    y, size = poolref.dynopool2d(x, alpha, return_size=True)  # the forward reads alpha: the output size depends on it
    device_array = type(x.data)
    transfers = []
    for name in ("get", "item", "tolist", "__float__", "__array__"):
        original = getattr(device_array, name)
        monkeypatch.setattr(device_array, name, lambda self, *a, _name=name, _original=original, **k:
                            transfers.append(_name) or _original(self, *a, **k))
    monkeypatch.setattr(dynopool_module, "to_numpy", lambda value: transfers.append("to_numpy") or value.get())
    (y.sum() + size.sum()).backward()
    assert transfers == [], f"the backward copied device values to the host: {transfers}"
    assert type(x.grad) is device_array and type(alpha.grad) is device_array


# --------------------------------------------------------------------------------------------------
# Loop reference, gradchecks
# --------------------------------------------------------------------------------------------------
@given(st.data())
def test_matches_loop_reference(data):
    N, C, H, W = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), data.draw(lengths), data.draw(lengths)
    alpha = numpy.array([data.draw(alphas), data.draw(alphas)])
    aggregate = data.draw(st.sampled_from(["max", "avg"]))
    x = random_values((N, C, H, W), seed=data.draw(st.integers(0, 2**32 - 1)))  # no ties
    (y, size), pull = vjp(lambda t, a: poolref.dynopool2d(t, a, aggregate=aggregate, return_size=True), x, alpha)
    assert_matches(y, ref.dynopool_reference(x, alpha, aggregate), rtol=1e-12, atol=1e-12)
    g = numpy.random.default_rng(0).standard_normal(y.shape)
    g_size = numpy.array([0.3, -0.7])
    grad_x, grad_alpha = pull((g, g_size))
    want_x, want_alpha = ref.dynopool_backward_reference(g, x, alpha, aggregate, g_size)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(grad_alpha, want_alpha, rtol=1e-9, atol=1e-9)


@given(st.data())
def test_gradcheck_x(data):
    H, W = data.draw(st.integers(2, 7)), data.draw(st.integers(2, 7))
    alpha = smooth_alpha(data.draw, H, W)
    aggregate = data.draw(st.sampled_from(["max", "avg"]))
    x = random_values((1, 2, H, W), seed=data.draw(st.integers(0, 2**32 - 1)))
    assert gradcheck(lambda t: poolref.dynopool2d(t, alpha, aggregate=aggregate), x, rtol=1e-6)


def frozen_size_forward(x, alpha, alpha0, aggregate):
    """The frozen-size function (docs/dynopool.rst, "Checking the gradient to alpha"): sizes fixed at alpha0,
    cell sizes following the continuous size."""
    N, C, H, W = x.shape
    out = [max(1, int(numpy.round(L / a))) for L, a in zip((H, W), alpha0)]
    cells = [L / (O + L / a - L / a0) for L, O, a, a0 in zip((H, W), out, alpha, alpha0)]
    y = numpy.zeros((N, C, out[0], out[1]))
    for n in range(N):
        for c in range(C):
            for i in range(out[0]):
                for j in range(out[1]):
                    values = [ref.bilinear_read(x[n, c], (i + 0.25 + a / 2) * cells[0] - 0.5,
                                                (j + 0.25 + b / 2) * cells[1] - 0.5)[0]
                              for a in (0, 1) for b in (0, 1)]
                    y[n, c, i, j] = max(values) if aggregate == "max" else sum(values) / 4
    return y


@given(st.data())
def test_gradient_to_alpha_is_the_derivative_of_the_frozen_size_function(data):
    H, W = data.draw(st.integers(2, 8)), data.draw(st.integers(2, 8))
    alpha = smooth_alpha(data.draw, H, W)
    assume(not (has_integer_query(H, alpha[0]) or has_integer_query(W, alpha[1])))
    aggregate = data.draw(st.sampled_from(["max", "avg"]))
    x = random_values((2, 2, H, W), seed=data.draw(st.integers(0, 2**32 - 1)))
    # points that coincide tie exactly and move together; points that nearly tie are a kink for the
    # central differences below (the step moves a point by up to ~20 * eps)
    gap = smallest_max_gap(x, alpha)
    assume(aggregate == "avg" or gap > 1e-3)
    y, pull = vjp(lambda a: poolref.dynopool2d(x, a, aggregate=aggregate), alpha)
    g = numpy.random.default_rng(3).standard_normal(y.shape)
    (grad_alpha,) = pull(g)
    eps = 1e-6
    numerical = []
    for k in range(2):
        step = numpy.zeros(2)
        step[k] = eps
        plus = numpy.sum(g * frozen_size_forward(x, alpha + step, alpha, aggregate))
        minus = numpy.sum(g * frozen_size_forward(x, alpha - step, alpha, aggregate))
        numerical.append((plus - minus) / (2 * eps))
    numpy.testing.assert_allclose(grad_alpha, numerical, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# PyTorch: the grid_sample composition of docs/dynopool.rst
# --------------------------------------------------------------------------------------------------
@given(st.data())
def test_matches_pytorch_grid_sample_composition(data):
    torch = torch_or_skip()
    H, W = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    alpha = smooth_alpha(data.draw, H, W)
    assume(not (has_integer_query(H, alpha[0]) or has_integer_query(W, alpha[1])))
    aggregate = data.draw(st.sampled_from(["max", "avg"]))
    N, C = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    x = random_values((N, C, H, W), seed=data.draw(st.integers(0, 2**32 - 1)))
    xt = torch.tensor(x, requires_grad=True)
    at = torch.tensor(alpha, requires_grad=True)
    yt = dynopool_by_grid_sample(torch, xt, at, aggregate)
    g = numpy.random.default_rng(4).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    y, pull = vjp(lambda t, a: poolref.dynopool2d(t, a, aggregate=aggregate), x, alpha)
    grad_x, grad_alpha = pull(g)
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_matches(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(grad_alpha, at.grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype, tol", [(numpy.float32, 1e-5), (numpy.float16, 2e-2)])
def test_low_precision_is_close_to_float64(dtype, tol):
    x = distinct_values((2, 3, 9, 7), seed=5)
    alpha = numpy.array([1.7, 2.6])
    y64, pull64 = vjp(lambda t: poolref.dynopool2d(t, alpha), x)
    y, pull = vjp(lambda t: poolref.dynopool2d(t, alpha.astype(numpy.float32)), x.astype(dtype))
    assert y.dtype == dtype
    numpy.testing.assert_allclose(y, y64, rtol=tol, atol=tol)
    g = numpy.ones(y.shape)
    numpy.testing.assert_allclose(pull(g.astype(dtype))[0], pull64(g)[0], rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------------
# Arrays and Tensors, unbatched, empty, bad input
# --------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_and_alpha_learns_on_the_tape():
    x = poolref.Tensor(distinct_values((1, 2, 8, 8), seed=6), requires_grad=True)
    alpha = poolref.Tensor(numpy.array([1.7, 2.6]), requires_grad=True)
    with poolref.Tape() as tape:
        y, size = poolref.dynopool2d(x, alpha, return_size=True)
        loss = (y * y).sum() + size.sum()
    grad_x, grad_alpha = tape.gradient(loss, [x, alpha])
    assert isinstance(y, poolref.Tensor) and grad_x.shape == x.shape and grad_alpha.shape == (2,)
    assert "dynopool2d" in str(tape)


def test_unbatched_and_empty_batch():
    x = distinct_values((2, 6, 6), seed=7)
    alpha = numpy.array([1.5, 2.5])
    numpy.testing.assert_array_equal(poolref.dynopool2d(x, alpha), poolref.dynopool2d(x[None], alpha)[0])
    y, pull = vjp(lambda t, a: poolref.dynopool2d(t, a), numpy.zeros((0, 3, 6, 6)), alpha)
    assert y.shape == (0, 3, 4, 2)
    grad_x, grad_alpha = pull(numpy.zeros(y.shape))
    assert grad_x.shape == (0, 3, 6, 6)
    numpy.testing.assert_array_equal(grad_alpha, [0.0, 0.0])


def test_inputs_are_never_modified():
    x = distinct_values((1, 2, 7, 5), seed=8)
    alpha = numpy.array([1.3, 0.8])
    x0, alpha0 = x.copy(), alpha.copy()
    y, pull = vjp(lambda t, a: poolref.dynopool2d(t, a, aggregate="avg"), x, alpha)
    g = numpy.ones(y.shape)
    g0 = g.copy()
    pull(g)
    numpy.testing.assert_array_equal(x, x0)
    numpy.testing.assert_array_equal(alpha, alpha0)
    numpy.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("alpha, error, words", [
    (numpy.array([0.0, 2.0]), ValueError, "alpha must be finite and > 0, got alpha=[0.0, 2.0]"),
    (numpy.array([-1.0, 2.0]), ValueError, "alpha=[-1.0, 2.0]"),
    (numpy.array([numpy.nan, 2.0]), ValueError, "alpha=[nan, 2.0]"),
    (numpy.array([2.0, numpy.inf]), ValueError, "alpha=[2.0, inf]"),
    (numpy.array([2.0, 2.0, 2.0]), ValueError, "alpha with shape (3,)"),
    (numpy.array([[2.0, 2.0]]), ValueError, "alpha with shape (1, 2)"),
    (numpy.array([2, 2]), TypeError, "alpha with dtype int64"),
    ("two", TypeError, "alpha='two'"),
])
def test_bad_alpha_is_refused_with_a_clear_message(alpha, error, words):
    with pytest.raises(error, match="dynopool2d") as info:
        poolref.dynopool2d(numpy.zeros((1, 1, 4, 4)), alpha)
    assert words in str(info.value)


@pytest.mark.parametrize("x, kwargs, error, words", [
    (numpy.zeros((4, 4)), {}, ValueError, "x with shape (4, 4)"),
    (numpy.zeros((1, 1, 4, 4), dtype=numpy.int32), {}, TypeError, "x with dtype int32"),
    (numpy.zeros((1, 1, 4, 4)), {"aggregate": "min"}, ValueError, "aggregate='min'"),
])
def test_bad_input_is_refused_with_a_clear_message(x, kwargs, error, words):
    with pytest.raises(error) as info:
        poolref.dynopool2d(x, numpy.array([2.0, 2.0]), **kwargs)
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------------
# numpy / cupy parity: on a GPU the fused CUDA kernels; in CI the same kernels run by the emulator of
# tests/kernels through the CuPy stand-in (tests/fake_cupy)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("aggregate", ["max", "avg"])
@pytest.mark.parametrize("alpha_on", ["host", "device"])
@pytest.mark.parametrize("layout", ["float64", "float32", "nonfinite", "unbatched", "empty"])
def test_numpy_and_cupy_agree(xp, aggregate, alpha_on, layout):
    from helpers import plant_nonfinite
    from poolref._backend import array_module, to_numpy

    x = random_values((2, 3, 9, 11), 41)
    x = {"float64": x, "float32": x.astype(numpy.float32), "nonfinite": plant_nonfinite(x, 42), "unbatched": x[0],
         "empty": x[:0]}[layout]
    alpha = numpy.array([1.7, 2.3])
    alpha_xp = alpha if alpha_on == "host" else xp.asarray(alpha)
    fn = lambda t, a: poolref.dynopool2d(t, a, aggregate=aggregate, return_size=True)  # noqa: E731
    (y, size), pullback = vjp(fn, x, alpha)
    (y_xp, size_xp), pullback_xp = vjp(fn, xp.asarray(x), alpha_xp)
    assert array_module(y_xp) is xp and array_module(size_xp) is array_module(alpha_xp)
    assert_matches(to_numpy(y_xp), y)  # the kernels round as the array code does: equal
    assert_matches(to_numpy(size_xp), size)
    g, g_size = random_values(y.shape, 43).astype(x.dtype), numpy.array([0.5, -0.25])
    grad_x, grad_alpha = pullback((g, g_size))
    grad_x_xp, grad_alpha_xp = pullback_xp((xp.asarray(g), array_module(alpha_xp).asarray(g_size)))
    assert array_module(grad_x_xp) is xp and array_module(grad_alpha_xp) is array_module(alpha_xp)
    # the kernels' atomics add in another order than the array code's sums
    rtol = 1e-12 if x.dtype == numpy.float64 else 1e-5
    assert_matches(to_numpy(grad_x_xp), grad_x, rtol=rtol, atol=rtol, what="gradient of x")
    assert_matches(to_numpy(grad_alpha_xp), grad_alpha, rtol=rtol * 1000, atol=rtol * 1000, what="gradient of alpha")


def test_dynopool_gives_a_host_alpha_a_host_gradient_for_a_device_x(cupy):
    # the tape converted alpha's gradient with the module of y's gradient: nn.DynOPool's alpha (on the
    # host) got a device gradient, and real CuPy refuses the implicit conversion that followed
    from poolref.nn import DynOPool

    x = random_values((2, 3, 8, 9), 44)
    on_device, on_host = DynOPool(init_alpha=(1.6, 2.2)), DynOPool(init_alpha=(1.6, 2.2))
    (on_device(poolref.Tensor(cupy.asarray(x))).sum() * 0.5).backward()
    (on_host(poolref.Tensor(x)).sum() * 0.5).backward()
    assert isinstance(on_device.alpha.data, numpy.ndarray) and isinstance(on_device.alpha.grad, numpy.ndarray)
    assert_matches(on_device.alpha.grad, on_host.alpha.grad, rtol=1e-9, atol=1e-12, what="gradient of alpha")


# --------------------------------------------------------------------------------------------------
# Absurd arguments are refused at once
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [(1e-300, 2.0), (1e-9, 1e-9)])
def test_an_alpha_that_asks_for_an_absurd_output_is_refused_before_allocating(alpha):
    # (1e-300, 2) raised numpy's "Maximum allowed size exceeded"; a tiny alpha ran out of memory
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"dynopool2d: alpha=\(1e-.*elements in the query points"):
        poolref.dynopool2d(numpy.zeros((1, 1, 6, 6)), numpy.array(alpha))
    assert time.perf_counter() - start < 1.0  # refused, not attempted


def test_a_huge_alpha_gives_a_one_pixel_output_without_overflow():
    # (1e300, 2) raised OverflowError (alpha**2 in the cell-size derivative)
    x = numpy.arange(36.0).reshape(1, 1, 6, 6)
    alpha = numpy.array([1e300, 2.0])
    y, pullback = vjp(lambda t, a: poolref.dynopool2d(t, a), x, alpha)
    assert y.shape == (1, 1, 1, 3)
    grad_x, grad_alpha = pullback(numpy.ones(y.shape))
    assert numpy.isfinite(grad_x).all() and numpy.isfinite(grad_alpha).all()


@pytest.mark.parametrize("length, alpha, error, words", [
    (6, 0.0, ValueError, "alpha must be a finite number > 0, got alpha=0.0"),  # was ZeroDivisionError
    (6, float("nan"), ValueError, "got alpha=nan"),  # was "cannot convert float NaN to integer"
    (6, -2.0, ValueError, "got alpha=-2.0"),  # returned 1
    (6, float("inf"), ValueError, "got alpha=inf"),
    (0, 2.0, ValueError, "length must be at least 1, got length=0"),  # returned 1
    (6.0, 2.0, TypeError, "length must be an int, got length=6.0"),
    (True, 2.0, TypeError, "got length=True"),
    (6, "2", TypeError, "alpha must be a real number, got alpha='2'"),
])
def test_dynopool_output_size_validates_its_arguments(length, alpha, error, words):
    from poolref.ops.dynopool import dynopool_output_size

    with pytest.raises(error, match=re.escape(words)):
        dynopool_output_size(length, alpha)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
@pytest.mark.parametrize("aggregate", ["max", "avg"])
@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nan-inf"])
def test_dynopool_in_blocks_of_one_plane_gives_the_bits_of_one_block(dtype, aggregate, nonfinite, monkeypatch):
    # the array code runs the planes in cache-sized blocks (poolref._backend.batch_blocks, a speed
    # trick): the output and the gradient to x must be the same bits whatever the blocks; the
    # gradient to alpha is a float64 sum over the planes, taken block by block, so it may differ in
    # its last bits only
    import poolref._backend

    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((3, 4, 9, 11)).astype(dtype)
    if nonfinite:
        x[0, 1, 2, 3], x[2, 0, 5, 5], x[1, 3, 0, 0] = numpy.nan, numpy.inf, -numpy.inf
    alpha = numpy.array([1.7, 2.6])
    g = rng.standard_normal(poolref.dynopool2d(x, alpha).shape).astype(dtype)
    results = []
    for block_bytes in (2**62, 1):
        with monkeypatch.context() as patch:
            patch.setattr(poolref._backend, "BLOCK_BYTES", block_bytes)
            for view in (x, x[:, :, ::-1, :], x[1]):  # batched, negative stride, unbatched
                y, pullback = vjp(lambda t, a: poolref.dynopool2d(t, a, aggregate=aggregate), view, alpha)
                results.append((y,) + pullback(g[1] if view.ndim == 3 else g))
    one_block, blocks_of_one = results[:3], results[3:]
    for (y, grad_x, grad_alpha), (y_want, grad_x_want, grad_alpha_want) in zip(blocks_of_one, one_block):
        assert_same_bits(y, y_want, "output")
        assert_same_bits(grad_x, grad_x_want, "gradient to x")
        numpy.testing.assert_allclose(grad_alpha, grad_alpha_want, rtol=1e-12, atol=0)
