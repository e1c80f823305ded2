"""The JAX adapter: every mapping passes, a planted bug is caught, and the differences the adapter
declares (and the atlas shows) are what JAX really does."""

import math

import numpy
import pytest

import poolref
from poolref import oracle

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402


def test_every_jax_mapping_passes():
    report = oracle.check("jax", cases=1, seed=4)
    assert report.passed, report.table()
    assert {"jax.lax.reduce_window(lax.max, -inf)", "jax.image.resize",
            "jax.scipy.ndimage.map_coordinates", "jax.lax.conv_general_dilated (+ bias)"} <= {r.call for r in report.results}


def test_a_planted_bug_in_reduce_window_is_caught(monkeypatch):
    real = lax.reduce_window

    def reduce_window(operand, init_value, computation, *args, **kwargs):
        result = real(operand, init_value, computation, *args, **kwargs)
        return result * 1.001 if computation is lax.add else result  # every window sum a little off

    monkeypatch.setattr(lax, "reduce_window", reduce_window)
    report = oracle.check("jax", ops=["avg_pool1d"], cases=2)
    failed = {r.call for r in report.results if r.failures}
    assert "jax.lax.reduce_window(lax.add) / count" in failed
    failure = next(r for r in report.results if r.failures).failures[0]
    with pytest.raises(AssertionError, match="output"):
        exec(compile(failure.reproducer, "<reproducer>", "exec"), {})


# --------------------------------------------------------------------------------------------------
# What JAX does, as the adapter declares it (JAX 0.10)
# --------------------------------------------------------------------------------------------------
def test_max_pooling_propagates_nan_but_its_gradient_lands_on_a_finite_element():
    x = numpy.array([[[[1.0, numpy.nan, 3.0], [numpy.nan, 2.0, 0.0]]]])
    with jax.enable_x64(True):
        y, pullback = jax.vjp(lambda t: lax.reduce_window(t, -jnp.inf, lax.max, (1, 1, 2, 3), (1, 1, 1, 1), "VALID"), jnp.asarray(x))
        (grad,) = pullback(jnp.ones_like(y))
    assert numpy.isnan(numpy.asarray(y)).all()
    assert numpy.asarray(grad)[0, 0].tolist() == [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # the 2.0, not a NaN
    _, pullback = poolref.vjp(lambda t: poolref.max_pool2d(t, (2, 3)), x)
    assert pullback(numpy.ones((1, 1, 1, 1)))[0][0, 0].tolist() == [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # the last NaN


def test_resize_antialiases_by_default_when_downsampling():
    x = (numpy.arange(8.0) ** 2).reshape(1, 1, 8)
    with jax.enable_x64(True):
        default = numpy.asarray(jax.image.resize(jnp.asarray(x), (1, 1, 3), "linear"))
        plain = numpy.asarray(jax.image.resize(jnp.asarray(x), (1, 1, 3), "linear", antialias=False))
    ours = poolref.interpolate(x, size=3, mode="linear", align_corners=False)
    numpy.testing.assert_allclose(plain, ours, rtol=1e-12)
    assert numpy.abs(default - ours).max() > 1.0


def test_every_mapping_has_a_reproducer_that_runs(reproducers_run):
    assert reproducers_run("jax") == len(oracle.load_adapter("jax").MAPPINGS)


# --------------------------------------------------------------------------------------------------
# The ops JAX lacks, checked against compositions of jnp, lax and map_coordinates
# --------------------------------------------------------------------------------------------------
from conftest import assert_agrees_but_for_poolref_defects, assert_every_public_op_is_a_row  # noqa: E402

JAX_COMPOSED = ["stochastic_pool2d", "mixed_pool2d", "gem_pool", "soft_pool2d", "lse_pool", "bilinear_pool", "dynopool2d"]


def test_every_public_op_is_checked_or_says_why():
    assert_every_public_op_is_a_row("jax")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # poolref's own warnings on non-finite input (conftest)
def test_the_compositions_agree_with_poolref_but_for_its_listed_defects():
    report = oracle.check("jax", ops=JAX_COMPOSED, cases=3, seed=1)  # every case compiles: few of them
    assert [r.op for r in report.results] == JAX_COMPOSED and {r.kind for r in report.results} == {"composition"}
    assert_agrees_but_for_poolref_defects(report)


def test_a_default_run_gives_the_compositions_fewer_cases():
    adapter = oracle.load_adapter("jax")
    composed = [m for m in adapter.MAPPINGS if m.kind == "composition"]
    assert composed and all(m.cases == adapter.COMPOSITION_CASES < adapter.DEFAULT_CASES for m in composed)


def test_every_composition_has_a_reproducer_that_runs(reproducers_run):
    composed = [m for m in oracle.load_adapter("jax").MAPPINGS if m.kind == "composition"]
    assert composed and reproducers_run("jax", kind="composition") == len(composed)


def test_jnp_max_of_tied_zeros_is_minus_zero_only_when_all_are():
    # JAX_REDUCE_MAX's model: +0 of tied zeros unless every one is -0 (it gave +0 always; seed 16)
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_REDUCE_MAX
    from poolref.oracle.engine import run_poolref

    for values in ([-1.0, -0.0, 0.0], [-0.0, -0.0], [0.0, -0.0], [-0.0, -1.0]):
        x = numpy.array(values).reshape(1, 1, 1, -1)
        want = numpy.asarray(jax.jit(lambda t: jnp.max(t, axis=(2, 3), keepdims=True))(x))
        case = Case("global_max_pool", {"x": x}, {})
        ours, g = run_poolref(case)
        got = JAX_REDUCE_MAX.model(case, ours, g).values
        assert got.item() == want.item() and numpy.signbit(got).item() == numpy.signbit(want).item(), values
    assert oracle.check("jax", ops=["global_max_pool"], cases=40, seed=16).passed


def test_jitted_reduce_window_gradient_reaches_an_element_its_window_never_reads():
    # JAX_REDUCE_WINDOW_LENGTH_ONE: an axis of length 1, window 2 with dilation 2 in 'same' padding

    def window_sum(t):
        return lax.reduce_window(t, 0.0, lax.add, window_dimensions=(1, 2, 1), window_strides=(1, 1, 2),
                                 padding="SAME", window_dilation=(1, 2, 1))

    x = jax.numpy.asarray(numpy.array([[[-0.68]]], dtype=numpy.float32))
    upstream = jax.numpy.asarray(numpy.array([[[-1.8]]], dtype=numpy.float32))
    eager = jax.vjp(window_sum, x)[1](upstream)[0]
    jitted = jax.jit(lambda t, c: jax.vjp(window_sum, t)[1](c)[0])(x, upstream)
    assert float(eager.ravel()[0]) == 0.0 and float(jitted.ravel()[0]) == numpy.float32(-1.8)
    assert oracle.check("jax", ops=["avg_pool2d"], cases=40, seed=16).passed


def test_the_conv_abort_defect_covers_float64_without_groups():
    # seed 21: jax.vjp of conv_general_dilated aborted the worker on a float64 case with one group
    # (XLA's algebraic simplifier); the defect now names every strided case, dilated or not (an abort is
    # all it excuses: a case that runs is still compared)
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_CONV_ABORT

    x, w = numpy.zeros((1, 1, 7, 6)), numpy.zeros((1, 1, 3, 2))
    case = Case("conv2d", {"x": x, "weight": w}, dict(stride=(2, 2), padding=(0, 1), dilation=(2, 1)), positional=("x", "weight"))
    assert JAX_CONV_ABORT.applies(case) and JAX_CONV_ABORT.affects == ("abort",)
    assert JAX_CONV_ABORT.applies(case.replace(kwargs=dict(stride=(1, 2), padding=(0, 1))))  # strides alone abort too
    assert not JAX_CONV_ABORT.applies(case.replace(kwargs=dict(stride=1, padding=(0, 1), dilation=(2, 1))))


# --------------------------------------------------------------------------------------------------
# The adapter's reasons and the known defects' texts, each held to JAX (0.10.2, CPU)
# --------------------------------------------------------------------------------------------------
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402


def _exits(source: str) -> int:
    """The exit status of ``source`` run in a fresh interpreter (an XLA abort kills only that one)."""
    prelude = "import jax, jax.numpy as jnp, numpy as np\nfrom jax import lax\njax.config.update('jax_enable_x64', True)\n"
    run = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(source)], capture_output=True, timeout=120)
    return run.returncode


def _jitted_vjp(function, primals, cotangent):
    """(y, grads) of ``function`` at ``primals`` under one jax.jit, as the oracle runs it, in float64."""
    with jax.enable_x64(True):
        def forward_and_backward(primals, cotangent):
            y, pullback = jax.vjp(function, *primals)
            return y, pullback(cotangent.astype(y.dtype))
        y, grads = jax.jit(forward_and_backward)(tuple(jnp.asarray(p) for p in primals), jnp.asarray(cotangent))
        return numpy.asarray(y), [numpy.asarray(g) for g in grads]


def _conv(x, weight, padding=((0, 0), (0, 0)), stride=(1, 1), dilation=(1, 1), groups=1):
    return lax.conv_general_dilated(x, weight, stride, padding, rhs_dilation=dilation,
                                    dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups)


def test_conv_weight_gradient_leaves_out_the_padding_in_float64_and_in_some_float32_kernels():
    # CONV_PADDING_GRADIENT: an infinite upstream entry at output (0, 0) of a padded convolution; the
    # taps of row 0 and column 0 read only padding there (5 of 3 x 3): poolref (and PyTorch's float64)
    # multiply the padding's 0 (NaN), JAX's float64 leaves the padding out (no NaN), its float32
    # multiplies it in one kernel (A) and leaves it out in another (C)
    def nan_taps(dtype, x_shape, w_shape, padding, dilation=(1, 1)):
        x = (numpy.arange(math.prod(x_shape)).reshape(x_shape) % 5 + 1).astype(dtype)
        weight = numpy.ones(w_shape, dtype)
        upstream = numpy.ones(jax.eval_shape(lambda w: _conv(x, w, padding, dilation=dilation), weight).shape, dtype)
        upstream[0, 0, 0, 0] = numpy.inf
        _, (grad_weight,) = _jitted_vjp(lambda w: _conv(jnp.asarray(x), w, padding, dilation=dilation), (weight,), upstream)
        ours = poolref.vjp(lambda w: poolref.conv2d(x.astype(numpy.float64), w, padding=tuple(p for p, _ in padding),
                                                     dilation=dilation), weight.astype(numpy.float64))[1](upstream.astype(numpy.float64))[0]
        return int(numpy.isnan(grad_weight).sum()), int(numpy.isnan(ours).sum())

    assert nan_taps(numpy.float64, (1, 1, 3, 3), (1, 1, 3, 3), ((1, 1), (1, 1))) == (0, 5)
    assert nan_taps(numpy.float64, (1, 2, 8, 2), (1, 2, 3, 2), ((2, 2), (1, 1))) == (0, 10)
    assert nan_taps(numpy.float32, (1, 1, 3, 3), (1, 1, 3, 3), ((1, 1), (1, 1))) == (5, 5)  # A
    assert nan_taps(numpy.float32, (1, 2, 8, 2), (1, 2, 3, 2), ((2, 2), (1, 1))) == (0, 10)  # C


def test_conv_input_gradient_aborts_with_strides_also_without_dilation():
    # JAX_CONV_ABORT: the input gradient (not the weight gradient) aborts the process, for the text's
    # three examples and for a float32 case with strides and no dilation (drawn by poolref check)
    template = """
        x, w = jnp.ones({x}, '{dtype}'), jnp.ones({w}, '{dtype}')
        f = lambda x, w: lax.conv_general_dilated(x, w, {stride}, {padding}, rhs_dilation={dilation},
                                                  dimension_numbers=('NCHW', 'OIHW', 'NCHW'), feature_group_count={groups})
        c = jnp.ones(jax.eval_shape(f, x, w).shape, '{dtype}')
        jax.jit(lambda x, w, c: jax.vjp(lambda w: f(x, w), w)[1](c))(x, w, c)  # the weight gradient runs
        jax.jit(lambda x, w, c: jax.vjp(lambda x: f(x, w), x)[1](c))(x, w, c)  # the input gradient aborts
        print('ran')
    """
    examples = [
        dict(dtype="float32", x=(1, 2, 4, 4), w=(1, 2, 2, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 2), groups=1),
        dict(dtype="float64", x=(1, 1, 7, 6), w=(1, 1, 3, 2), stride=(2, 2), padding=((0, 0), (1, 1)), dilation=(2, 1), groups=1),
        dict(dtype="float64", x=(1, 2, 3, 4), w=(2, 1, 2, 2), stride=(1, 2), padding=((0, 0), (1, 1)), dilation=(2, 1), groups=2),
        dict(dtype="float32", x=(1, 2, 5, 8), w=(2, 2, 3, 2), stride=(2, 2), padding=((0, 0), (1, 1)), dilation=(1, 1), groups=1),
    ]
    for example in examples:
        assert _exits(template.format(**example)) == -6, example  # SIGABRT, after the weight gradient ran
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_CONV_ABORT

    undilated = Case("conv2d", {"x": numpy.ones((1, 2, 5, 8), numpy.float32), "weight": numpy.ones((2, 2, 3, 2), numpy.float32)},
                     dict(stride=(2, 2), padding=(0, 1), dilation=(1, 1)), positional=("x", "weight"))
    assert JAX_CONV_ABORT.applies(undilated)  # the excuse covers strides without dilation (it did not: seed 5 aborted)


def test_grouped_conv_gradient_spreads_a_nonfinite_upstream_entry_into_other_groups():
    # JAX_GROUPED_NONFINITE_GRADIENT: one NaN (or inf) upstream entry in output channel 0 of a 2 x 2
    # convolution reaches 4 input cells of channel 0 and 4 weights of output channel 0; count the
    # non-finite entries per channel of grad_x and per output channel of grad_weight
    def spread(dtype, c_in, c_out, groups, value):
        rng = numpy.random.default_rng(0)
        x, weight = rng.normal(size=(1, c_in, 5, 5)).astype(dtype), rng.normal(size=(c_out, c_in // groups, 2, 2)).astype(dtype)
        upstream = numpy.ones((1, c_out, 4, 4), dtype)
        upstream[0, 0, 1, 1] = value
        _, (grad_x, grad_weight) = _jitted_vjp(lambda x, w: _conv(x, w, groups=groups), (x, weight), upstream)
        return ([int((~numpy.isfinite(grad_x[0, c])).sum()) for c in range(c_in)],
                [int((~numpy.isfinite(grad_weight[o])).sum()) for o in range(c_out)])

    for value in (numpy.nan, numpy.inf):
        # float64, one output channel per group: every input channel (the text's C 3, groups 3)
        assert spread(numpy.float64, 3, 3, 3, value) == ([4, 4, 4], [4, 0, 0])
        assert spread(numpy.float64, 6, 3, 3, value) == ([4] * 6, [8, 0, 0])  # whatever the input channels
        assert spread(numpy.float64, 3, 6, 3, value) == ([4, 0, 0], [4, 0, 0, 0, 0, 0])  # two per group: right
        # float32: the matching output channel of every group (the text's C_out 6, groups 3) ...
        assert spread(numpy.float32, 3, 6, 3, value) == ([4, 0, 0], [4, 0, 4, 0, 4, 0])
        assert spread(numpy.float32, 6, 3, 3, value) == ([4, 4, 0, 0, 0, 0], [8, 8, 8])
        # ... but not when each group has one input and one output channel
        assert spread(numpy.float32, 3, 3, 3, value) == ([4, 0, 0], [4, 0, 0])


def test_float64_depthwise_conv_spreads_a_nan_into_every_group_float32_does_not():
    # JAX_DEPTHWISE_FLOAT64: a NaN at x[0, 0, 2, 2]; 2 x 2 kernels read it at 4 outputs of each
    # output channel that reads channel 0; count non-finite outputs per output channel
    def spread(dtype, c_in, c_out, groups):
        rng = numpy.random.default_rng(0)
        x, weight = rng.normal(size=(1, c_in, 5, 5)).astype(dtype), rng.normal(size=(c_out, c_in // groups, 2, 2)).astype(dtype)
        x[0, 0, 2, 2] = numpy.nan
        y, (grad_x, grad_weight) = _jitted_vjp(lambda x, w: _conv(x, w, groups=groups), (x, weight), numpy.ones((1, c_out, 4, 4), dtype))
        assert numpy.isfinite(grad_x).all()  # the gradients are right
        assert [int(numpy.isnan(grad_weight[o]).sum()) for o in range(c_out)] == [4] * (c_out // groups) + [0] * (c_out - c_out // groups)
        return [int(numpy.isnan(y[0, o]).sum()) for o in range(c_out)]

    assert spread(numpy.float64, 3, 3, 3) == [4, 4, 4]
    assert spread(numpy.float64, 3, 6, 3) == [4] * 6
    assert spread(numpy.float32, 3, 3, 3) == [4, 0, 0]
    assert spread(numpy.float64, 6, 6, 3) == [4, 4, 0, 0, 0, 0]  # groups of several channels: right


def test_jnp_max_gradient_under_jit_is_zero_off_the_maximum_whatever_the_upstream_gradient():
    # JAX_REDUCE_MAX: ties share evenly; under jax.jit the other elements get 0 even for an infinite or
    # NaN upstream gradient (eagerly 0 * inf = NaN); a NaN maximum gets 0 (eagerly NaN)
    def jnp_max(t):
        return jnp.max(t, axis=(2, 3), keepdims=True)

    x = numpy.array([[[[1.0, 3.0, 3.0, 2.0]]]])
    assert _jitted_vjp(jnp_max, (x,), numpy.ones((1, 1, 1, 1)))[1][0].ravel().tolist() == [0.0, 0.5, 0.5, 0.0]
    x = numpy.array([[[[1.0, 3.0, 2.0]]]])
    for upstream in (numpy.inf, numpy.nan):
        jitted = _jitted_vjp(jnp_max, (x,), numpy.full((1, 1, 1, 1), upstream))[1][0].ravel()
        with jax.enable_x64(True):
            y, pullback = jax.vjp(jnp_max, jnp.asarray(x))
            eager = numpy.asarray(pullback(jnp.full((1, 1, 1, 1), upstream))[0]).ravel()
        assert jitted[[0, 2]].tolist() == [0.0, 0.0] and numpy.isnan(eager[[0, 2]]).all()
    x = numpy.array([[[[1.0, numpy.nan, 2.0]]]])
    assert _jitted_vjp(jnp_max, (x,), numpy.ones((1, 1, 1, 1)))[1][0].ravel().tolist() == [0.0, 0.0, 0.0]
    with jax.enable_x64(True):
        y, pullback = jax.vjp(jnp_max, jnp.asarray(x))
        assert numpy.isnan(numpy.asarray(pullback(jnp.ones_like(y))[0])).all()
    # the defect's model is the jitted rule (it multiplied: NaN off the maximum for an infinite upstream)
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_REDUCE_MAX
    from poolref.oracle.engine import run_poolref

    for values, upstream in (([1.0, 3.0, 2.0], numpy.inf), ([1.0, 3.0, 3.0], -numpy.inf), ([1.0, numpy.nan], numpy.inf)):
        x = numpy.array(values).reshape(1, 1, 1, -1)
        g = numpy.full((1, 1, 1, 1), upstream)
        case = Case("global_max_pool", {"x": x}, {}, input_class="nonfinite_gradient")
        model = JAX_REDUCE_MAX.model(case, run_poolref(case, cotangent=g)[0], g).grads["x"]
        numpy.testing.assert_array_equal(model, _jitted_vjp(jnp_max, (x,), g)[1][0])


def test_jitted_average_over_a_window_wholly_in_padding_on_a_length_one_axis_divides_by_zero():
    # JAX_REDUCE_WINDOW_LENGTH_ONE's last clause: the count of taps inside the input is 0 there
    def window_sum(t):
        return lax.reduce_window(t, 0.0, lax.add, window_dimensions=(1, 2, 1), window_strides=(1, 1, 2),
                                 padding="SAME", window_dilation=(1, 2, 1))

    y, (grad,) = _jitted_vjp(lambda t: window_sum(t) / window_sum(jnp.ones_like(t)), (numpy.array([[[-0.68]]]),),
                             numpy.array([[[-1.8]]]))
    assert numpy.isnan(y.item()) and grad.item() == -numpy.inf


def test_max_reduce_window_gradient_refuses_dilation_and_negative_pads_but_not_empty_outputs():
    def max_window(**window):
        return lambda t: lax.reduce_window(t, -jnp.inf, lax.max, **window)

    x = numpy.arange(12.0).reshape(1, 1, 12)
    with pytest.raises(NotImplementedError, match="select_and_gather"):
        _jitted_vjp(max_window(window_dimensions=(1, 1, 2), window_strides=(1, 1, 1), padding="VALID",
                               window_dilation=(1, 1, 2)), (x,), numpy.ones((1, 1, 10)))
    for pads in ((-1, 0), (0, -1), (-1, 2)):
        with pytest.raises(TypeError, match="slice"):
            _jitted_vjp(max_window(window_dimensions=(1, 1, 2), window_strides=(1, 1, 2), padding=((0, 0), (0, 0), pads)),
                        (x,), numpy.ones((1, 1, (12 + sum(pads)) // 2)))
    # an empty output has a gradient: zeros (the adapter refused it as a TypeError; it checks it now)
    y, (grad,) = _jitted_vjp(max_window(window_dimensions=(1, 1, 13), window_strides=(1, 1, 1), padding=((0, 0), (0, 0), (0, 0))),
                             (x,), numpy.ones((1, 1, 0)))
    assert y.shape == (1, 1, 0) and grad.tolist() == [[[0.0] * 12]]


def test_reduce_window_of_one_cell_aborts_only_where_every_pad_crops_and_the_output_is_not_empty():
    # the adapter's refusal of a one-cell window with unit strides and a negative pad
    template = """
        x = jnp.ones({shape})
        print(lax.reduce_window(x, {init}, {op}, (1,) * x.ndim, (1,) * x.ndim, ((0, 0), (0, 0)) + {pads}))
    """
    def run(shape, pads, init="-jnp.inf", op="lax.max"):
        return _exits(template.format(shape=shape, pads=pads, init=init, op=op))

    assert run((1, 1, 6), ((-1, 0),)) == -6 and run((1, 1, 4, 5), ((-1, -1), (-2, -1))) == -6
    assert run((1, 1, 6), ((0, -2),), "0.0", "lax.add") == -6  # a sum as well
    assert run((1, 1, 6), ((-1, 1),)) == 0 and run((1, 1, 4, 5), ((-1, 0), (0, 1))) == 0  # a positive pad too
    assert run((1, 1, 6), ((-3, -3),)) == 0  # an empty output


def test_reduce_window_max_gives_a_minus_infinity_window_starting_in_the_padding_to_the_padding():
    # (JAX_MIXED_POOL_MAX_ROUTING's -inf half) windows [pad, -inf], [-inf, -inf], [-inf, pad]; the first of tied taps wins,
    # so only the window that starts in the padding loses its gradient (PyTorch: x[0], x[1], x[3])
    x = numpy.full((1, 1, 4), -numpy.inf)
    y, (grad,) = _jitted_vjp(lambda t: lax.reduce_window(t, -jnp.inf, lax.max, (1, 1, 2), (1, 1, 2), ((0, 0), (0, 0), (1, 1))),
                             (x,), numpy.array([[[1.0, 2.0, 3.0]]]))
    assert grad.tolist() == [[[0.0, 2.0, 0.0, 3.0]]]
    _, pullback = poolref.vjp(lambda t: poolref.max_pool1d(t, 2, 2, 1), x)
    assert pullback(numpy.array([[[1.0, 2.0, 3.0]]]))[0].tolist() == [[[1.0, 2.0, 0.0, 3.0]]]


def test_reduce_window_max_sends_a_nan_window_to_the_first_maximum_after_its_last_nan():
    # JAX_MAX_BLUR_ROUTING (and JAX_MIXED_POOL_MAX_ROUTING's NaN half): ... or to the NaN itself when it ends the window
    def routed(values):
        x = numpy.array(values).reshape(1, 1, -1)
        f = lambda t: lax.reduce_window(t, -jnp.inf, lax.max, (1, 1, len(values)), (1, 1, 1), "VALID")  # noqa: E731
        return int(numpy.argmax(_jitted_vjp(f, (x,), numpy.ones((1, 1, 1)))[1][0].ravel()))

    nan, inf = numpy.nan, numpy.inf
    assert routed([2.0, nan, 1.0, 1.0, 0.0]) == 2 and routed([nan, 1.0, 3.0, 3.0]) == 2 and routed([nan, -inf, -inf]) == 1
    assert routed([1.0, 3.0, nan]) == 2 and routed([nan, nan]) == 1
    _, pullback = poolref.vjp(lambda t: poolref.max_pool1d(t, 5), numpy.array([[[2.0, nan, 1.0, nan, 0.0]]]))
    assert pullback(numpy.ones((1, 1, 1)))[0].ravel().tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]  # kornia/PyTorch: the last NaN


def test_lse_composition_gives_a_minus_infinity_plane_nan_only_for_power_of_two_sizes():
    # MINUS_INF_PLANE: poolref (torch.logsumexp's rule) gives NaN; JAX's derivative of the composition
    # gives NaN where the plane holds 1, 2, 4 or 8 cells and a zero (of either sign) for 3, 5-7, 9-12
    mapping = next(m for m in oracle.load_adapter("jax").MAPPINGS if m.op == "lse_pool")
    from poolref.cases.case import Case
    from poolref.oracle.engine import run_framework, run_poolref

    for dtype in (numpy.float64, numpy.float32):
        for cells in range(1, 13):
            x = numpy.full((1, 2, 1, cells), -numpy.inf, dtype=dtype)
            x[0, 1] = numpy.arange(cells) / 4
            case = Case("lse_pool", {"x": x}, {"r": 2.0})
            ours, cotangent = run_poolref(case, cotangent=numpy.ones((1, 2, 1, 1), dtype=dtype))
            theirs = run_framework(oracle.load_adapter("jax").IMPORTS, mapping, case, cotangent)
            assert numpy.isnan(ours.grads["x"][0, 0]).all()
            if cells in (1, 2, 4, 8):
                assert numpy.isnan(theirs.grads["x"][0, 0]).all(), (dtype, cells)
            else:
                assert (theirs.grads["x"][0, 0] == 0).all(), (dtype, cells)


def test_expm1_derivative_rounds_to_zero_below_minus_17_in_float32_and_minus_37_in_float64():
    # EXPM1_CHAIN_RULE's numbers
    for dtype, last_zero, first_positive in ((numpy.float32, -17.5, -17.0), (numpy.float64, -37.5, -37.0)):
        with jax.enable_x64(True):
            t = jnp.asarray(numpy.array([last_zero, first_positive], dtype=dtype))
            slope = numpy.asarray(jax.vmap(jax.grad(jnp.expm1))(t))
        assert slope[0] == 0 and slope[1] > 0, dtype


def test_map_coordinates_gradient_to_the_coordinates_is_nan_for_an_infinite_upstream_gradient():
    # MAP_GRID_GRADIENT: grid_sample's (and poolref's) coordinate gradient is +-inf there
    from jax.scipy.ndimage import map_coordinates

    image = numpy.array([[1.0, 2.0], [4.0, 8.0]])
    for upstream in (numpy.inf, -numpy.inf):
        _, grads = _jitted_vjp(lambda r, c: map_coordinates(jnp.asarray(image), [r, c], order=1, mode="constant"),
                               (numpy.array([0.3]), numpy.array([0.6])), numpy.array([upstream]))
        assert numpy.isnan(grads[0]).all() and numpy.isnan(grads[1]).all()
    grid = numpy.array([[[[0.2, -0.4]]]])  # (x, y) in [-1, 1], align_corners=True: row 0.3, column 0.6
    _, pullback = poolref.vjp(lambda g: poolref.grid_sample(numpy.array([[[[1.0, 2.0], [4.0, 8.0]]]]), g, align_corners=True), grid)
    assert numpy.isinf(pullback(numpy.full((1, 1, 1, 1), numpy.inf))[0]).all()


def test_flax_pooling_has_no_dilation():
    flax_linen = pytest.importorskip("flax.linen")
    import inspect

    for pool in (flax_linen.max_pool, flax_linen.avg_pool):
        assert not any("dilation" in name for name in inspect.signature(pool).parameters)


def test_max_pooling_with_an_empty_output_is_checked_not_refused():
    # the adapter refused empty outputs ("JAX has no gradient ... (TypeError)"); JAX has one (zeros)
    from poolref.cases.case import Case
    from poolref.oracle.engine import evaluate

    adapter = oracle.load_adapter("jax")
    calls = {m.call for m in adapter.MAPPINGS if m.op == "max_pool2d"}
    assert "jax.lax.reduce_window(lax.max, -inf)" in calls
    case = Case("max_pool2d", {"x": numpy.arange(40.0).reshape(2, 1, 4, 5)},
                dict(kernel_size=(7, 2), stride=(1, 1), padding=((1, 1), (0, 0)), convention="jax"))
    for mapping in (m for m in adapter.MAPPINGS if m.op == "max_pool2d"):
        assert mapping.refusal(case) is None, mapping.call
        outcome, _ = evaluate(adapter.IMPORTS, mapping, case, 0, 0)
        assert not outcome.error and outcome.theirs.values.shape == (2, 1, 0, 4)
        assert all(c.ok for _, c in outcome.comparisons), mapping.call


def test_resize_has_no_legacy_nearest_and_no_scale_factor_but_scale_and_translate_has_one():
    # the interpolate row's reasons: jax.image.resize's "nearest" is nearest-exact, not the legacy
    # nearest; it maps by in/out (a scale factor's 1/s differs), while scale_and_translate takes s
    x = numpy.random.default_rng(0).normal(size=(1, 1, 7))
    with jax.enable_x64(True):
        for size in (3, 4, 5, 10, 12):
            nearest = numpy.asarray(jax.image.resize(jnp.asarray(x), (1, 1, size), "nearest"))
            assert numpy.array_equal(nearest, poolref.interpolate(x, size=size, mode="nearest-exact"))
            assert not numpy.array_equal(nearest, poolref.interpolate(x, size=size, mode="nearest"))
        for factor in (0.45, 0.7, 1.3, 1.7, 2.5):
            ours = poolref.interpolate(x, scale_factor=factor, mode="linear", align_corners=False)
            shape = (1, 1, int(7 * factor))
            resized = numpy.asarray(jax.image.resize(jnp.asarray(x), shape, "linear", antialias=False))
            scaled = numpy.asarray(jax.image.scale_and_translate(jnp.asarray(x), shape, (2,), jnp.array([factor]), jnp.array([0.0]),
                                                                 "linear", antialias=False))
            assert numpy.abs(resized - ours).max() > 0.05
            numpy.testing.assert_allclose(scaled, ours, rtol=0, atol=1e-15)


def test_map_coordinates_reads_other_neighbours_at_a_clamped_coordinate_and_weighs_a_zero():
    # MAP_READS: left of [1, inf, 3] with border padding grid_sample (and poolref) clamp to pixel 0 and
    # read pixel 1 with weight 0 (0 * inf = NaN); map_coordinates reads pixel 0 twice (1.0).
    # DYNOPOOL_BORDER: at the integer coordinate 1 of [1, 2, inf] map_coordinates reads pixel 2 with
    # weight 0 (NaN)
    from jax.scipy.ndimage import map_coordinates

    def sample(row, column):
        with jax.enable_x64(True):
            image = jnp.asarray(numpy.array([row]))
            return float(map_coordinates(image, [jnp.array([0.0]), jnp.array([column])], order=1, mode="nearest")[0])

    assert sample([1.0, numpy.inf, 3.0], -0.6) == 1.0
    grid = numpy.array([[[[-1.6, -1.0]]]])  # align_corners=True: column -0.6
    ours = poolref.grid_sample(numpy.array([[[[1.0, numpy.inf, 3.0]]]]), grid, padding_mode="border", align_corners=True)
    assert numpy.isnan(ours).all()
    assert numpy.isnan(sample([1.0, 2.0, numpy.inf], 1.0))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_compositions_chain_rules_make_nan_where_the_ops_derivative_is_infinite():
    # SOFTMAX_CHAIN_RULE, SOFTPOOL_LIMITS, STOCHASTIC_CHAIN_RULE, GEM_CHAIN_RULE, run through the
    # adapter's own compositions: NaN where poolref has +-inf (or a limit)
    from poolref.cases.case import Case
    from poolref.oracle.engine import run_framework, run_poolref

    adapter = oracle.load_adapter("jax")

    def both(case, cotangent):
        mapping = next(m for m in adapter.MAPPINGS if m.op == case.op)
        ours, cotangent = run_poolref(case, cotangent=cotangent)
        return ours, run_framework(adapter.IMPORTS, mapping, case, cotangent)

    x = numpy.arange(16.0).reshape(1, 1, 4, 4) / 8
    upstream = numpy.ones((1, 1, 2, 2))
    upstream[0, 0, 0, 0] = numpy.inf  # the window of x[0, 0, :2, :2]
    for op, kwargs, values in (("soft_pool2d", {"kernel_size": 2}, x), ("stochastic_pool2d", {"kernel_size": 2, "training": False}, x + 0.1)):
        ours, theirs = both(Case(op, {"x": values}, kwargs), upstream)
        window = (0, 0, slice(0, 2), slice(0, 2))
        assert numpy.isinf(ours.grads["x"][window]).all() and numpy.isnan(theirs.grads["x"][window]).all(), op
        numpy.testing.assert_allclose(theirs.grads["x"][0, 0, 2:], ours.grads["x"][0, 0, 2:], rtol=1e-12)  # finite windows agree
    limits = x.copy()
    limits[0, 0, 0, 0], limits[0, 0, 0, 2] = numpy.inf, -numpy.inf
    ours, theirs = both(Case("soft_pool2d", {"x": limits}, {"kernel_size": 2}), numpy.ones((1, 1, 2, 2)))
    assert ours.values[0, 0, 0, 0] == numpy.inf and numpy.isfinite(ours.values[0, 0, 0, 1])  # +inf wins, -inf drops out
    assert numpy.isnan(theirs.values[0, 0, 0]).all()
    gem = Case("gem_pool", {"x": numpy.array([[[[0.5, 1.0], [2.0, 1.5]]]]), "p": numpy.array(3.0)}, {}, grad_inputs=("x", "p"))
    for sign in (1, -1):
        ours, theirs = both(gem, numpy.full((1, 1, 1, 1), sign * numpy.inf))
        assert ours.grads["p"] == sign * numpy.inf and numpy.isnan(theirs.grads["p"])


def test_jax_and_flax_have_none_of_the_uncovered_ops():
    # UNCOVERED: no Lp, adaptive, fractional or unpooling, no RoI or deformable ops in JAX 0.10.2 or Flax
    flax_linen = pytest.importorskip("flax.linen")
    import jax.image
    import jax.nn
    import jax.scipy.ndimage

    words = ("lp_pool", "adaptive", "unpool", "fractional", "roi", "deform", "pyramid")
    for module in (jax.nn, lax, jax.image, jax.scipy.ndimage, jnp, flax_linen):
        assert not [name for name in dir(module) if any(word in name.lower() for word in words)], module.__name__
    assert {"avg_pool", "max_pool", "pool"} <= set(dir(flax_linen))  # the search does find what is there


def test_float64_conv_weight_gradient_leaves_out_the_padding_as_modelled():
    # JAX_CONV_PADDING_GRADIENT: the float64 weight gradient under a non-finite upstream gradient is the
    # model without the zero padding (NaN exactly, the rest to rounding), which was a refusal before
    from poolref.cases.case import Case
    from poolref.oracle.compare import compare_arrays
    from poolref.oracle.defects import JAX_CONV_PADDING_GRADIENT
    from poolref.oracle.engine import run_poolref

    rng = numpy.random.default_rng(9)
    needed = 0
    for trial in range(30):
        x = rng.standard_normal((1 + trial % 2, 2, 6, 5))
        w = rng.standard_normal((3, 2, 3, 2))
        pads = ((1, 1), (int(rng.integers(0, 2)),) * 2)
        stride = (1 + trial % 2, 1)  # strided cases may abort only the input gradient; this one runs
        case = Case("conv2d", {"x": x, "weight": w}, dict(stride=stride, padding=(pads[0][0], pads[1][0])),
                    positional=("x", "weight"), grad_inputs=("x", "weight"), input_class="nonfinite_gradient")
        assert JAX_CONV_PADDING_GRADIENT.applies(case)
        ours, g = run_poolref(case)
        g = g.copy()
        g.reshape(-1)[rng.choice(g.size, 2, replace=False)] = [numpy.inf, -numpy.inf]
        ours, _ = run_poolref(case, cotangent=g)
        got = _jitted_vjp(lambda w: _conv(x, w, pads, stride), (w,), g)[1][0]  # noqa: B023
        model = JAX_CONV_PADDING_GRADIENT.model(case, ours, g).grads["weight"]
        assert compare_arrays(got, model, "gradient to weight", gradient=True).ok, trial
        needed += not compare_arrays(got, ours.grads["weight"], "gradient to weight", gradient=True).ok
    assert needed > 5
    assert not JAX_CONV_PADDING_GRADIENT.applies(case.replace(arrays={"x": x.astype(numpy.float32), "weight": w.astype(numpy.float32)}))
    assert oracle.check("jax", ops=["conv2d"], cases=100, seed=2).passed


# --------------------------------------------------------------------------------------------------
# The compositions' max: reduce_window's routing, modelled with poolref's convention="jax" max
# (JAX_MIXED_POOL_MAX_ROUTING, JAX_MAX_BLUR_ROUTING; both were refusals before)
# --------------------------------------------------------------------------------------------------
def _composition_mapping(op: str):
    return next(m for m in oracle.load_adapter("jax").MAPPINGS if m.op == op)


def _routing_cases(op: str, count: int, seed: int) -> list:
    """Random cases of the classes the refusals held (NaN, infinities: -inf blocks with and without
    padding, +inf), and ties, in float64 and float32 by turns; mixed pooling with a max part."""
    from poolref.cases import draw_case

    rng = numpy.random.default_rng(seed)
    space = _composition_mapping(op).generation_space()
    cases = []
    for index in range(count):
        case = draw_case(rng, op, space, ("nan", "inf", "nan", "ties")[index % 4])
        dtype = (numpy.float64, numpy.float32)[index // 4 % 2]
        kwargs = dict(case.kwargs)
        if op == "mixed_pool2d":
            kwargs["lam"] = kwargs["lam"] or 0.5
        cases.append(case.replace(arrays={"x": case.x.astype(dtype)}, kwargs=kwargs))
    return cases


def _against_jax(op: str, cases: list, model=None, unbatched: bool = False):
    """(cases where poolref differs from JAX, cases where ``model`` (the defect's by default) differs
    from JAX, cases where poolref differs and the defect does not apply), comparing outputs and input
    gradients as the oracle does: NaN and infinities exactly, the rest to its tolerance. ``unbatched``:
    each case's first image as (C, H, W), JAX's answer that of the batch of one."""
    from poolref.oracle.engine import Results, compare_case, evaluate, run_poolref

    mapping = _composition_mapping(op)
    (defect,) = mapping.defects
    poolref_differs = model_differs = unexplained = 0
    for index, case in enumerate(cases):
        if unbatched:
            case = case.replace(arrays={"x": case.x[:1]})
        outcome, cotangent = evaluate(oracle.load_adapter("jax").IMPORTS, mapping, case, 0, index)
        assert not outcome.error, outcome.error
        if unbatched:  # the same case without its batch axis, and JAX's answer without it
            case, cotangent = case.replace(arrays={"x": case.x[0]}), cotangent[0]
            theirs = outcome.theirs
            outcome = outcome._replace(ours=run_poolref(case, cotangent=cotangent)[0],
                                       theirs=Results(theirs.values[0], None, {"x": theirs.grads["x"][0]}))
            outcome = outcome._replace(comparisons=compare_case(mapping, case, outcome.ours, outcome.theirs))
        expected = (model or defect.model)(case, outcome.ours, cotangent)
        model_differs += not all(c.ok for _, c in compare_case(mapping, case, expected, outcome.theirs))
        poolref_differs += not outcome.ok
        unexplained += not outcome.ok and not defect.applies(case)
    return poolref_differs, model_differs, unexplained


def _poolref_as_is(case, ours, cotangent):  # a mutant model: poolref's own (PyTorch's) routing
    return ours


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_mixed_pool_model_equals_jax_where_reduce_window_routes_the_max_elsewhere():
    # JAX_MIXED_POOL_MAX_ROUTING: 32 random cases (8 NaN and 4 -inf/+inf per dtype): the model is JAX
    # exactly, poolref differs on some, and only where the defect applies; poolref's routing fails
    cases = _routing_cases("mixed_pool2d", 32, seed=5)
    poolref_differs, model_differs, unexplained = _against_jax("mixed_pool2d", cases)
    assert model_differs == 0 and unexplained == 0 and poolref_differs >= 6, poolref_differs
    assert _against_jax("mixed_pool2d", cases, model=_poolref_as_is)[1] == poolref_differs
    # unbatched (C, H, W), which the mapping does not draw (its composition is written for N, C, H, W)
    poolref_differs, model_differs, unexplained = _against_jax("mixed_pool2d", cases[:12], unbatched=True)
    assert model_differs == 0 and unexplained == 0 and poolref_differs >= 2, poolref_differs


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_max_blur_pool_model_equals_jax_where_reduce_window_routes_a_nan_window_elsewhere():
    # JAX_MAX_BLUR_ROUTING: as above, unbatched cases included (the mapping draws (C, H, W) too)
    cases = _routing_cases("max_blur_pool2d", 32, seed=6)
    cases += [c.replace(arrays={"x": c.x[0]}) for c in cases[:8]]  # unbatched: (C, H, W)
    poolref_differs, model_differs, unexplained = _against_jax("max_blur_pool2d", cases)
    assert model_differs == 0 and unexplained == 0 and poolref_differs >= 6, poolref_differs
    assert _against_jax("max_blur_pool2d", cases, model=_poolref_as_is)[1] == poolref_differs


def test_mixed_and_max_blur_routing_defects_give_their_worked_examples():
    # the numbers in the defects' texts, from JAX itself and from the models
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_MAX_BLUR_ROUTING, JAX_MIXED_POOL_MAX_ROUTING
    from poolref.oracle.engine import run_poolref

    inf, nan = numpy.inf, numpy.nan
    x, g = numpy.full((1, 1, 1, 4), -inf), numpy.array([[[[1.0, 2.0, 3.0]]]])
    window = ((1, 1, 1, 2), (1, 1, 1, 2), ((0, 0), (0, 0), (0, 0), (1, 1)))
    y, (grad,) = _jitted_vjp(lambda t: 0.5 * lax.reduce_window(t, -jnp.inf, lax.max, *window)
                             + 0.5 * lax.reduce_window(t, 0.0, lax.add, *window) / 2, (x,), g)
    case = Case("mixed_pool2d", {"x": x}, dict(kernel_size=(1, 2), stride=(1, 2), padding=(0, 1), lam=0.5))
    ours, _ = run_poolref(case, cotangent=g)
    model = JAX_MIXED_POOL_MAX_ROUTING.model(case, ours, g)
    assert y.ravel().tolist() == model.values.ravel().tolist() == [-inf] * 3
    assert grad.ravel().tolist() == model.grads["x"].ravel().tolist() == [0.25, 1.5, 0.5, 2.25]
    assert ours.grads["x"].ravel().tolist() == [0.75, 1.5, 0.5, 2.25]

    x, g = numpy.array([[[[1.0, nan, 3.0], [nan, 2.0, 0.0]]]]), numpy.array([[[[1.0, 2.0]]]])
    y, (grad,) = _jitted_vjp(lambda t: lax.reduce_window(t, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 1, 1), "VALID"), (x,), g)
    case = Case("max_blur_pool2d", {"x": x}, dict(kernel_size=1, stride=1, max_pool_size=2))
    ours, _ = run_poolref(case, cotangent=g)
    model = JAX_MAX_BLUR_ROUTING.model(case, ours, g)
    assert numpy.isnan(y).all() and numpy.isnan(model.values).all()
    assert grad[0, 0].tolist() == model.grads["x"][0, 0].tolist() == [[0.0, 0.0, 2.0], [0.0, 1.0, 0.0]]
    assert ours.grads["x"][0, 0].tolist() == [[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]


def test_mixed_and_max_blur_routing_defects_apply_where_jax_can_differ():
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_MAX_BLUR_ROUTING, JAX_MIXED_POOL_MAX_ROUTING

    inf, nan = numpy.inf, numpy.nan
    finite = numpy.arange(16.0).reshape(1, 1, 4, 4)

    def with_values(*values):
        x = finite.copy()
        x.reshape(-1)[:len(values)] = values
        return x

    def mixed(x, padding=(1, 1), lam=0.5):
        return Case("mixed_pool2d", {"x": x}, dict(kernel_size=(2, 2), stride=None, padding=padding, lam=lam))

    applies = JAX_MIXED_POOL_MAX_ROUTING.applies
    assert applies(mixed(with_values(nan))) and applies(mixed(with_values(nan), padding=(0, 0)))
    assert applies(mixed(with_values(-inf))) and applies(mixed(with_values(-inf), padding=(0, 1)))
    assert applies(mixed(with_values(nan).astype(numpy.float32)[0]))  # float32, unbatched
    assert not applies(mixed(with_values(-inf), padding=(0, 0)))  # reduce_window's first of tied -inf: PyTorch's
    assert not applies(mixed(with_values(inf, -inf, inf), padding=(0, 0))) and not applies(mixed(with_values(inf)))
    assert not applies(mixed(with_values(nan), lam=0.0)) and not applies(mixed(finite))  # no max part; finite values
    blur = Case("max_blur_pool2d", {"x": with_values(nan)}, dict(kernel_size=3, stride=2, max_pool_size=2))
    assert JAX_MAX_BLUR_ROUTING.applies(blur) and JAX_MAX_BLUR_ROUTING.applies(blur.replace(arrays={"x": blur.x[0]}))
    assert not any(JAX_MAX_BLUR_ROUTING.applies(blur.replace(arrays={"x": with_values(*v)})) for v in ((), (inf,), (-inf, -inf)))
    assert not JAX_MAX_BLUR_ROUTING.applies(mixed(with_values(nan))) and not applies(blur)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_oracle_checks_mixed_and_max_blur_nan_cases_against_the_routing_models():
    # seed 4 draws NaN and -inf cases that the models explain (3 mixed, 1 max-blur); nothing refused for them
    report = oracle.check("jax", ops=["mixed_pool2d", "max_blur_pool2d"], cases=12, seed=4)
    assert report.passed, report.table()
    assert all(r.known and r.counts.get("nan") and "nan" not in r.refused and "inf" not in r.refused for r in report.results)
    assert not any(s for r in report.results for s in r.skips if "NaN" in s or "-inf" in s)
