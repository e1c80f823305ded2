r"""Layers: Conv2d, DeformConv2d, Linear, ReLU, Dropout, Flatten, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d
and Sequential.

Each layer is a thin :class:`~poolref.nn.module.Module` around a functional op: the math and its
backward live in the op (``poolref.ops``), the layer only owns the weights and the settings.
Weights are initialised as PyTorch does (Kaiming-uniform with ``a = sqrt(5)``), drawn from a seeded
numpy Generator so that a model is reproducible.
"""

from __future__ import annotations

import math

import numpy

from .._checks import check_axis, check_flag, check_parameter_size, check_positive_int, is_int, random_generator
from .._geometry import as_int_tuple
from .._windows import check_padding_mode
from ..ops.adaptive import adaptive_avg_pool2d
from ..ops.convolution import conv2d
from ..ops.deform_conv import deform_conv2d
from ..ops.window import avg_pool2d, max_pool2d
from .functional import dropout, relu, sigmoid
from .module import Module, Parameter

__all__ = ["Conv2d", "DeformConv2d", "Linear", "ReLU", "Dropout", "Flatten", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "Sequential"]


def _generator(rng) -> numpy.random.Generator:
    """A numpy Generator from None (fresh entropy), a seed, or a Generator (used as is)."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


def _check_divisible(layer: str, divisor: int, divisor_name: str, **counts) -> None:
    """Each of ``counts`` (``in_channels=..``) divisible by ``divisor``, as torch.nn.Conv2d requires."""
    for name, value in counts.items():
        if value % divisor:
            raise ValueError(f"{layer}: {name} must be divisible by {divisor_name}, got {name}={value} and {divisor_name}={divisor}")


def _uniform_init(rng, shape, fan_in: int, dtype):
    r"""PyTorch's default init: :math:`U(-1/\sqrt{fan_{in}}, 1/\sqrt{fan_{in}})`.

    ``kaiming_uniform_(a=sqrt(5))`` draws from :math:`U(-b, b)` with
    :math:`b = \mathrm{gain}\sqrt{3 / fan_{in}}` and :math:`\mathrm{gain} = \sqrt{2 / (1 + a^2)} = \sqrt{1/3}`,
    so :math:`b = 1/\sqrt{fan_{in}}`; the bias uses the same bound.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2d(Module):
    r"""2-D convolution layer: ``y = conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode=...)``.

    With ``stride > 1`` it is the All-CNN's learned replacement for a pooling layer; with a dilation,
    DeepLab's atrous convolution; with ``groups = in_channels``, a depthwise convolution. Arguments in
    ``torch.nn.Conv2d``'s order, with its checks (made at construction, as PyTorch makes them).

    Parameters
    ----------
    in_channels, out_channels : int
        Both divisible by ``groups``.
    kernel_size : int or (int, int)
    stride, padding, dilation
        As for :func:`poolref.ops.convolution.conv2d`; ``padding="same"`` needs stride 1.
    groups : int
        Blocks of channels convolved separately.
    bias : bool
        Whether the layer has a bias.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        What the padding holds (the pads must fit the input at call time: reflect below its size,
        circular at most its size).
    rng : numpy.random.Generator, int or None
        Source of the initial weights (a seed, or a Generator to share between layers).
    dtype : numpy dtype
        Of the parameters (float32, PyTorch's default).

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kH, kW)
        Initialised from :math:`U(-1/\sqrt{fan_{in}}, 1/\sqrt{fan_{in}})`, ``fan_in = in_channels / groups * kH * kW``.
    bias : Parameter, shape (out_channels,), or None
        Same distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Conv2d
    >>> layer = Conv2d(1, 4, 3, stride=2, padding=1, rng=0)
    >>> layer(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape
    (2, 4, 4, 4)
    >>> float(abs(layer.weight.data).max()) <= 1 / 3  # fan_in = 9
    True
    >>> depthwise = Conv2d(4, 8, 3, padding="same", groups=4, padding_mode="reflect", rng=0)
    >>> depthwise.weight.shape, depthwise(np.zeros((1, 4, 5, 5), dtype=np.float32)).shape
    ((8, 1, 3, 3), (1, 8, 5, 5))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", *, rng=None, dtype=numpy.float32):
        super().__init__()
        layer = "Conv2d"
        self.in_channels = check_positive_int(in_channels, "in_channels", layer)
        self.out_channels = check_positive_int(out_channels, "out_channels", layer)
        self.groups = check_positive_int(groups, "groups", layer)
        _check_divisible(layer, self.groups, "groups", in_channels=self.in_channels, out_channels=self.out_channels)
        self.kernel_size = as_int_tuple(kernel_size, 2, "kernel_size", layer)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{layer}: kernel_size must be positive, got kernel_size={kernel_size!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"{layer}: padding must be an int, a tuple, 'same' or 'valid', got padding={padding!r}")
        if padding == "same" and as_int_tuple(stride, 2, "stride", layer) != (1, 1):
            # torch.nn.Conv2d: "padding='same' is not supported for strided convolutions"
            raise ValueError(f"{layer}: padding='same' needs stride 1, got stride={stride!r}")
        self.padding_mode = check_padding_mode(padding_mode, layer)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        bias = check_flag(bias, "bias", layer)
        rng = _generator(rng)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        check_parameter_size(shape, "weight", layer, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
        self.weight = Parameter(_uniform_init(rng, shape, fan_in, dtype))
        self.bias = Parameter(_uniform_init(rng, (self.out_channels,), fan_in, dtype)) if bias else None

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                      padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}"
        )
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class DeformConv2d(Module):
    r"""Deformable convolution layer (DCN, Dai et al. 2017; modulated, DCN v2, Zhu et al. 2019) with its
    own offset-predicting convolution, as DCN uses it.

    ``offset = offset_conv(x)``, a plain convolution with the layer's kernel, stride, padding and
    dilation, so that it predicts one ``(dy, dx)`` per tap and output position; with ``modulated``,
    also ``mask = sigmoid(mask_conv(x))``; then
    ``y = deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)``. Both predicting
    convolutions start at zero (weights and biases), as in DCN: the layer starts as a plain
    convolution (with every mask at 1/2 when modulated) and its sampling points move as the offsets
    learn.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, dilation : int or (int, int)
        As for :func:`poolref.deform_conv2d` (and the predicting convolutions).
    groups : int
        Groups of the deformable convolution's weights; divides both channel counts.
    offset_groups : int
        Groups of channels sharing one set of offsets (and masks); divides ``in_channels``.
    bias : bool
        Whether the deformable convolution has a bias.
    modulated : bool
        Predict a mask too (DCN v2).
    rng : numpy.random.Generator, int or None
        Source of the initial weights.
    dtype : numpy dtype
        Of the parameters.

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kH, kW)
        :math:`U(-1/\sqrt{fan_{in}}, 1/\sqrt{fan_{in}})`, ``fan_in = in_channels / groups * kH * kW``.
    bias : Parameter, shape (out_channels,), or None
    offset_conv : Conv2d, ``in_channels -> 2 * offset_groups * kH * kW``, zero at the start
    mask_conv : Conv2d, ``in_channels -> offset_groups * kH * kW``, zero at the start, or None

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import DeformConv2d
    >>> layer = DeformConv2d(2, 4, 3, padding=1, modulated=True, rng=0)
    >>> x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    >>> layer(x).shape
    (1, 4, 5, 5)
    >>> [name for name, _ in layer.named_parameters()]
    ['weight', 'bias', 'offset_conv.weight', 'offset_conv.bias', 'mask_conv.weight', 'mask_conv.bias']
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, offset_groups=1,
                 bias=True, modulated=False, *, rng=None, dtype=numpy.float32):
        super().__init__()
        layer = "DeformConv2d"
        self.in_channels = check_positive_int(in_channels, "in_channels", layer)
        self.out_channels = check_positive_int(out_channels, "out_channels", layer)
        self.groups = check_positive_int(groups, "groups", layer)
        self.offset_groups = check_positive_int(offset_groups, "offset_groups", layer)
        _check_divisible(layer, self.groups, "groups", in_channels=self.in_channels, out_channels=self.out_channels)
        _check_divisible(layer, self.offset_groups, "offset_groups", in_channels=self.in_channels)
        self.kernel_size = as_int_tuple(kernel_size, 2, "kernel_size", layer)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{layer}: kernel_size must be positive, got kernel_size={kernel_size!r}")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.modulated, bias = check_flag(modulated, "modulated", layer), check_flag(bias, "bias", layer)
        rng = _generator(rng)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        check_parameter_size(shape, "weight", layer, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
        self.weight = Parameter(_uniform_init(rng, shape, fan_in, dtype))
        self.bias = Parameter(_uniform_init(rng, (self.out_channels,), fan_in, dtype)) if bias else None
        taps = math.prod(self.kernel_size)
        geometry = dict(stride=stride, padding=padding, dilation=dilation, rng=rng, dtype=dtype)
        self.offset_conv = Conv2d(self.in_channels, 2 * self.offset_groups * taps, self.kernel_size, **geometry)
        self.mask_conv = Conv2d(self.in_channels, self.offset_groups * taps, self.kernel_size, **geometry) if modulated else None
        for conv in (self.offset_conv, self.mask_conv):
            if conv is not None:  # DCN starts from a plain convolution: no offsets, masks sigmoid(0) = 1/2
                conv.weight.data[...] = 0
                conv.bias.data[...] = 0

    def forward(self, x):
        offset = self.offset_conv(x)
        mask = sigmoid(self.mask_conv(x)) if self.mask_conv is not None else None
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask=mask)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, offset_groups={self.offset_groups}, "
            f"bias={self.bias is not None}, modulated={self.modulated}"
        )


class Linear(Module):
    r"""Affine layer: :math:`y = x W^T + b` over the last axis.

    Built from the tape's arithmetic (``transpose``, ``matmul``, ``add``); the bias add broadcasts
    over the batch, so its backward sums the gradient over the batch (``unbroadcast``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    rng : numpy.random.Generator, int or None
    dtype : numpy dtype

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
        :math:`U(-1/\sqrt{in}, 1/\sqrt{in})`, as PyTorch.
    bias : Parameter, shape (out_features,), or None

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Linear
    >>> layer = Linear(3, 2, rng=0)
    >>> layer.weight.data = np.array([[1., 0., 0.], [0., 1., 1.]], dtype=np.float32)
    >>> layer.bias.data = np.array([0.5, -1.], dtype=np.float32)
    >>> layer(np.array([[1., 2., 3.]], dtype=np.float32))
    Tensor([[1.5, 4. ]], dtype=float32, requires_grad=True)
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=numpy.float32):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features", "Linear")
        self.out_features = check_positive_int(out_features, "out_features", "Linear")
        bias = check_flag(bias, "bias", "Linear")
        rng = _generator(rng)
        shape = (self.out_features, self.in_features)
        check_parameter_size(shape, "weight", "Linear", in_features=in_features, out_features=out_features)
        self.weight = Parameter(_uniform_init(rng, shape, self.in_features, dtype))
        self.bias = Parameter(_uniform_init(rng, (self.out_features,), self.in_features, dtype)) if bias else None

    def forward(self, x):
        y = x @ self.weight.T  # (..., in) @ (in, out) -> (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    r"""Elementwise :math:`\max(x, 0)` (:func:`poolref.nn.functional.relu`)."""

    def forward(self, x):
        return relu(x)


class Dropout(Module):
    r"""Layer form of :func:`poolref.nn.functional.dropout`: drops with probability ``p`` in training,
    the identity in evaluation (``model.eval()``).

    ``rng`` (a Generator, a seed or None) is made a Generator once, here, so successive calls draw
    new masks and a seeded layer repeats its sequence of masks.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Dropout
    >>> layer = Dropout(0.5, rng=0)
    >>> sorted(set(layer(np.ones(8)).tolist())), layer.eval()(np.ones(2))
    ([0.0, 2.0], array([1., 1.]))
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        dropout(numpy.zeros(0), p)  # the checks of p, at construction as PyTorch makes them
        self.p, self.rng = p, random_generator(rng, "Dropout")

    def forward(self, x):
        return dropout(x, self.p, self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    r"""Merge axes ``start_dim`` to ``end_dim`` into one (default: all but the batch axis), as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Flatten
    >>> Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not is_int(value):  # its range is checked against x's axes, at the call
                raise TypeError(f"Flatten: {name} must be an int (an axis), got {name}={value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        start, end = check_axis(self.start_dim, x.ndim, "start_dim", "Flatten"), check_axis(self.end_dim, x.ndim, "end_dim", "Flatten")
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim} for x with {x.ndim} axes")
        shape = tuple(x.shape[:start]) + (math.prod(x.shape[start:end + 1]),) + tuple(x.shape[end + 1:])
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class MaxPool2d(Module):
    r"""Layer form of :func:`poolref.max_pool2d` (same arguments, same defaults)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation = dilation
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode", "MaxPool2d")
        self.return_indices = check_flag(return_indices, "return_indices", "MaxPool2d")

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(Module):
    r"""Layer form of :func:`poolref.avg_pool2d` (same arguments, same defaults)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode", "AvgPool2d")
        self.count_include_pad = check_flag(count_include_pad, "count_include_pad", "AvgPool2d")
        self.divisor_override = divisor_override

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    r"""Layer form of :func:`poolref.adaptive_avg_pool2d` (``output_size=1`` is global average pooling)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Sequential(Module):
    r"""Apply modules in order; parameters are named ``"0.weight"``, ``"1.bias"``, ... as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(4, 8, rng=0), ReLU(), Linear(8, 2, rng=1))
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> model(np.ones((3, 4), dtype=np.float32)).shape
    (3, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: every item must be a Module, got item {i} of type {type(module).__name__}")
        self.layers = list(modules)

    def named_children(self):
        return ((str(i), module) for i, module in enumerate(self.layers))

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for module in self.layers:
            x = module(x)
        return x
