"""Layers against torch.nn with identical weights: forward, input gradient, parameter gradients; init."""

import math

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.autograd import Tensor
from poolref.nn import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Parameter, ReLU, Sequential
from poolref.testing import assert_matches


def run_both(ours, theirs, x, seed=0):
    """Copy theirs' weights into ours, run both on x, backward a random cotangent, compare everything."""
    torch = torch_or_skip()
    theirs = theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    for p in ours.parameters():
        p.data = p.data.astype(numpy.float64)
    tx = to_torch(x, True)
    ty = theirs(tx)
    ox = Tensor(x, requires_grad=True)
    oy = ours(ox)
    assert_matches(oy.data, ty.detach().numpy(), rtol=1e-11, atol=1e-13)
    g = numpy.random.default_rng(seed).standard_normal(oy.shape)
    ty.backward(torch.from_numpy(g))
    oy.backward(g)
    assert_matches(ox.grad, tx.grad.numpy(), rtol=1e-11, atol=1e-13, what="grad x")
    torch_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    our_names = [name for name, _ in ours.named_parameters()]
    assert our_names == list(torch_grads)
    for name, p in ours.named_parameters():
        assert_matches(p.grad, torch_grads[name], rtol=1e-11, atol=1e-13, what=f"grad {name}")


@pytest.mark.parametrize(
    "args, kwargs, x_shape",
    [
        ((3, 4, 3), dict(), (2, 3, 7, 6)),
        ((2, 5, (2, 3)), dict(stride=2, padding=1), (3, 2, 8, 9)),
        ((1, 2, 3), dict(stride=(1, 2), padding=(2, 0), dilation=(1, 2), bias=False), (2, 1, 6, 9)),
        ((2, 3, 3), dict(padding="same"), (2, 2, 5, 5)),
        ((2, 3, 3), dict(stride=2), (2, 6, 6)),  # unbatched
        ((4, 6, 3), dict(padding=1, groups=2, padding_mode="reflect"), (2, 4, 5, 6)),
        ((3, 6, (2, 3)), dict(padding="same", dilation=(3, 1), groups=3, padding_mode="replicate"), (2, 3, 7, 5)),
        ((4, 4, 3), dict(stride=2, padding=(2, 1), groups=4, bias=False, padding_mode="circular"), (4, 6, 5)),
        ((2, 4, 4), dict(padding="same", padding_mode="reflect"), (1, 2, 6, 6)),  # odd total: more after
    ],
)
def test_conv2d_layer_matches_torch(args, kwargs, x_shape):
    torch = torch_or_skip()
    torch.manual_seed(0)
    x = numpy.random.default_rng(1).standard_normal(x_shape)
    run_both(Conv2d(*args, **kwargs, rng=0), torch.nn.Conv2d(*args, **kwargs), x)


@pytest.mark.parametrize("bias, x_shape", [(True, (5, 4)), (False, (5, 4)), (True, (4,)), (True, (2, 3, 4))])
def test_linear_layer_matches_torch_and_bias_gradient_sums_over_the_batch(bias, x_shape):
    torch = torch_or_skip()
    torch.manual_seed(0)
    x = numpy.random.default_rng(2).standard_normal(x_shape)
    run_both(Linear(4, 3, bias, rng=0), torch.nn.Linear(4, 3, bias), x)


def test_relu_flatten_and_pooling_layers_match_torch():
    torch = torch_or_skip()
    x = numpy.random.default_rng(3).standard_normal((2, 3, 7, 8))
    run_both(ReLU(), torch.nn.ReLU(), x)
    run_both(Flatten(), torch.nn.Flatten(), x)
    run_both(Flatten(0, 2), torch.nn.Flatten(0, 2), x)
    run_both(MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), x)
    run_both(MaxPool2d(2, dilation=2), torch.nn.MaxPool2d(2, dilation=2), x)
    run_both(AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), x)
    run_both(AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3), x)


def test_maxpool_layer_with_indices():
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    y, indices = MaxPool2d(2, return_indices=True)(x)
    assert y.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]] and indices.tolist() == [[[[5, 7], [13, 15]]]]


def test_small_cnn_matches_torch_sequential():
    torch = torch_or_skip()
    torch.manual_seed(4)
    ours = Sequential(
        Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(4, 6, 3, stride=2, padding=1), ReLU(), AvgPool2d(2),
        Flatten(), Linear(6, 5),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(6, 5),
    )
    run_both(ours, theirs, numpy.random.default_rng(5).standard_normal((3, 1, 8, 8)))


# ----- initialisation -----
@pytest.mark.parametrize("make, fan_in", [(lambda rng: Conv2d(8, 64, 3, rng=rng), 72), (lambda rng: Linear(50, 200, rng=rng), 50),
                                          (lambda rng: Conv2d(8, 64, 3, groups=4, rng=rng), 18)])
def test_init_follows_torch_kaiming_uniform_bound(make, fan_in):
    torch = torch_or_skip()
    bound = 1 / math.sqrt(fan_in)
    layer = make(0)
    torch.manual_seed(0)
    torch_layer = {72: lambda: torch.nn.Conv2d(8, 64, 3), 50: lambda: torch.nn.Linear(50, 200),
                   18: lambda: torch.nn.Conv2d(8, 64, 3, groups=4)}[fan_in]()
    for ours, theirs in ((layer.weight.data, torch_layer.weight), (layer.bias.data, torch_layer.bias)):
        theirs = theirs.detach().numpy()
        assert ours.dtype == theirs.dtype == numpy.float32 and ours.shape == theirs.shape
        # both uniform on [-bound, bound]: every value inside, the extremes close to it
        for values in (ours, theirs):
            assert numpy.abs(values).max() <= bound
        if ours.size > 1000:  # the weights: enough values to pin the distribution
            for values in (ours, theirs):
                assert numpy.abs(values).max() > 0.99 * bound
                assert abs(values.std() - bound / math.sqrt(3)) < 0.03 * bound
                assert abs(values.mean()) < 0.03 * bound


def test_init_is_reproducible_from_a_seed_or_a_generator():
    a, b, c = Conv2d(2, 3, 3, rng=7), Conv2d(2, 3, 3, rng=7), Conv2d(2, 3, 3, rng=8)
    numpy.testing.assert_array_equal(a.weight.data, b.weight.data)
    numpy.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not numpy.array_equal(a.weight.data, c.weight.data)
    shared = numpy.random.default_rng(0)
    first, second = Linear(3, 3, rng=shared), Linear(3, 3, rng=shared)  # one generator: different draws
    assert not numpy.array_equal(first.weight.data, second.weight.data)
    assert Linear(3, 2, rng=0, dtype=numpy.float64).weight.dtype == numpy.float64
    assert isinstance(a.weight, Parameter) and Conv2d(2, 3, 3, bias=False).bias is None


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Conv2d(0, 3, 3), ["in_channels", "0"]),
        (lambda: Conv2d(2, 3, 0), ["kernel_size", "0"]),
        (lambda: Linear(3, -1), ["out_features", "-1"]),
        (lambda: Linear(2.5, 1), ["in_features", "2.5"]),
        (lambda: Conv2d(4, 6, 3, groups=0), ["groups", "0"]),
        (lambda: Conv2d(4, 6, 3, groups=3), ["in_channels", "groups", "in_channels=4", "groups=3"]),
        (lambda: Conv2d(4, 6, 3, groups=4), ["out_channels", "groups", "out_channels=6", "groups=4"]),
        (lambda: Conv2d(4, 6, 3, padding="same", stride=2), ["padding='same'", "stride", "2"]),
        (lambda: Conv2d(4, 6, 3, padding="full"), ["padding", "'full'"]),
        (lambda: Conv2d(4, 6, 3, padding_mode="mirror"), ["padding_mode", "'mirror'"]),
    ],
)
def test_layer_arguments_are_checked(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)
