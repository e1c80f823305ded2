"""batch_norm and nn.BatchNorm2d: PyTorch's training and evaluation rules (biased variance to normalise,
unbiased to update the running estimates, momentum and momentum=None, eps), outputs and every gradient
against torch.nn.BatchNorm2d, gradcheck + adjoint in both modes, NaN, float16, empty batches, bad input."""

import numpy
import pytest

from helpers import torch_or_skip
from poolref.autograd import Tensor, adjoint_test, gradcheck, vjp
from poolref.nn import BatchNorm2d, batch_norm
from poolref.testing import assert_matches


def plane_loop_batch_norm(x, mean, var, weight, bias, eps):
    """The definition, one channel at a time: (x - mean) / sqrt(var + eps) * weight + bias."""
    y = numpy.empty_like(x)
    for c in range(x.shape[1]):
        y[:, c] = (x[:, c] - mean[c]) / numpy.sqrt(var[c] + eps) * weight[c] + bias[c]
    return y


def test_training_normalises_by_the_biased_variance_and_updates_with_the_unbiased_one():
    rng = numpy.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (3, 2, 4, 5))
    weight, bias = rng.normal(1, 0.3, 2), rng.normal(0, 0.3, 2)
    running_mean, running_var = numpy.array([0.5, -0.5]), numpy.array([2.0, 0.5])
    y = batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.25, eps=1e-3)
    mean, biased = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    numpy.testing.assert_allclose(y, plane_loop_batch_norm(x, mean, biased, weight, bias, 1e-3), rtol=1e-12)
    numpy.testing.assert_allclose(running_mean, 0.75 * numpy.array([0.5, -0.5]) + 0.25 * mean, rtol=1e-14)
    unbiased = x.var(axis=(0, 2, 3), ddof=1)  # M / (M - 1) times the biased variance, M = 60
    numpy.testing.assert_allclose(running_var, 0.75 * numpy.array([2.0, 0.5]) + 0.25 * unbiased, rtol=1e-14)


def test_evaluation_normalises_by_the_running_estimates_and_leaves_them():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 3))
    mean, var = rng.normal(0, 1, 3), rng.uniform(0.5, 2, 3)
    before = (mean.copy(), var.copy())
    y = batch_norm(x, mean, var, numpy.ones(3), numpy.zeros(3), training=False)
    numpy.testing.assert_allclose(y, plane_loop_batch_norm(x, mean, var, numpy.ones(3), numpy.zeros(3), 1e-5), rtol=1e-13)
    assert (mean == before[0]).all() and (var == before[1]).all()


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_gradcheck_float64(training, affine):
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((2, 3, 2, 3))
    mean, var = rng.normal(0, 1, 3), rng.uniform(0.5, 2, 3)
    params = (rng.normal(1, 0.3, 3), rng.normal(0, 0.3, 3)) if affine else (None, None)

    def fn(x, weight, bias):
        return batch_norm(x, mean.copy(), var.copy(), weight, bias, training=training)

    assert gradcheck(fn, x, *params, rtol=1e-6)
    assert adjoint_test(fn, x, *params)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("dtype, rtol, atol", [(numpy.float64, 1e-11, 1e-12), (numpy.float32, 2e-5, 2e-6)])
def test_batchnorm2d_matches_torch_over_training_steps_then_evaluation(momentum, dtype, rtol, atol):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(3)
    theirs = torch.nn.BatchNorm2d(3, eps=1e-4, momentum=momentum).to(getattr(torch, numpy.dtype(dtype).name))
    ours = BatchNorm2d(3, eps=1e-4, momentum=momentum, dtype=dtype)
    weight, bias = rng.normal(1, 0.3, 3).astype(dtype), rng.normal(0, 0.3, 3).astype(dtype)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(weight))
        theirs.bias.copy_(torch.from_numpy(bias))
    ours.load_state_dict({"weight": weight, "bias": bias})
    for step, training in enumerate([True, True, True, False]):
        ours.train(training), theirs.train(training)
        x = rng.normal(step, 1 + step, (2, 3, 4, 3)).astype(dtype)
        g = rng.standard_normal(x.shape).astype(dtype)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.from_numpy(g))
        px = Tensor(x, requires_grad=True)
        py = ours(px)
        py.backward(g)
        assert_matches(py.data, ty.detach().numpy(), rtol=rtol, atol=atol)
        assert_matches(px.grad, tx.grad.numpy(), rtol=rtol, atol=atol, what="grad_x")
        assert_matches(ours.weight.grad, theirs.weight.grad.numpy(), rtol=rtol, atol=atol, what="grad_weight")
        assert_matches(ours.bias.grad, theirs.bias.grad.numpy(), rtol=rtol, atol=atol, what="grad_bias")
        assert_matches(ours.running_mean, theirs.running_mean.numpy(), rtol=rtol, atol=atol, what="running_mean")
        assert_matches(ours.running_var, theirs.running_var.numpy(), rtol=rtol, atol=atol, what="running_var")
        assert ours.num_batches_tracked == int(theirs.num_batches_tracked)
        ours.zero_grad(), theirs.zero_grad()


def test_batchnorm2d_float16_matches_torch():
    torch = torch_or_skip()
    x = numpy.random.default_rng(4).normal(3, 2, (2, 2, 3, 3)).astype(numpy.float16)
    theirs, ours = torch.nn.BatchNorm2d(2).half(), BatchNorm2d(2, dtype=numpy.float16)
    y = ours(x)
    assert y.dtype == numpy.float16
    assert_matches(y.data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=2e-3, atol=2e-3)
    assert_matches(ours.running_var, theirs.running_var.numpy(), rtol=2e-3, atol=2e-3)


def test_batch_norm_nan_spreads_over_its_own_channel_only_as_in_torch():
    torch = torch_or_skip()
    x = numpy.random.default_rng(5).standard_normal((2, 2, 2, 2))
    x[1, 0, 1, 1] = numpy.nan
    theirs = torch.nn.BatchNorm2d(2).double()
    ours = BatchNorm2d(2, dtype=numpy.float64)
    y, pullback = vjp(lambda x: ours(x), x)
    ty = theirs(torch.tensor(x))
    assert numpy.isnan(y[:, 0]).all() and not numpy.isnan(y[:, 1]).any()
    assert_matches(y, ty.detach().numpy(), rtol=1e-12)
    assert numpy.isnan(ours.running_mean[0]) and numpy.isnan(theirs.running_mean[0].item())
    grad = pullback(numpy.ones_like(x))[0]
    assert numpy.isnan(grad[:, 0]).all() and numpy.isfinite(grad[:, 1]).all()


def test_batch_norm_empty_batch_leaves_the_running_estimates_as_torch():
    torch = torch_or_skip()
    theirs, ours = torch.nn.BatchNorm2d(3), BatchNorm2d(3)
    y = ours(numpy.zeros((0, 3, 2, 2), numpy.float32))
    theirs(torch.zeros(0, 3, 2, 2))
    assert y.shape == (0, 3, 2, 2)
    assert ours.running_mean.tolist() == theirs.running_mean.tolist() == [0.0] * 3
    assert ours.running_var.tolist() == theirs.running_var.tolist() == [1.0] * 3
    assert ours.num_batches_tracked == int(theirs.num_batches_tracked) == 1


def test_batchnorm2d_without_running_estimates_normalises_by_the_batch_in_evaluation():
    layer = BatchNorm2d(1, track_running_stats=False, affine=False, dtype=numpy.float64).eval()
    y = layer(numpy.array([[[[1.0, 3.0]]]]))
    numpy.testing.assert_allclose(y, [[[[-1, 1]]]], rtol=1e-5)
    assert layer.parameters() == []


def test_batch_norm_does_not_modify_its_input():
    x = numpy.random.default_rng(6).standard_normal((2, 2, 3, 3))
    x_view = x[:, :, ::-1]  # non-contiguous
    before = x.copy()
    y = batch_norm(x_view, numpy.zeros(2), numpy.ones(2), training=True)
    numpy.testing.assert_allclose(y, batch_norm(numpy.ascontiguousarray(x_view), numpy.zeros(2), numpy.ones(2), training=True))
    assert (x == before).all()


@pytest.mark.parametrize("call, error, words", [
    (lambda: BatchNorm2d(2)(numpy.zeros((1, 2, 1, 1), numpy.float32)), ValueError, "more than 1 value per channel"),
    (lambda: BatchNorm2d(2)(numpy.zeros((2, 4, 4), numpy.float32)), ValueError, "(2, 4, 4)"),
    (lambda: BatchNorm2d(0), ValueError, "num_features=0"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), None, None, training=False), ValueError, "got None"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), numpy.zeros(3), numpy.ones(3)), ValueError, "running_mean"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), numpy.zeros(2), None, training=True), ValueError, "both"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), None, None, numpy.ones(3), training=True), ValueError, "weight"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), None, None, numpy.ones(2, numpy.float32), training=True), TypeError, "float32"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2), int), None, None, training=True), TypeError, "int64"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), None, None, training=1), TypeError, "training=1"),
    (lambda: batch_norm(numpy.zeros((2, 2, 2)), None, None, training=True, eps=-1.0), ValueError, "eps=-1.0"),
])
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_batch_norm_equals_its_loop_reference_forward_and_backward(training, dtype, layout):
    from poolref.reference.normalization import batch_norm_backward_reference, batch_norm_reference

    rng = numpy.random.default_rng(7)
    x = rng.normal(1.0, 2.0, (3, 2, 4, 5)).astype(dtype)
    if layout == "transposed":
        x = numpy.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, a view
    weight, bias = rng.normal(1, 0.3, 2).astype(dtype), rng.normal(0, 0.3, 2).astype(dtype)
    mean, var = rng.normal(0, 1, 2).astype(dtype), rng.uniform(0.5, 2, 2).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y, pullback = vjp(lambda t, w, b: batch_norm(t, mean.copy(), var.copy(), w, b, training=training), x, weight, bias)
    tol = 1e-12 if dtype == numpy.float64 else 2e-5
    assert_matches(y, batch_norm_reference(x, mean, var, weight, bias, training), rtol=tol, atol=tol)
    got = pullback(g)
    want = batch_norm_backward_reference(g, x, mean, var, weight, training)
    for name, a, b in zip(("x", "weight", "bias"), got, want):
        assert_matches(a, b, rtol=tol, atol=tol * 10, what=f"gradient to {name}")


def test_batch_norm_reference_keeps_a_nan_in_its_own_channel():
    from poolref.reference.normalization import batch_norm_reference

    x = numpy.random.default_rng(8).standard_normal((2, 2, 3, 3))
    x[0, 1, 1, 1] = numpy.nan
    y = batch_norm(x, numpy.zeros(2), numpy.ones(2), training=True)
    want = batch_norm_reference(x, numpy.zeros(2), numpy.ones(2), training=True)
    assert numpy.isnan(want[:, 1]).all() and numpy.isfinite(want[:, 0]).all()
    assert_matches(y, want, rtol=1e-12, atol=1e-12)
