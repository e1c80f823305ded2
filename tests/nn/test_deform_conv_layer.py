"""poolref.nn.DeformConv2d: DCN's layer (an offset- and mask-predicting convolution, then deform_conv2d)
against the same module composed in torch with copied weights; its start as a plain convolution;
one training step lowers a loss; bad arguments."""

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.autograd import Tensor
from poolref.nn import SGD, Conv2d, DeformConv2d
from poolref.ops.deform_conv import deform_conv2d
from poolref.testing import assert_matches


def torch_twin(torch, layer: DeformConv2d):
    """The same layer written in torch: two nn.Conv2d predictors and the deform_conv2d composition."""
    from poolref.testing.torch_compositions import deform_conv2d_by_gather

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor(layer.weight.data))
            self.bias = None if layer.bias is None else torch.nn.Parameter(torch.tensor(layer.bias.data))
            kwargs = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
            self.offset_conv = torch.nn.Conv2d(layer.in_channels, layer.offset_conv.out_channels, layer.kernel_size, **kwargs)
            self.mask_conv = None
            if layer.mask_conv is not None:
                self.mask_conv = torch.nn.Conv2d(layer.in_channels, layer.mask_conv.out_channels, layer.kernel_size, **kwargs)

        def forward(self, x):
            offset = self.offset_conv(x)
            mask = None if self.mask_conv is None else torch.sigmoid(self.mask_conv(x))
            return deform_conv2d_by_gather(torch, x, offset, self.weight, self.bias, layer.stride, layer.padding,
                                           layer.dilation, mask=mask)

    return Twin().double()


@pytest.mark.parametrize("args, kwargs", [
    ((2, 3, 3), dict(padding=1)),
    ((4, 4, (2, 3)), dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1), groups=2, offset_groups=2, modulated=True)),
    ((2, 2, 3), dict(bias=False, modulated=True)),
])
def test_layer_matches_torch_with_the_same_weights(args, kwargs):
    torch = torch_or_skip()
    layer = DeformConv2d(*args, **kwargs, rng=0, dtype=numpy.float64)
    rng = numpy.random.default_rng(1)
    for conv in (layer.offset_conv, layer.mask_conv):  # trained predictors: offsets of a pixel or so
        if conv is not None:
            conv.weight.data = rng.normal(scale=0.5, size=conv.weight.shape)
            conv.bias.data = rng.normal(scale=0.5, size=conv.bias.shape)
    twin = torch_twin(torch, layer)
    twin.load_state_dict({name: torch.tensor(p.data) for name, p in layer.named_parameters()})
    x = rng.standard_normal((2, args[0], 6, 7))
    tx = to_torch(x, True)
    ty = twin(tx)
    ox = Tensor(x, requires_grad=True)
    oy = layer(ox)
    assert_matches(oy.data, ty.detach().numpy(), rtol=1e-11, atol=1e-12)
    g = rng.standard_normal(oy.shape)
    ty.backward(torch.from_numpy(g))
    oy.backward(g)
    assert_matches(ox.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12, what="grad x")
    torch_grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    assert [name for name, _ in layer.named_parameters()] == list(torch_grads)
    for name, p in layer.named_parameters():
        assert_matches(p.grad, torch_grads[name], rtol=1e-10, atol=1e-12, what=f"grad {name}")


@pytest.mark.parametrize("modulated", [False, True])
def test_the_layer_starts_as_a_plain_convolution(modulated):
    # DCN zero-initialises the predictors: no offsets, and masks of sigmoid(0) = 1/2
    layer = DeformConv2d(3, 2, 3, padding=1, modulated=modulated, rng=0, dtype=numpy.float64)
    plain = Conv2d(3, 2, 3, padding=1, rng=0, dtype=numpy.float64)
    plain.weight.data, plain.bias.data = layer.weight.data.copy(), layer.bias.data.copy()
    x = numpy.random.default_rng(2).standard_normal((2, 3, 5, 6))
    scale = 0.5 if modulated else 1.0
    without_bias = layer(x).data - layer.bias.data[:, None, None]
    want = plain(x).data - plain.bias.data[:, None, None]
    assert_matches(without_bias, scale * want, rtol=1e-12, atol=1e-12)


def test_one_training_step_moves_the_offsets_and_lowers_the_loss():
    # a target that is the input shifted by half a pixel: only moving the samples can fit it
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((4, 1, 8, 8))
    x = (x + numpy.roll(x, 1, axis=2) + numpy.roll(x, 1, axis=3)) / 3  # smooth enough to follow
    offset = numpy.zeros((4, 2, 8, 8))
    offset[:, 1] = 0.5
    target = deform_conv2d(x, offset, numpy.ones((1, 1, 1, 1)))
    layer = DeformConv2d(1, 1, 1, bias=False, modulated=True, rng=0, dtype=numpy.float64)
    layer.weight.data[...] = 1.0
    optimizer = SGD(layer.parameters(), lr=0.5)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.data))
    assert losses[2] < losses[1] < losses[0]
    assert numpy.abs(layer.offset_conv.bias.data).max() > 0  # the offsets learnt something


@pytest.mark.parametrize("kwargs, words", [
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "in_channels must be divisible by groups"),
    (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "out_channels must be divisible by groups"),
    (dict(in_channels=4, out_channels=4, kernel_size=3, offset_groups=3), "in_channels must be divisible by offset_groups"),
    (dict(in_channels=0, out_channels=4, kernel_size=3), "in_channels=0"),
    (dict(in_channels=2, out_channels=4, kernel_size=0), "kernel_size=0"),
])
def test_bad_arguments_are_refused(kwargs, words):
    with pytest.raises(ValueError) as info:
        DeformConv2d(**kwargs)
    assert words in str(info.value)
