"""The running max of every max-type op (poolref/_running_max.py): one rule per convention, followed
by every op, in its value, its index and where its gradient goes.

* the rules on worked windows (the table of docs/conventions.rst);
* RunningMax (every window at once) against window_max (the plain loop) for every rule;
* every max-type op against its rule on windows of NaN, +-inf, ties and signed zeros, with upstream
  gradients of 1, inf and NaN (which must stay at the winner);
* the loop references against the vectorised ops on special values, float16, unbatched and
  non-contiguous inputs, with NaN and inf in the upstream gradient.
"""


import numpy
import pytest

import poolref
import poolref.reference as ref
import poolref.reference.dynopool as dynopool_ref
from poolref._running_max import (
    FLT_MAX,
    JAX,
    ONNX,
    ONNX_MAX_ROI_POOL,
    TENSORFLOW,
    TENSORFLOW_ARGMAX,
    TORCH,
    TORCHVISION_ROI_POOL,
    RunningMax,
    window_max,
)
from poolref.autograd import vjp
from poolref.ops.fractional import fractional_max_pool2d, fractional_max_pool3d
from poolref.ops.stochastic import mixed_pool2d
from poolref.reference.stochastic import fractional_max_pool_reference

NAN, INF = numpy.nan, numpy.inf
RULES = [TORCH, ONNX, TENSORFLOW, TENSORFLOW_ARGMAX, JAX, TORCHVISION_ROI_POOL, ONNX_MAX_ROI_POOL]
LOWEST = float(numpy.finfo(numpy.float64).min)


def same(a, b) -> bool:
    """Equal as IEEE values are printed: NaN equals NaN, and the sign of a zero counts."""
    a, b = float(a), float(b)
    if numpy.isnan(a) or numpy.isnan(b):
        return numpy.isnan(a) and numpy.isnan(b)
    return a == b and numpy.signbit(a) == numpy.signbit(b)


# --------------------------------------------------------------------------------------------------
# The rules on worked windows: (window, then (value, winner) per rule in RULES order)
# --------------------------------------------------------------------------------------------------
WORKED = [
    #               torch        onnx         tensorflow          tf argmax    jax          tv roi_pool          ort MaxRoiPool
    ([2, 5, 5], [(5, 1), (5, 1), (5, 1), (5, 1), (5, 1), (5, 1), (5, 2)]),
    ([1, NAN, 3, NAN], [(NAN, 3), (3, 2), (3, 2), (3, 2), (NAN, 3), (3, 2), (NAN, 3)]),
    ([NAN, 1, 3], [(NAN, 0), (NAN, 0), (3, 2), (NAN, 0), (NAN, 2), (3, 2), (3, 2)]),
    ([3, NAN, 1], [(NAN, 1), (3, 0), (3, 0), (3, 0), (NAN, 2), (3, 0), (1, 2)]),
    ([-INF, -INF], [(-INF, 0), (-INF, 0), (LOWEST, None), (-INF, 0), (-INF, 0), (-FLT_MAX, None), (-FLT_MAX, None)]),
    ([NAN, NAN], [(NAN, 1), (NAN, 0), (LOWEST, None), (NAN, 0), (NAN, 1), (-FLT_MAX, None), (NAN, 1)]),
    ([-0.0, 0.0], [(-0.0, 0), (-0.0, 0), (-0.0, 0), (-0.0, 0), (0.0, 0), (-0.0, 0), (0.0, 1)]),
    ([0.0, -0.0], [(0.0, 0), (0.0, 0), (0.0, 0), (0.0, 0), (0.0, 0), (0.0, 0), (-0.0, 1)]),
    ([INF, INF, NAN], [(NAN, 2), (INF, 0), (INF, 0), (INF, 0), (NAN, 2), (INF, 0), (NAN, 2)]),
]


@pytest.mark.parametrize("window, expected", WORKED)
def test_each_rule_on_worked_windows(window, expected):
    taps = [(numpy.float64(v), key) for key, v in enumerate(window)]
    for rule, (value, winner) in zip(RULES, expected):
        got_value, got_winner = window_max(rule, taps)
        assert same(got_value, value) and got_winner == winner, (rule, window, (got_value, got_winner), (value, winner))


def test_jax_padding_competes_as_minus_infinity_and_a_padding_winner_sends_nothing():
    pad = (None, None)
    assert window_max(JAX, [pad, (numpy.float64(-INF), 0)]) == (-INF, None)  # the padding tap came first
    assert window_max(JAX, [(numpy.float64(-INF), 0), pad]) == (-INF, 0)
    value, winner = window_max(JAX, [(numpy.float64(NAN), 0), pad])  # the tap after a NaN is taken
    assert numpy.isnan(value) and winner is None
    # a window wholly in padding (lax.reduce_window allows it): -inf, and no gradient
    assert window_max(JAX, [pad, pad], numpy.float64) == (-INF, None)
    scan = RunningMax(JAX, (1,), numpy.float64, numpy, taps=2)
    for t in range(2):
        scan.add(numpy.array([-INF]), t)  # padding reads -inf
    assert scan.values(None).tolist() == [-INF] and scan.winner.tolist() == [0]  # tap 0: a padding tap
    # every other rule skips padding
    assert window_max(TORCH, [pad, (numpy.float64(-INF), 0)]) == (-INF, 0)


def test_the_floors_in_each_dtype():
    minus_inf = [(numpy.float16(-INF), 0)]
    assert window_max(TENSORFLOW, minus_inf, numpy.float16) == (numpy.float16(-65504.0), None)
    assert window_max(TORCHVISION_ROI_POOL, minus_inf, numpy.float16)[0] == -INF  # -FLT_MAX overflows float16
    assert window_max(TENSORFLOW, [(numpy.float32(-INF), 0)], numpy.float32)[0] == numpy.float32(-FLT_MAX)
    assert window_max(TORCH, [(numpy.int8(-128), 0), (numpy.int8(-128), 1)], numpy.int8) == (-128, 0)


# --------------------------------------------------------------------------------------------------
# RunningMax (every window at once, fast path included) against window_max (the plain loop)
# --------------------------------------------------------------------------------------------------
ALPHABET = numpy.array([NAN, -INF, -1.0, -0.0, 0.0, 1.0, 1.0, INF])


def random_windows(count, taps, seed, dtype=numpy.float64):
    rng = numpy.random.default_rng(seed)
    return ALPHABET[rng.integers(0, ALPHABET.size, (count, taps))].astype(dtype)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
def test_running_max_equals_the_plain_loop_for_every_rule(rule, dtype):
    windows = random_windows(400, 4, seed=5, dtype=dtype)  # (W, taps)
    scan = RunningMax(rule, (windows.shape[0],), dtype, numpy, taps=4, first_tap=0)
    for t in range(4):
        scan.add(windows[:, t], t)
    read = windows[numpy.arange(windows.shape[0]), numpy.maximum(scan.winner.astype(numpy.int64), 0)]
    values = scan.values(lambda: read)
    for w, window in enumerate(windows):
        value, winner = window_max(rule, [(v, key) for key, v in enumerate(window)], dtype)
        assert (-1 if winner is None else winner) == int(scan.winner[w]), (rule, window)
        assert same(values[w], value), (rule, window, values[w], value)
        assert values.dtype == dtype


# --------------------------------------------------------------------------------------------------
# Every max-type op follows its rule: value, where the gradient goes, upstream inf/NaN at the winner
# --------------------------------------------------------------------------------------------------
def _slots_2x2(lead=(0, 0)):
    return [lead + (a, b) for a in range(2) for b in range(2)]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


BOX = numpy.array([[0, 0, 0, 1, 1]], dtype=numpy.float64)
SAMPLES2 = numpy.zeros((1, 1, 2))
SAMPLES3 = numpy.zeros((1, 1, 3))

# name: (rule, input shape, the window's 4 slots in scan order, op, index of the window's output)
MAX_OPS = {
    "max_pool1d": (TORCH, (1, 1, 4), [(0, 0, i) for i in range(4)], lambda x: poolref.max_pool1d(x, 4), (0, 0, 0)),
    "max_pool1d onnx": (ONNX, (1, 1, 4), [(0, 0, i) for i in range(4)], lambda x: poolref.max_pool1d(x, 4, convention="onnx"), (0, 0, 0)),
    "max_pool1d tensorflow": (TENSORFLOW, (1, 1, 4), [(0, 0, i) for i in range(4)],
                              lambda x: poolref.max_pool1d(x, 4, convention="tensorflow"), (0, 0, 0)),
    "max_pool1d tensorflow argmax": (TENSORFLOW_ARGMAX, (1, 1, 4), [(0, 0, i) for i in range(4)],
                                     lambda x: poolref.max_pool1d(x, 4, convention="tensorflow", return_indices=True), (0, 0, 0)),
    "max_pool1d jax": (JAX, (1, 1, 4), [(0, 0, i) for i in range(4)], lambda x: poolref.max_pool1d(x, 4, convention="jax"), (0, 0, 0)),
    "max_pool2d": (TORCH, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.max_pool2d(x, 2, return_indices=True), (0, 0, 0, 0)),
    "max_pool2d tensorflow": (TENSORFLOW, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.max_pool2d(x, 2, convention="tensorflow"), (0, 0, 0, 0)),
    "max_pool2d jax": (JAX, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.max_pool2d(x, 2, convention="jax"), (0, 0, 0, 0)),
    "max_pool3d": (TORCH, (1, 1, 1, 2, 2), _slots_2x2((0, 0, 0)), lambda x: poolref.max_pool3d(x, (1, 2, 2)), (0, 0, 0, 0, 0)),
    "max_pool3d onnx": (ONNX, (1, 1, 1, 2, 2), _slots_2x2((0, 0, 0)), lambda x: poolref.max_pool3d(x, (1, 2, 2), convention="onnx"), (0, 0, 0, 0, 0)),
    "adaptive_max_pool1d": (TORCH, (1, 1, 4), [(0, 0, i) for i in range(4)], lambda x: poolref.adaptive_max_pool1d(x, 1), (0, 0, 0)),
    "adaptive_max_pool2d": (TORCH, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.adaptive_max_pool2d(x, 1, return_indices=True), (0, 0, 0, 0)),
    "adaptive_max_pool3d": (TORCH, (1, 1, 1, 2, 2), _slots_2x2((0, 0, 0)), lambda x: poolref.adaptive_max_pool3d(x, 1), (0, 0, 0, 0, 0)),
    "global_max_pool": (TORCH, (1, 1, 2, 2), _slots_2x2(), poolref.global_max_pool, (0, 0, 0, 0)),
    "fractional_max_pool2d": (TORCH, (1, 1, 2, 2), _slots_2x2(),
                              lambda x: fractional_max_pool2d(x, 2, output_size=1, random_samples=SAMPLES2), (0, 0, 0, 0)),
    "fractional_max_pool3d": (TORCH, (1, 1, 2, 3, 3), [(0, 0, 1, 1 + a, 1 + b) for a in range(2) for b in range(2)],
                              lambda x: fractional_max_pool3d(x, (1, 2, 2), output_size=1, random_samples=SAMPLES3), (0, 0, 0, 0, 0)),
    "spatial_pyramid_pool2d max": (TORCH, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.spatial_pyramid_pool2d(x, (1,)), (0, 0)),
    "mixed_pool2d lam=1": (TORCH, (1, 1, 2, 2), _slots_2x2(), lambda x: mixed_pool2d(x, 2, lam=1.0), (0, 0, 0, 0)),
    "dynopool2d alpha=2": (TORCH, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.dynopool2d(x, numpy.array([2.0, 2.0])), (0, 0, 0, 0)),
    "roi_pool torchvision": (TORCHVISION_ROI_POOL, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.roi_pool(x, BOX, 1), (0, 0, 0, 0)),
    "roi_pool onnx": (ONNX_MAX_ROI_POOL, (1, 1, 2, 2), _slots_2x2(), lambda x: poolref.roi_pool(x, BOX, 1, convention="onnx"), (0, 0, 0, 0)),
}

CURATED = [window + [1.0] * (4 - len(window)) for window, _ in WORKED] + [
    [NAN, NAN, NAN, NAN], [-INF] * 4, [-0.0] * 4, [0.0, -0.0, 0.0, -0.0], [-0.0, -1.0, 0.0, NAN],
    [INF, NAN, INF, 1.0], [1.0, 1.0, 1.0, 1.0], [-INF, NAN, -INF, NAN],
]
WINDOWS = CURATED + [list(w) for w in random_windows(30, 4, seed=11)]


@pytest.mark.parametrize("name", list(MAX_OPS))
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_every_max_op_follows_its_rule_in_value_and_gradient(name, dtype):
    rule, shape, slots, op, out_index = MAX_OPS[name]
    for window in WINDOWS:
        x = numpy.full(shape, 7.0, dtype=dtype)  # 7 outside the window: it must never be read
        for slot, v in zip(slots, window):
            x[slot] = v
        value, winner = window_max(rule, [(dtype(v), key) for key, v in enumerate(window)], dtype)
        out, pull = vjp(lambda t: op(t), x)
        y = _first(out)
        assert same(y[out_index], value), (name, window, y[out_index], value)
        for upstream in (1.0, INF, NAN):
            g = numpy.zeros(y.shape, dtype=dtype)
            g[out_index] = upstream
            grad = pull(g)[0]
            want = numpy.zeros(shape, dtype=dtype)
            if winner is not None:
                want[slots[winner]] = upstream
            numpy.testing.assert_array_equal(grad, want, err_msg=f"{name} {window} upstream {upstream}")


def test_onnx_max_roi_align_keeps_an_infinite_upstream_gradient_at_its_chosen_corner():
    # one sample per bin, lying on pixel (r, c) with weight 1; its other corners have weight 0 and so
    # read 0 (NaN for an infinity): the bin is max(x[r, c], 0) under the "onnx" rule (first of ties)
    def bin_of(value):
        x = numpy.full((1, 1, 3, 3), 5.0)
        x[0, 0, 1, 1] = value
        box = numpy.array([[0, 1.0, 1.0, 2.0, 2.0]])  # aligned: the single sample sits at (1, 1)
        y, pull = vjp(lambda t: poolref.roi_align(t, box, 1, 1.0, 1, True, mode="max", convention="onnx"), x)
        return y[0, 0, 0, 0], pull(numpy.full(y.shape, INF))[0]

    value, grad = bin_of(NAN)  # a NaN first corner is kept (nothing is greater than NaN)
    assert numpy.isnan(value) and grad[0, 0, 1, 1] == INF and numpy.count_nonzero(grad) == 1
    value, grad = bin_of(-3.0)  # -3 < 0 * 5: the weight-0 corner (1, 2) wins with +0
    assert same(value, 0.0)
    # its gradient is its weight times g, 0 * inf = NaN, at that corner and nowhere else
    assert numpy.isnan(grad[0, 0, 1, 2]) and numpy.count_nonzero(grad) == 1


# --------------------------------------------------------------------------------------------------
# Loop references = vectorised ops on special values, float16, unbatched, non-contiguous inputs
# --------------------------------------------------------------------------------------------------
def special_values(shape, dtype, seed):
    """Small integers (many ties) with NaN, +-inf and both zeros planted."""
    rng = numpy.random.default_rng(seed)
    x = (rng.integers(-3, 4, shape) * 0.5).astype(dtype)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 8), replace=False)
    for index, value in zip(picks, [NAN, INF, -INF, -0.0, 0.0, NAN, -INF, -0.0]):
        flat[index] = value
    return x


def special_upstream(shape, dtype, seed):
    g = numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if g.size >= 3:
        g.reshape(-1)[[0, g.size // 2, g.size - 1]] = [INF, NAN, -INF]
    return g


def views(x, kind):
    """The same values as ``x`` in a non-contiguous layout (or ``x`` itself)."""
    if kind == "reversed":
        return numpy.flip(numpy.flip(x, -1).copy(), -1)  # negative strides, same values
    if kind == "transposed":
        return numpy.swapaxes(numpy.swapaxes(x, -1, -2).copy(), -1, -2)
    return x


def assert_same_values(got, want):
    numpy.testing.assert_array_equal(got, want)  # NaN where NaN
    numpy.testing.assert_array_equal(numpy.signbit(got), numpy.signbit(want))


MAX_POOL_CASES = [
    # (spatial, kwargs)
    ((7,), dict(kernel_size=3, stride=2, padding=1)),
    ((6, 5), dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2))),
    ((5, 6), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ((3, 4, 5), dict(kernel_size=2, stride=(1, 2, 2), padding=1)),
]


def _valid(convention, kwargs) -> bool:
    """TensorFlow and JAX have no ceil mode; TensorFlow's explicit pads are symmetric here."""
    if convention in ("tensorflow", "jax") and kwargs.get("ceil_mode"):
        return False
    return convention != "tensorflow" or isinstance(kwargs.get("padding", 0), int)


CONVENTION_CASES = [
    (spatial, kwargs, convention, return_indices)
    for spatial, kwargs in MAX_POOL_CASES
    for convention, return_indices in [("torch", True), ("onnx", True), ("tensorflow", False), ("tensorflow", True),
                                       ("jax", False)]
    if _valid(convention, kwargs)
]


@pytest.mark.parametrize("spatial, kwargs, convention, return_indices", CONVENTION_CASES)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
@pytest.mark.parametrize("layout", ["batched", "unbatched", "reversed", "transposed"])
def test_max_pool_reference_equals_the_op_on_special_values(spatial, kwargs, convention, return_indices, dtype, layout):
    n = len(spatial)
    x = special_values((2, 3) + spatial, dtype, seed=len(spatial))
    op = getattr(poolref, f"max_pool{n}d")
    kw = dict(kwargs, convention=convention, return_indices=return_indices)
    rule = {"torch": TORCH, "onnx": ONNX, "jax": JAX, "tensorflow": TENSORFLOW_ARGMAX if return_indices else TENSORFLOW}[convention]
    want_y, want_i = ref.max_pool_reference(x, *resolve(spatial, kw), rule=rule)
    given = x[0] if layout == "unbatched" else views(x, layout)
    out, pull = vjp(lambda t: op(t, **kw), given)
    y = _first(out)
    want_y, want_i = (want_y[0], want_i[0]) if layout == "unbatched" else (want_y, want_i)
    assert_same_values(y, want_y)
    if return_indices:
        numpy.testing.assert_array_equal(out[1], want_i)
    g = special_upstream(y.shape, dtype, seed=3)
    grad = pull(g)[0]
    want_grad = ref.max_pool_backward_reference(g[None] if layout == "unbatched" else g,
                                                want_i[None] if layout == "unbatched" else want_i,
                                                (1,) * (layout == "unbatched") + given.shape)
    want_grad = want_grad[0] if layout == "unbatched" else want_grad
    numpy.testing.assert_allclose(grad, want_grad, rtol=1e-3 if dtype == numpy.float16 else 1e-6)  # inf, NaN where they are


def resolve(spatial, kwargs):
    from helpers import resolved

    return resolved(spatial, kwargs)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
@pytest.mark.parametrize("spatial, output_size", [((7,), (3,)), ((5, 6), (3, 4)), ((3, 4, 5), (2, 3, 2))])
@pytest.mark.parametrize("layout", ["batched", "unbatched", "reversed"])
def test_adaptive_max_reference_equals_the_op_on_special_values(dtype, spatial, output_size, layout):
    n = len(spatial)
    x = special_values((2, 2) + spatial, dtype, seed=7)
    want_y, want_i = ref.adaptive_max_pool_reference(x, output_size)
    given = x[0] if layout == "unbatched" else views(x, layout)
    (y, i), pull = vjp(lambda t: getattr(poolref, f"adaptive_max_pool{n}d")(t, output_size, return_indices=True), given)
    if layout == "unbatched":
        want_y, want_i = want_y[0], want_i[0]
    assert_same_values(y, want_y)
    numpy.testing.assert_array_equal(i, want_i)
    g = special_upstream(y.shape, dtype, seed=2)
    grad = pull(g)[0]
    want = ref.adaptive_max_pool_backward_reference(g.reshape(want_i.shape) if layout != "unbatched" else g[None],
                                                    want_i if layout != "unbatched" else want_i[None],
                                                    x.shape if layout != "unbatched" else (1,) + given.shape)
    numpy.testing.assert_allclose(grad, want if layout != "unbatched" else want[0], rtol=1e-3 if dtype == numpy.float16 else 1e-6)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
@pytest.mark.parametrize("n, spatial, kernel, output_size", [(2, (7, 6), (2, 3), (4, 3)), (3, (5, 6, 7), (2, 2, 3), (3, 3, 4))])
@pytest.mark.parametrize("layout", ["batched", "reversed"])
def test_fractional_max_reference_equals_the_op_on_special_values(dtype, n, spatial, kernel, output_size, layout):
    x = special_values((2, 2) + spatial, dtype, seed=13)
    samples = numpy.random.default_rng(4).random((2, 2, n)).astype(dtype)
    want_y, want_i = fractional_max_pool_reference(x, kernel, output_size, samples)
    op = fractional_max_pool2d if n == 2 else fractional_max_pool3d
    (y, i), pull = vjp(lambda t: op(t, kernel, output_size=output_size, return_indices=True, random_samples=samples), views(x, layout))
    assert_same_values(y, want_y)
    numpy.testing.assert_array_equal(i, want_i)
    g = special_upstream(y.shape, dtype, seed=5)
    numpy.testing.assert_allclose(pull(g)[0], ref.max_pool_backward_reference(g, want_i, x.shape),
                                  rtol=1e-3 if dtype == numpy.float16 else 1e-6)


@pytest.mark.parametrize("convention", ["torchvision", "onnx"])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
def test_roi_pool_reference_equals_the_op_on_special_values(convention, dtype):
    x = special_values((2, 3, 6, 7), dtype, seed=17)
    x[1, :, 1:4, 2:5] = -INF  # a bin of only -inf
    boxes = numpy.array([[0, 0, 0, 6, 5], [1, 2, 1, 4, 3], [1, 0.4, 1.6, 3.5, 2.5], [0, 5, 4, 2, 1]], dtype=numpy.float64)
    want_y, argmax = ref.region.roi_pool_reference(x, boxes, (2, 3), convention=convention)
    y, pull = vjp(lambda t: poolref.roi_pool(t, boxes, (2, 3), convention=convention), views(x, "reversed"))
    assert_same_values(y, want_y.astype(dtype))
    g = special_upstream(y.shape, dtype, seed=1)
    want = ref.region.roi_pool_backward_reference(g, argmax, boxes, x.shape)
    numpy.testing.assert_allclose(pull(g)[0], want, rtol=1e-3 if dtype == numpy.float16 else 1e-6)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("aligned", [True, False])
def test_onnx_max_roi_align_reference_equals_the_op_on_special_values(dtype, aligned):
    x = special_values((2, 3, 6, 7), dtype, seed=29)
    boxes = numpy.array([[0, 0.5, 0.5, 5.0, 4.0], [1, 1.0, 1.0, 3.0, 3.0], [1, -1.0, 2.0, 8.0, 7.0]], dtype=dtype)
    kw = dict(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=aligned, mode="max")
    y, pull = vjp(lambda t: poolref.roi_align(t, boxes, convention="onnx", **kw), views(x, "reversed"))
    want = ref.region.roi_align_reference(x, boxes, **kw)
    numpy.testing.assert_allclose(y, want, rtol=1e-6 if dtype == numpy.float32 else 1e-12)  # NaN where NaN
    g = special_upstream(y.shape, dtype, seed=4)
    numpy.testing.assert_allclose(pull(g)[0], ref.region.roi_align_backward_reference(g, x, boxes, **kw),
                                  rtol=1e-6 if dtype == numpy.float32 else 1e-12)


@pytest.mark.parametrize("alpha", [(2.0, 2.0), (1.7, 2.6), (3.75, 1.0), (0.7, 1.3)])
@pytest.mark.parametrize("aggregate", ["max", "avg"])
def test_dynopool_reference_equals_the_op_on_special_values(alpha, aggregate):
    x = special_values((2, 2, 6, 5), numpy.float64, seed=19)
    alpha = numpy.array(alpha)
    (y, size), pull = vjp(lambda t, a: poolref.dynopool2d(t, a, aggregate=aggregate, return_size=True), views(x, "transposed"), alpha)
    assert_same_values(y, dynopool_ref.dynopool_reference(x, alpha, aggregate))
    g = special_upstream(y.shape, numpy.float64, seed=9)
    grad_x, grad_alpha = pull((g, numpy.zeros(2)))
    want_x, want_alpha = dynopool_ref.dynopool_backward_reference(g, x, alpha, aggregate)
    numpy.testing.assert_allclose(grad_x, want_x, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(grad_alpha, want_alpha, rtol=1e-9, atol=1e-9)


def test_inputs_and_upstream_gradients_are_never_modified():
    x = special_values((2, 2, 6, 6), numpy.float64, seed=23)
    keep = x.copy()
    for op in (lambda t: poolref.max_pool2d(t, 3, 2, 1, convention="jax"), lambda t: poolref.adaptive_max_pool2d(t, 4),
               lambda t: poolref.dynopool2d(t, numpy.array([1.5, 2.5]))):
        y, pull = vjp(op, x)
        g = special_upstream(y.shape, numpy.float64, seed=0)
        g_keep = g.copy()
        pull(g)
        numpy.testing.assert_array_equal(g, g_keep)
    numpy.testing.assert_array_equal(x, keep)
    assert numpy.array_equal(numpy.signbit(x), numpy.signbit(keep))


# --------------------------------------------------------------------------------------------------
# Against the frameworks whose rules are modelled (each skips cleanly where its framework is missing)
# --------------------------------------------------------------------------------------------------
def framework_inputs(shape, dtype, seed, nan=True):
    """special_values, plus a window of only -inf and one of only NaN in the first plane's corner."""
    x = special_values(shape, dtype, seed)
    if not nan:
        x[numpy.isnan(x)] = 1.5
    corner = (0, 0) + (slice(0, 3),) * (len(shape) - 2)
    x[corner] = -INF
    if nan:
        x[(0, 1) + (slice(0, 3),) * (len(shape) - 2)] = NAN
    return x


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_torch_max_pooling_rules_on_special_values(n, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = framework_inputs((2, 2) + (6,) * n, dtype, seed=n)
    g = special_upstream((2, 2) + (3,) * n, dtype, seed=n)
    cases = [
        (lambda t: getattr(poolref, f"max_pool{n}d")(t, 2, return_indices=True),
         lambda t: getattr(F, f"max_pool{n}d")(t, 2, return_indices=True)),
        (lambda t: getattr(poolref, f"max_pool{n}d")(t, 3, 2, 1, return_indices=True),
         lambda t: getattr(F, f"max_pool{n}d")(t, 3, 2, 1, return_indices=True)),
        (lambda t: getattr(poolref, f"adaptive_max_pool{n}d")(t, 3, return_indices=True),
         lambda t: getattr(F, f"adaptive_max_pool{n}d")(t, 3, return_indices=True)),
    ]
    if n > 1:
        samples = numpy.random.default_rng(2).random((2, 2, n))
        frac = fractional_max_pool2d if n == 2 else fractional_max_pool3d
        tfrac = F.fractional_max_pool2d if n == 2 else F.fractional_max_pool3d
        cases.append((lambda t: frac(t, 2, output_size=3, return_indices=True, random_samples=samples.astype(dtype)),
                      lambda t: tfrac(t, 2, output_size=3, return_indices=True, _random_samples=torch.tensor(samples, dtype=t.dtype))))
    for ours, theirs in cases:
        (y, i), pull = vjp(ours, x)
        xt = torch.tensor(x, requires_grad=True)
        yt, it = theirs(xt)
        assert_same_values(y, yt.detach().numpy())
        numpy.testing.assert_array_equal(i, it.numpy())
        yt.backward(torch.tensor(g))
        numpy.testing.assert_allclose(pull(g)[0], xt.grad.numpy(), rtol=1e-6)  # inf and NaN stay at the argmax


def _tf():
    tf = pytest.importorskip("tensorflow")
    return tf


def _nhwc(x):
    return numpy.ascontiguousarray(numpy.moveaxis(x, 1, -1))


def _nchw(y):
    return numpy.moveaxis(numpy.asarray(y), -1, 1)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_tensorflow_max_pool_values_ignore_nan_and_floor_at_the_lowest_finite_value(n, padding):
    tf = _tf()
    dtypes = (numpy.float32,) if n == 3 else (numpy.float32, numpy.float64, numpy.float16)  # MaxPool3D: float32 on CPU
    for dtype in dtypes:
        x = framework_inputs((2, 3) + (7,) * n, dtype, seed=n)
        theirs = getattr(tf.nn, f"max_pool{n}d")(tf.constant(_nhwc(x)), 3, 2, padding)
        ours = getattr(poolref, f"max_pool{n}d")(x, 3, 2, padding.lower(), convention="tensorflow")
        assert_same_values(ours, _nchw(theirs))
        assert (ours == numpy.finfo(dtype).min).any() and not numpy.isnan(ours).any()  # the floor, no NaN


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_tensorflow_return_indices_is_max_pool_with_argmax_values_indices_and_gradient(padding, dtype):
    tf = _tf()
    x = framework_inputs((2, 3, 7, 6), dtype, seed=4)
    xt = tf.constant(_nhwc(x))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y, argmax = tf.nn.max_pool_with_argmax(xt, 3, 2, padding, include_batch_in_index=False)
    g = special_upstream(_nchw(y).shape, dtype, seed=6)
    grad_tf = _nchw(tape.gradient(y, xt, output_gradients=tf.constant(_nhwc(g))))
    (ours, indices), pull = vjp(lambda t: poolref.max_pool2d(t, 3, 2, padding.lower(), convention="tensorflow", return_indices=True), x)
    assert_same_values(ours, _nchw(y))  # NaN first in its window stays, -inf windows stay -inf
    numpy.testing.assert_array_equal(indices, _nchw(argmax) // x.shape[1])  # (h*W + w)*C + c
    numpy.testing.assert_allclose(pull(g)[0], grad_tf, rtol=1e-6)  # MaxPoolGradWithArgmax: the scatter


def test_tensorflow_max_pool_gradient_agrees_where_tensorflow_routes_to_the_element_it_output():
    # TF's MaxPoolGrad routes by max_pool_with_argmax's rule; where the window holds no NaN and is not
    # all -inf that is the element max_pool output, and poolref agrees (ties, +-inf, signed zeros)
    tf = _tf()
    x = framework_inputs((2, 3, 8, 8), numpy.float64, seed=8, nan=False)
    x[0, 0, :2, :2] = 2.0  # no all--inf window: a tie instead
    xt = tf.constant(_nhwc(x))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.nn.max_pool2d(xt, 2, 2, "VALID")
    g = special_upstream(_nchw(y).shape, numpy.float64, seed=2)
    grad_tf = _nchw(tape.gradient(y, xt, output_gradients=tf.constant(_nhwc(g))))
    ours, pull = vjp(lambda t: poolref.max_pool2d(t, 2, convention="tensorflow"), x)
    assert_same_values(ours, _nchw(y))
    numpy.testing.assert_allclose(pull(g)[0], grad_tf, rtol=1e-12)


def test_tensorflow_max_pool_gradient_defects_that_poolref_does_not_copy():
    # 1-D/2-D: MaxPoolGrad routes by max_pool_with_argmax, so a window [NaN, 1] outputs 1 but sends
    # its gradient to the NaN, and a window of only -inf (output: the constant -FLT_MAX) to its first
    # element. 3-D: MaxPool3DGrad sends it to every element within 1e-5 of the maximum.
    tf = _tf()

    def tf_grad(pool, values, shape):
        xt = tf.constant(numpy.array(values, dtype=numpy.float32).reshape(shape))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = pool(xt)
        return tape.gradient(y, xt).numpy().ravel()

    two_d = lambda t: tf.nn.max_pool2d(t, (1, 2), (1, 2), "VALID")  # noqa: E731
    three_d = lambda t: tf.nn.max_pool3d(t, (1, 1, 2), (1, 1, 2), "VALID")  # noqa: E731
    assert tf_grad(two_d, [NAN, 1.0], (1, 1, 2, 1)).tolist() == [1.0, 0.0]
    assert tf_grad(two_d, [-INF, -INF], (1, 1, 2, 1)).tolist() == [1.0, 0.0]
    assert tf_grad(three_d, [1.0, 1.000005], (1, 1, 1, 2, 1)).tolist() == [1.0, 1.0]
    assert tf_grad(three_d, [2.0, 2.0], (1, 1, 1, 2, 1)).tolist() == [1.0, 1.0]
    ours = lambda values, n: vjp(lambda t: getattr(poolref, f"max_pool{n}d")(t, (1,) * (n - 1) + (2,), convention="tensorflow"),  # noqa: E731
                                 numpy.array(values, dtype=numpy.float32).reshape((1, 1) + (1,) * (n - 1) + (2,)))[1]
    grad = lambda values, n: ours(values, n)(numpy.ones((1, 1) + (1,) * n, dtype=numpy.float32))[0].ravel().tolist()  # noqa: E731
    assert grad([NAN, 1.0], 2) == [0.0, 1.0]  # the true derivative: the output is x[1]
    assert grad([-INF, -INF], 2) == [0.0, 0.0]  # the output is a constant
    assert grad([1.0, 1.000005], 3) == [0.0, 1.0]  # the maximum alone
    assert grad([2.0, 2.0], 3) == [1.0, 0.0]  # the first of ties


def _ort_max_pool(x, kernel, strides, pads, dilations, with_indices):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    types = {numpy.dtype(numpy.float32): TensorProto.FLOAT, numpy.dtype(numpy.float64): TensorProto.DOUBLE,
             numpy.dtype(numpy.float16): TensorProto.FLOAT16}
    outputs = ["Y", "I"] if with_indices else ["Y"]
    node = helper.make_node("MaxPool", ["X"], outputs, kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations)
    out_info = [helper.make_tensor_value_info("Y", types[x.dtype], None)]
    if with_indices:
        out_info.append(helper.make_tensor_value_info("I", TensorProto.INT64, None))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", types[x.dtype], list(x.shape))], out_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.float16])
def test_onnxruntime_max_pool_with_indices_keeps_a_nan_only_when_first(n, dtype):
    x = framework_inputs((2, 3) + (7,) * n, dtype, seed=10 + n)
    kernel, strides, dilations = [3] * n, [2] * n, [1] * (n - 1) + [2]
    pads = [1] * n + [0] * (n - 1) + [1]
    y, i = _ort_max_pool(x, kernel, strides, pads, dilations, with_indices=True)
    padding = tuple((1, 0 if a < n - 1 else 1) for a in range(n))
    ours, indices = getattr(poolref, f"max_pool{n}d")(x, 3, 2, padding, dilations, return_indices=True, convention="onnx")
    assert_same_values(ours, y)
    plane = math_prod(x.shape[2:])
    numpy.testing.assert_array_equal(indices, i % plane)  # ONNX flattens the whole N, C, .. tensor
    if dtype == numpy.float64:  # without Indices, float64 runs the same code (float32/16: MLAS, see the docs)
        assert_same_values(_ort_max_pool(x, kernel, strides, pads, dilations, with_indices=False)[0], ours)


def math_prod(values):
    out = 1
    for v in values:
        out *= v
    return out


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 1, 1), (3, 2, ((1, 0), (2, 1)))])
def test_jax_reduce_window_max_values_and_gradient(n, kernel, stride, padding):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    pads = [(padding, padding)] * n if isinstance(padding, int) else list(padding)[:n]
    x = framework_inputs((2, 3) + (7,) * n, numpy.float64, seed=20 + n)
    window = (1, 1) + (kernel,) * n
    strides = (1, 1) + (stride,) * n

    def theirs(t):
        return lax.reduce_window(t, -jnp.inf, lax.max, window, strides, [(0, 0), (0, 0)] + pads)

    y, pull_jax = jax.vjp(theirs, jnp.asarray(x))
    ours, pull = vjp(lambda t: getattr(poolref, f"max_pool{n}d")(t, kernel, stride, tuple(pads), convention="jax"), x)
    assert_same_values(ours, numpy.asarray(y))  # NaN propagates, +0 above -0
    g = special_upstream(ours.shape, numpy.float64, seed=n)
    numpy.testing.assert_allclose(pull(g)[0], numpy.asarray(pull_jax(jnp.asarray(g))[0]), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Gradients of every convention: gradcheck (float64) and the dot-product test, on distinct values
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("convention, return_indices", [("torch", False), ("onnx", True), ("tensorflow", False),
                                                        ("tensorflow", True), ("jax", False)])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_gradcheck_and_adjoint_of_max_pool_under_every_convention(convention, return_indices, n):
    from poolref.autograd import adjoint_test, gradcheck

    # distinct, well-separated values (no argmax flips under central differences), windows in padding
    x = numpy.random.default_rng(n).permutation(2 * 2 * 5**n).reshape((2, 2) + (5,) * n) / 4.0
    fn = lambda t: _first(getattr(poolref, f"max_pool{n}d")(t, 3, 2, 1, convention=convention,  # noqa: E731
                                                             return_indices=return_indices))
    assert gradcheck(fn, x, rtol=1e-6)
    assert adjoint_test(fn, x)
