"""Tests of the plain-loop blur-pooling reference (poolref/reference/blur.py).

Hand-computed examples, the adjoint identity its backward must satisfy, and cross-checks against
kornia (skipped without it).
"""

import numpy
import pytest

from poolref.reference.blur import (
    binomial_kernel_2d,
    blur_pool_backward_reference,
    blur_pool_reference,
    max_blur_pool_backward_reference,
    max_blur_pool_reference,
)


def test_binomial_kernel_is_the_outer_product_of_pascals_row_and_sums_to_one():
    for k in range(1, 9):
        kernel = binomial_kernel_2d(k)
        assert kernel.shape == (k, k) and kernel.sum() == 1.0 and (kernel == kernel.T).all()
    assert (binomial_kernel_2d(4) * 64).tolist() == [[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]]


def test_worked_example_zero_padding_and_stride():
    # x = arange(16) as 4x4, k = 3, s = 2: output (0, 0) reads rows -1..1 and columns -1..1, so the
    # four inside taps: (4*0 + 2*1 + 2*4 + 1*5) / 16 = 15/16
    y = blur_pool_reference(numpy.arange(16.0).reshape(1, 1, 4, 4), 3, (2, 2))
    assert y[0, 0, 0, 0] == 15 / 16
    # output (1, 1) reads rows 1..3 and columns 1..3: the mean-preserving blur of a plane is its centre 10
    assert y[0, 0, 1, 1] == 10.0


def test_max_blur_reads_the_stride_1_max_pool():
    x = numpy.array([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0], [7.0, 1.0, 1.0]]]])
    # dense 2x2 max: [[5, 5], [7, 4]]; k = 1 and s = 1 leave it as it is
    assert max_blur_pool_reference(x, 1, (1, 1)).tolist() == [[[[5.0, 5.0], [7.0, 4.0]]]]
    grad = max_blur_pool_backward_reference(numpy.ones((1, 1, 2, 2)), x, 1, (1, 1))
    assert grad.tolist() == [[[[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]]  # 5 won twice


@pytest.mark.parametrize("seed", range(5))
def test_backward_is_the_adjoint_of_the_forward(seed):
    # blur pooling is linear: <g, B x> = <B^T g, x>
    rng = numpy.random.default_rng(seed)
    k, s = int(rng.integers(1, 7)), (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    x = rng.standard_normal((2, 2, 7, 6))
    y = blur_pool_reference(x, k, s)
    g = rng.standard_normal(y.shape)
    assert numpy.isclose(numpy.sum(g * y), numpy.sum(blur_pool_backward_reference(g, x.shape, k, s) * x))


@pytest.mark.parametrize("seed", range(6))
def test_reference_matches_kornia(seed):
    torch = pytest.importorskip("torch")
    filters = pytest.importorskip("kornia.filters")
    rng = numpy.random.default_rng(100 + seed)
    k, s, m = int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) * 0.5  # distinct: one argmax per window
    for max_step in (False, True):
        t = torch.tensor(x, requires_grad=True)
        y = filters.max_blur_pool2d(t, k, s, m) if max_step else filters.blur_pool2d(t, k, s)
        g = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(g))
        if max_step:
            ours = max_blur_pool_reference(x, k, (s, s), (m, m)), max_blur_pool_backward_reference(g, x, k, (s, s), (m, m))
        else:
            ours = blur_pool_reference(x, k, (s, s)), blur_pool_backward_reference(g, x.shape, k, (s, s))
        numpy.testing.assert_allclose(ours[0], y.detach().numpy(), rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(ours[1], t.grad.numpy(), rtol=1e-12, atol=1e-12)
