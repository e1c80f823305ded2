"""poolref.testing: the helpers users import must themselves catch what they claim to catch."""

import numpy
import pytest

import poolref
from poolref.autograd import apply, define_function
from poolref.testing import assert_conserves_gradient, assert_matches, avg_pool_window_mass

# a max pooling whose backward loses a tenth of the gradient: the conservation law must notice
LEAKY = define_function(
    "leaky_max_pool_for_test",
    lambda x: (poolref.max_pool2d(x, 2), None),
    lambda saved, g: (0.9 * poolref.max_unpool2d(g, numpy.zeros(g.shape, dtype=int), 2),),
)


def test_conservation_catches_a_leaky_backward():
    x = numpy.random.default_rng(0).normal(size=(1, 2, 4, 4))
    with pytest.raises(AssertionError, match="not conserved"):
        assert_conserves_gradient(lambda t: apply(LEAKY, t), x)


def test_avg_pool_needs_its_window_mass():
    x = numpy.random.default_rng(1).normal(size=(2, 1, 5, 5))
    kwargs = dict(kernel_size=3, stride=2, padding=1)
    with pytest.raises(AssertionError):
        assert_conserves_gradient(poolref.avg_pool2d, x, **kwargs)  # padding is counted: mass < 1
    mass = avg_pool_window_mass((5, 5), **kwargs)
    assert mass.shape == (3, 3) and mass[1, 1] == 1.0 and mass[0, 0] == pytest.approx(4 / 9)
    assert_conserves_gradient(poolref.avg_pool2d, x, window_mass=mass, **kwargs)


def test_assert_matches_reports_the_first_mismatch():
    expected = numpy.arange(6.0).reshape(2, 3)
    actual = expected.copy()
    actual[1, 2] += 1e-3
    with pytest.raises(AssertionError, match=r"1 of 6 elements differ.*index \(1, 2\)"):
        assert_matches(actual, expected)
    with pytest.raises(AssertionError, match="shape"):
        assert_matches(actual[:1], expected)
    with pytest.raises(AssertionError, match="indices"):
        assert_matches(numpy.array([1, 2]), numpy.array([1, 3]), what="indices")
    assert_matches(numpy.array([numpy.nan, 1.0]), numpy.array([numpy.nan, 1.0]))


def test_assert_matches_prints_plain_numbers_the_position_and_the_tolerance():
    # the message printed numpy reprs, "np.float64(0.1267...)"
    for dtype in (numpy.float64, numpy.float32, numpy.float16):
        with pytest.raises(AssertionError) as info:
            assert_matches(numpy.array([[2.0, 0.1267]], dtype=dtype), numpy.array([[2.0, 0.1268]], dtype=dtype), rtol=1e-9)
        message = str(info.value)
        assert "np." not in message and "float64(" not in message and "float32(" not in message
        assert "first at index (0, 1): got 0.126" in message and "(rtol=1e-09, atol=0.0)" in message


def test_a_window_wholly_in_the_padding_has_mass_zero_and_the_law_holds():
    # JAX's 'same' padding with dilation 2 on a length-1 axis puts both taps in the padding: the
    # output is 0 / 0 (NaN) and no gradient reaches the input, so the window's mass is 0, not NaN
    kwargs = dict(kernel_size=(2, 1), stride=(1, 1), padding="same", dilation=(2, 1), count_include_pad=False, convention="jax")
    mass = avg_pool_window_mass((1, 3), **kwargs)
    assert mass.tolist() == [[0.0, 0.0, 0.0]]
    x = numpy.arange(3.0).reshape(1, 1, 1, 3)
    assert numpy.isnan(poolref.avg_pool2d(x, **kwargs)).all()
    assert_conserves_gradient(lambda t: poolref.avg_pool2d(t, **kwargs), x, window_mass=mass)


def test_a_max_pooling_window_wholly_in_the_padding_passes_no_gradient():
    # JAX's 'same' padding with dilation 2 on a length-1 axis: both taps of every window are padding
    # (-inf), so no gradient reaches the input; the law said 1 per window (poolref check self, seed 29)
    from poolref.testing import max_pool_window_mass

    kwargs = dict(kernel_size=(3, 2), stride=(3, 3), padding="same", dilation=(2, 2), convention="jax")
    mass = max_pool_window_mass((4, 1), **kwargs)
    assert mass.tolist() == [[0.0], [0.0]]
    x = numpy.arange(12.0).reshape(3, 4, 1)  # unbatched, as the seed drew it
    assert (poolref.max_pool2d(x, **kwargs) == -numpy.inf).all()
    assert_conserves_gradient(lambda t: poolref.max_pool2d(t, **kwargs), x, window_mass=mass)
    with pytest.raises(AssertionError, match="gradient is not conserved"):
        assert_conserves_gradient(lambda t: poolref.max_pool2d(t, **kwargs), x, window_mass=1.0)
    assert max_pool_window_mass((4, 4), 2).tolist() == [[1.0, 1.0], [1.0, 1.0]]  # PyTorch's padding never holds a window
