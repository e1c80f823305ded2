r"""DynOPool as a layer, and the complexity (GMACs) loss that keeps it from growing the maps.

A :class:`DynOPool` layer owns the learnable ``alpha = (alpha_h, alpha_w)`` of
:func:`poolref.dynopool2d`. Besides its output it records, in :attr:`DynOPool.size`, the
*straight-through* size of that output: a Tensor whose value is the integer size ``(H_out, W_out)``
and whose gradient is that of the continuous size ``in_size / alpha``. Hand a layer's ``size`` to the
next DynOPool as its ``in_size`` and the sizes form a chain: the size of any later feature map then
has a gradient with respect to every upstream ``alpha``. :func:`gmacs_loss` turns those sizes into
the paper's complexity term (docs/dynopool.rst, "The definition": "The size chain and the complexity loss"),

.. math:: L_{gmacs} = \sum_l \frac{H_l W_l}{H_{l,0} W_{l,0}}\, \mathrm{GMACs}_l ,

which grows when a layer's input grows, so that ``L_task + lambda * L_gmacs`` trades accuracy for
computation.
"""

from __future__ import annotations

import math
import numpy

from .._backend import array_module
from ..autograd.tensor import Tensor
from ..ops.dynopool import dynopool2d, dynopool_output_size, straight_through_size
from .module import Module, Parameter

__all__ = ["DynOPool", "straight_through_size", "gmacs_loss", "conv2d_gmacs"]


# ==================================================================================================
# The layer
# ==================================================================================================
class DynOPool(Module):
    r"""A learnable resize: :func:`poolref.dynopool2d` with its own ``alpha``.

    Parameters
    ----------
    init_alpha : (float, float)
        The initial ``(alpha_h, alpha_w)``; ``(2, 2)`` starts as a 2 x 2 max pool.
    aggregate : {"max", "avg"}
    dtype : numpy dtype
        Of ``alpha`` (float64 by default: the straight-through gradient is a sum over the whole map).

    Attributes
    ----------
    alpha : Parameter, shape (2,)
    size : Tensor, shape (2,), or None
        After a forward: the straight-through size of the output, ``round(in_size / alpha)`` with the
        gradient of ``in_size / alpha``.

    Examples
    --------
    Two DynOPools in a row, the second told the first's size:

    >>> import numpy as np
    >>> from poolref.nn import DynOPool
    >>> first, second = DynOPool((2.0, 2.0)), DynOPool((1.5, 1.0))
    >>> y = second(first(np.zeros((1, 3, 12, 8))), in_size=first.size)
    >>> y.shape, second.size.data
    ((1, 3, 4, 4), array([4., 4.]))
    """

    def __init__(self, init_alpha=(2.0, 2.0), aggregate="max", *, dtype=numpy.float64):
        super().__init__()
        try:
            alpha = numpy.asarray(init_alpha, dtype=dtype)
        except (TypeError, ValueError):  # not numbers ('a', 1j, an object)
            alpha = None
        if alpha is None or alpha.shape != (2,) or not numpy.all(numpy.isfinite(alpha)) or not numpy.all(alpha > 0):
            raise ValueError(f"DynOPool: init_alpha must be two finite numbers > 0, got init_alpha={init_alpha!r}")
        if aggregate not in ("max", "avg"):
            raise ValueError(f"DynOPool: aggregate must be 'max' or 'avg', got aggregate={aggregate!r}")
        self.alpha = Parameter(alpha)
        self.aggregate = aggregate
        self.size = None

    def forward(self, x, in_size=None):
        """``y = dynopool2d(x, alpha)``; sets :attr:`size`. ``in_size`` is the straight-through size of
        ``x`` from an upstream DynOPool (its value must be ``x``'s spatial size)."""
        H, W = x.shape[-2:]
        if in_size is None:
            in_size = numpy.array([H, W], dtype=self.alpha.dtype)  # a constant: nothing upstream learns
        else:
            value = in_size.data if isinstance(in_size, Tensor) else in_size
            if [float(v) for v in array_module(value).asarray(value).tolist()] != [H, W]:
                raise ValueError(f"DynOPool: in_size must be the spatial size of x, ({H}, {W}), got in_size={value!r}")
        y = dynopool2d(x, self.alpha, aggregate=self.aggregate)
        self.size = straight_through_size(in_size / self.alpha, size=y.shape[-2:])
        return y

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """The integer output size for an (H, W) input at the current alpha."""
        alpha_h, alpha_w = (float(a) for a in numpy.asarray(self.alpha.data).tolist())
        return dynopool_output_size(H, alpha_h), dynopool_output_size(W, alpha_w)

    def extra_repr(self) -> str:
        alpha = ", ".join(f"{float(a):.4g}" for a in numpy.asarray(self.alpha.data).tolist())
        return f"alpha=({alpha}), aggregate={self.aggregate!r}"


# ==================================================================================================
# The complexity loss
# ==================================================================================================
def conv2d_gmacs(in_channels: int, out_channels: int, kernel_size, out_h: int, out_w: int) -> float:
    r"""Multiply-accumulates of one convolution, per example, in units of 1e9.

    :math:`C_{in} C_{out} k_h k_w H_{out} W_{out} / 10^9`.

    >>> conv2d_gmacs(16, 32, 3, 16, 4)
    0.000294912
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return in_channels * out_channels * kh * kw * out_h * out_w / 1e9


def gmacs_loss(sizes, base_sizes, gmacs):
    r"""The complexity term :math:`\sum_l \frac{H_l W_l}{H_{l,0} W_{l,0}} \mathrm{GMACs}_l`.

    Parameters
    ----------
    sizes : sequence of Tensor or array, each shape (2,)
        The spatial size ``(H_l, W_l)`` each layer works on now: a :attr:`DynOPool.size` (Tensors
        carry the straight-through gradient to every upstream ``alpha``) or a constant.
    base_sizes : sequence of (int, int)
        ``(H_l0, W_l0)``, the same sizes at initialisation.
    gmacs : sequence of float
        Each layer's multiply-accumulates at initialisation, in units of 1e9
        (:func:`conv2d_gmacs`).

    Returns
    -------
    Tensor or float array, shape ()
        Backward: :math:`\partial L/\partial H_l = W_l\, \mathrm{GMACs}_l / (H_{l,0} W_{l,0})` and
        likewise for :math:`W_l`, then through each size's own backward to the alphas.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import gmacs_loss
    >>> float(gmacs_loss([np.array([8.0, 4.0])], [(16, 4)], [0.5]))  # half the area: half the cost
    0.25
    """
    if not (len(sizes) == len(base_sizes) == len(gmacs)):
        raise ValueError(
            f"gmacs_loss: sizes, base_sizes and gmacs must have one entry per layer, got lengths "
            f"{len(sizes)}, {len(base_sizes)}, {len(gmacs)}"
        )
    total = None
    for size, (H0, W0), cost in zip(sizes, base_sizes, gmacs):
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"gmacs_loss: each gmacs must be finite and >= 0, got gmacs={list(gmacs)!r}")
        term = size[0] * size[1] * (cost / (H0 * W0))  # (H_l W_l) / (H_l0 W_l0) * GMACs_l
        total = term if total is None else total + term
    return total if total is not None else numpy.zeros(())
