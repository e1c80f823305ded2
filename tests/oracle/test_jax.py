"""The JAX adapter: every mapping passes, a planted bug is caught, and the differences the adapter
declares (and the atlas shows) are what JAX really does."""

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
    # (XLA's algebraic simplifier); the defect now names every strided and dilated case (an abort is
    # all it excuses: a case that runs is still compared)
    from poolref.cases.case import Case
    from poolref.oracle.defects import JAX_CONV_ABORT

    x, w = numpy.zeros((1, 1, 7, 6)), numpy.zeros((1, 1, 3, 2))
    case = Case("conv2d", {"x": x, "weight": w}, dict(stride=(2, 2), padding=(0, 1), dilation=(2, 1)), positional=("x", "weight"))
    assert JAX_CONV_ABORT.applies(case) and JAX_CONV_ABORT.affects == ("abort",)
    assert not JAX_CONV_ABORT.applies(case.replace(kwargs=dict(stride=(2, 2), padding=(0, 1))))
