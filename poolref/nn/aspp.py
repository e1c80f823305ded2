r"""Atrous spatial pyramid pooling (ASPP), the head of DeepLab v3 (Chen et al. 2017), as torchvision
builds it (``torchvision.models.segmentation.deeplabv3.ASPP``), from poolref's own layers.

ASPP looks at every position through several fields of view at once. Parallel branches read the
same feature map:

* a 1x1 convolution (BatchNorm, ReLU);
* one 3x3 *atrous* (dilated) convolution per rate ``r``, padded by ``r`` so the map keeps its size
  (BatchNorm, ReLU): its taps are ``r`` pixels apart, a field of view of ``2r + 1`` for nine weights;
* *image pooling*: a global average pool, a 1x1 convolution (BatchNorm, ReLU), and a bilinear
  upsampling of the 1x1 result back to the map's size (``align_corners=False``: a constant map), so
  every position also sees a summary of the whole image.

The branches are concatenated along the channels and projected by a 1x1 convolution (BatchNorm,
ReLU, Dropout(0.5)). Every piece is a poolref op with its own hand-written backward (conv2d,
batch_norm, relu, adaptive_avg_pool2d, interpolate, concat, dropout), so the module's gradient is
theirs, chained by the tape. Parameter names follow torchvision's (``convs.1.0.weight``,
``project.1.bias``, ...), so its weights copy across by name.
"""

from __future__ import annotations

import numbers

import numpy

from .._checks import random_generator
from ..ops.sampling import interpolate
from .functional import concat
from .layers import AdaptiveAvgPool2d, Conv2d, Dropout, ReLU, Sequential
from .module import Module
from .normalization import BatchNorm2d

__all__ = ["ASPP", "ASPPConv", "ASPPPooling"]


class ASPPConv(Sequential):
    r"""One atrous branch: a 3x3 convolution of dilation and padding ``rate`` (no bias), BatchNorm2d,
    ReLU (torchvision's ``ASPPConv``). The output has the input's height and width."""

    def __init__(self, in_channels, out_channels, rate, *, rng=None, dtype=numpy.float32):
        conv = Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False, rng=rng, dtype=dtype)
        super().__init__(conv, BatchNorm2d(out_channels, dtype=dtype), ReLU())


class ASPPPooling(Sequential):
    r"""The image-pooling branch: global average pool, 1x1 convolution (no bias), BatchNorm2d, ReLU,
    then bilinear upsampling (``align_corners=False``) of the (N, C, 1, 1) result to the input's
    height and width (torchvision's ``ASPPPooling``).

    In training its BatchNorm sees one value per channel and image, so it needs a batch of at least
    two images, as in PyTorch."""

    def __init__(self, in_channels, out_channels, *, rng=None, dtype=numpy.float32):
        conv = Conv2d(in_channels, out_channels, 1, bias=False, rng=rng, dtype=dtype)
        super().__init__(AdaptiveAvgPool2d(1), conv, BatchNorm2d(out_channels, dtype=dtype), ReLU())

    def forward(self, x):
        size = tuple(x.shape[-2:])
        pooled = super().forward(x)  # (N, C_out, 1, 1)
        # From one pixel, bilinear interpolation copies it everywhere; its backward sums the gradient
        # over the map back onto that pixel.
        return interpolate(pooled, size=size, mode="bilinear", align_corners=False)


class ASPP(Module):
    r"""Atrous spatial pyramid pooling (DeepLab v3), as ``torchvision.models.segmentation.deeplabv3.ASPP``.

    Parameters
    ----------
    in_channels : int
    out_channels : int
        Channels of each branch and of the output (torchvision's default is 256).
    rates : sequence of int
        Dilation of each atrous 3x3 branch (DeepLab v3's (6, 12, 18) at output stride 16; (12, 24,
        36) at output stride 8).
    dropout : float, keyword-only
        Dropout probability after the projection (0.5 in torchvision; 0 to switch it off).
    rng : numpy.random.Generator, int or None, keyword-only
        Source of the initial weights and of the dropout masks.
    dtype : numpy dtype, keyword-only
        Of the parameters (float32, PyTorch's default).

    Attributes
    ----------
    convs : list of Module
        ``convs[0]`` the 1x1 branch (Conv2d, BatchNorm2d, ReLU), ``convs[1 .. len(rates)]`` the
        :class:`ASPPConv` branches, ``convs[-1]`` the :class:`ASPPPooling` branch.
    project : Sequential
        Conv2d(``(len(rates) + 2) * out_channels`` -> ``out_channels``, 1x1, no bias), BatchNorm2d,
        ReLU, Dropout.

    Notes
    -----
    Forward, with :math:`B_k` the branches and :math:`[\cdot]` the concatenation along channels:

    .. math:: y = \mathrm{Drop}\big(\mathrm{ReLU}(\mathrm{BN}(W_p * [B_0(x), B_{r_1}(x), \dots, B_{pool}(x)]))\big)

    Backward: the tape runs each piece's backward in reverse order; the concatenation's backward
    splits the gradient into the branches, and :math:`\partial L/\partial x` is the sum of the
    branches' input gradients. In training the BatchNorms normalise by the batch (and update their
    running estimates) and dropout is active; ``model.eval()`` switches both, as in PyTorch.

    Input is (N, C, H, W) (BatchNorm2d needs a batch axis); in training N >= 2 (the pooling
    branch's BatchNorm sees one value per image).

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import ASPP
    >>> model = ASPP(4, 8, rates=(1, 2), rng=0).eval()
    >>> x = np.random.default_rng(0).standard_normal((1, 4, 5, 6)).astype(np.float32)
    >>> model(x).shape
    (1, 8, 5, 6)
    >>> [name for name, _ in model.named_parameters()][:4]
    ['convs.0.0.weight', 'convs.0.1.weight', 'convs.0.1.bias', 'convs.1.0.weight']
    """

    def __init__(self, in_channels, out_channels, rates=(6, 12, 18), *, dropout=0.5, rng=None, dtype=numpy.float32):
        super().__init__()
        if isinstance(rates, numbers.Integral) or not isinstance(rates, (list, tuple)) or any(
                isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1 for r in rates):
            raise ValueError(f"ASPP: rates must be a sequence of positive ints, got rates={rates!r}")
        rng = random_generator(rng, "ASPP")
        self.rates = tuple(int(r) for r in rates)
        one_by_one = Sequential(Conv2d(in_channels, out_channels, 1, bias=False, rng=rng, dtype=dtype),
                                BatchNorm2d(out_channels, dtype=dtype), ReLU())
        atrous = [ASPPConv(in_channels, out_channels, r, rng=rng, dtype=dtype) for r in self.rates]
        self.convs = [one_by_one] + atrous + [ASPPPooling(in_channels, out_channels, rng=rng, dtype=dtype)]
        self.project = Sequential(
            Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False, rng=rng, dtype=dtype),
            BatchNorm2d(out_channels, dtype=dtype), ReLU(), Dropout(dropout, rng=rng))

    def forward(self, x):
        branches = [branch(x) for branch in self.convs]  # each (N, out_channels, H, W)
        return self.project(concat(branches, axis=1))  # (N, (len(rates) + 2) * out_channels, H, W) -> (N, out_channels, H, W)

    def extra_repr(self) -> str:
        return f"rates={self.rates}"
