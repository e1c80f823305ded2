"""poolref.nn.DynOPool and gmacs_loss: the straight-through size chain reaches every upstream alpha."""

import numpy
import pytest

import poolref
from poolref import nn


def test_layer_is_dynopool2d_with_its_own_alpha():
    x = numpy.random.default_rng(0).standard_normal((2, 3, 9, 7))
    layer = nn.DynOPool((1.7, 2.6), aggregate="avg")
    numpy.testing.assert_array_equal(layer(x).data, poolref.dynopool2d(x, numpy.array([1.7, 2.6]), aggregate="avg"))
    assert [name for name, _ in layer.named_parameters()] == ["alpha"]
    numpy.testing.assert_array_equal(layer.size.data, [5.0, 3.0])
    assert layer.output_size(9, 7) == (5, 3)
    assert "alpha=(1.7, 2.6)" in repr(layer)


def test_two_dynopools_in_a_row_chain_their_sizes_into_the_gmacs_gradient():
    H, W = 12, 8
    first, second = nn.DynOPool((2.5, 2.0)), nn.DynOPool((1.5, 1.0))
    x = numpy.random.default_rng(1).standard_normal((1, 2, H, W))
    y = second(first(x), in_size=first.size)
    numpy.testing.assert_array_equal(first.size.data, [5.0, 4.0])  # round(4.8), 4
    numpy.testing.assert_array_equal(second.size.data, [3.0, 4.0])  # round(5 / 1.5) = round(3.33), 4
    assert y.shape == (1, 2, 3, 4)
    cost = 0.7
    loss = nn.gmacs_loss([second.size], [(3, 4)], [cost])
    numpy.testing.assert_allclose(loss.data, 3 * 4 * cost / 12)
    loss.backward()
    a1, a2 = first.alpha.data, second.alpha.data
    h2, w2 = second.size.data
    scale = cost / (3 * 4)
    # size2 = in_size / alpha2 with in_size = H / alpha1 (straight-through at every step)
    want_first = [scale * w2 * (1 / a2[0]) * (-H / a1[0] ** 2), scale * h2 * (1 / a2[1]) * (-W / a1[1] ** 2)]
    want_second = [scale * w2 * (-first.size.data[0] / a2[0] ** 2), scale * h2 * (-first.size.data[1] / a2[1] ** 2)]
    numpy.testing.assert_allclose(first.alpha.grad, want_first)
    numpy.testing.assert_allclose(second.alpha.grad, want_second)


def test_without_in_size_the_size_gradient_is_that_of_dynopool2d():
    layer = nn.DynOPool((2.5, 1.5))
    layer(numpy.zeros((1, 1, 12, 9)))
    layer.size.sum().backward()
    _, pull = poolref.vjp(lambda a: poolref.dynopool2d(numpy.zeros((1, 1, 12, 9)), a, return_size=True),
                          numpy.array([2.5, 1.5]))
    (want,) = pull((numpy.zeros((1, 1, 5, 6)), numpy.ones(2)))
    numpy.testing.assert_allclose(layer.alpha.grad, want)


def test_task_loss_and_gmacs_both_train_alpha():
    rng = numpy.random.default_rng(2)
    layer = nn.DynOPool((2.0, 2.0))
    x = rng.standard_normal((2, 3, 16, 16))
    y = layer(x)
    loss = (y * y).mean() + nn.gmacs_loss([layer.size], [(8, 8)], [1.0]) * 0.5
    loss.backward()
    assert layer.alpha.grad.shape == (2,) and numpy.all(numpy.isfinite(layer.alpha.grad))
    # the complexity term alone pushes alpha up (smaller maps are cheaper)
    layer.alpha.grad = None
    layer(x)
    nn.gmacs_loss([layer.size], [(8, 8)], [1.0]).backward()
    assert numpy.all(layer.alpha.grad < 0)


def test_straight_through_size_rounds_and_passes_the_gradient():
    size = poolref.Tensor(numpy.array([4.5, 0.3, 2.51]), requires_grad=True)
    rounded = nn.straight_through_size(size)
    numpy.testing.assert_array_equal(rounded.data, [4.0, 1.0, 3.0])
    (rounded * poolref.Tensor(numpy.array([1.0, 2.0, 3.0]))).sum().backward()
    numpy.testing.assert_array_equal(size.grad, [1.0, 2.0, 3.0])


def test_conv2d_gmacs_counts_multiply_accumulates():
    assert nn.conv2d_gmacs(16, 32, 3, 16, 4) == pytest.approx(16 * 32 * 9 * 64 / 1e9)
    assert nn.conv2d_gmacs(1, 1, (3, 1), 2, 2) == pytest.approx(12 / 1e9)


@pytest.mark.parametrize("init_alpha", [(0.0, 2.0), (2.0, numpy.nan), (2.0, numpy.inf), (2.0,), (-1.0, 1.0)])
def test_bad_init_alpha_is_refused(init_alpha):
    with pytest.raises(ValueError, match="init_alpha"):
        nn.DynOPool(init_alpha)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="aggregate='median'"):
        nn.DynOPool(aggregate="median")
    with pytest.raises(ValueError, match=r"in_size must be the spatial size of x, \(6, 6\)"):
        nn.DynOPool()(numpy.zeros((1, 1, 6, 6)), in_size=numpy.array([5.0, 6.0]))
    with pytest.raises(ValueError, match="one entry per layer"):
        nn.gmacs_loss([numpy.ones(2)], [(1, 1), (2, 2)], [1.0])
    with pytest.raises(ValueError, match="gmacs must be finite"):
        nn.gmacs_loss([numpy.ones(2)], [(1, 1)], [numpy.nan])
