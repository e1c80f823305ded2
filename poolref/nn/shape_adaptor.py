r"""Shape Adaptor: a learnable resize that mixes two fixed resizes (Liu et al., ECCV 2020).

Shikun Liu, Zhe Lin, Yilin Wang, Jianming Zhang, Federico Perazzi and Edward Johns, "Shape Adaptor:
A Learnable Resizing Module", ECCV 2020 (arXiv 2008.00892), as the authors' code defines it
(github.com/lorenmt/shape-adaptor, ``model_list.py``: ``ShapeAdaptor``, ``SA_init``;
``model_training.py``: the memory-constraint penalty). A shape adaptor owns one scalar ``alpha``.
Given two fixed resizes of its input, ``x_1 = resize(x, r_1)`` (by default a 2 x 2 max pool,
``r_1 = 0.5``) and ``x_2 = resize(x, r_2)`` (by default ``x`` itself, ``r_2 = 1``), it outputs

.. math::

   \sigma = \mathrm{sigmoid}(\alpha), \qquad s(\alpha) = r_1 + (r_2 - r_1)\,\sigma, \\
   y = (1 - \sigma)\, \mathrm{bilinear}(x_1, S) + \sigma\, \mathrm{bilinear}(x_2, S),

where ``S`` is the output size, ``s(alpha)`` times the size tracked so far, truncated (authors'
"local" structure) or rounded (their "global" structure, used in AutoSC), at least 1, and the
bilinear resizes use ``align_corners=True``. The size is computed from the *value* of ``s(alpha)``
(the authors call ``.item()``): no gradient flows through it. ``alpha`` learns only through the
mixing weights, :math:`\partial y / \partial \alpha = \sigma (1 - \sigma)\,
(\mathrm{bilinear}(x_2, S) - \mathrm{bilinear}(x_1, S))`; a larger ``alpha`` weighs the larger map
more and, through the size, lets the next forward keep a larger map.

The resource constraint is the authors' memory limit: when the product of the adaptors' scales
exceeds a limit, every adaptor's sigmoid is replaced by
:math:`\tilde\sigma = p\,\sigma + \frac{r_1}{r_2 - r_1}(p - 1)`, which makes its scale
:math:`p\, s(\alpha)`, with one factor :math:`p = (\text{limit} / \prod_l s_l)^{1/n}` for all ``n``
adaptors (:func:`shape_adaptor_penalty`): the network's total scale is then exactly the limit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import check_flag, is_real
from ..autograd.function import apply, define_function
from ..ops.sampling import interpolate
from ..ops.window import max_pool2d
from .functional import sigmoid
from .module import Module, Parameter

__all__ = ["ShapeAdaptor", "shape_adaptor_mix", "shape_adaptor_init", "shape_adaptor_penalty"]

STRUCTURES = ("local", "global")


def _halve_by_max_pool(x):
    """The authors' down-sampling branch in VGG: a 2 x 2 max pool (``r_1 = 0.5``)."""
    return max_pool2d(x, 2)


def _identity(x):
    """The authors' other branch: the input itself (``r_2 = 1``)."""
    return x


# ==================================================================================================
# The mix of the two resized branches: a Function of its own
# ==================================================================================================
class MixSaved(NamedTuple):
    low: object  # (N, C, H_out, W_out)
    high: object  # (N, C, H_out, W_out)
    weight: object  # shape (): the (penalised) sigmoid, in its own dtype
    gain: float


def _mix_forward(low, high, weight, *, gain=1.0):
    xp = array_module(low)
    # the weight in the maps' dtype (float16 maps mix in float32), so that the output keeps x's dtype
    compute = xp.promote_types(low.dtype, xp.float32)
    w = xp.asarray(weight, dtype=compute)
    with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN, silently, as in PyTorch
        y = (low.astype(compute) * (gain * (1 - w)) + high.astype(compute) * (gain * w)).astype(low.dtype)
    return y, MixSaved(low, high, weight, gain)


# forward   y = gain ((1 - w) low + w high)
# backward  grad_low = gain (1 - w) g, grad_high = gain w g, grad_w = gain sum(g (high - low))
def _mix_backward(saved: MixSaved, grad_y):
    xp = array_module(grad_y)
    compute = xp.promote_types(grad_y.dtype, xp.float32)
    w = xp.asarray(saved.weight, dtype=compute)
    g = grad_y.astype(compute)
    with numpy.errstate(invalid="ignore"):  # inf - inf and 0 * inf are NaN, silently, as in PyTorch
        grad_low = (g * (saved.gain * (1 - w))).astype(saved.low.dtype)
        grad_high = (g * (saved.gain * w)).astype(saved.high.dtype)
        # dy/dw = gain (high - low): summed over every output element, accumulated in float64
        difference = saved.high.astype(xp.float64) - saved.low.astype(xp.float64)
        grad_weight = xp.asarray(saved.gain * (g.astype(xp.float64) * difference).sum(), dtype=saved.weight.dtype)
    return grad_low, grad_high, grad_weight


MIX = define_function("shape_adaptor_mix", _mix_forward, _mix_backward)


def shape_adaptor_mix(low, high, weight, *, gain=1.0):
    r"""Shape Adaptor's mix of its two resized branches: :math:`y = g\,((1 - w)\, x_1 + w\, x_2)`.

    Parameters
    ----------
    low, high : array or Tensor, same shape
        The two branches, already resized to the output size.
    weight : array or Tensor, shape ()
        :math:`w`, the (penalised) sigmoid of ``alpha``; any real number (the penalty can take it
        below 0).
    gain : float
        :math:`g`: 1, or 2 for the authors' residual form.

    Returns
    -------
    array or Tensor
        Shape and dtype of ``low`` (float16 is mixed in float32). Backward:
        :math:`\partial L/\partial x_1 = g (1 - w)\, \bar y`,
        :math:`\partial L/\partial x_2 = g w\, \bar y`,
        :math:`\partial L/\partial w = g \sum \bar y\, (x_2 - x_1)` (accumulated in float64).

    Examples
    --------
    >>> import numpy as np
    >>> shape_adaptor_mix(np.zeros(3), np.ones(3), np.array(0.25))
    array([0.25, 0.25, 0.25])
    """
    low_data, high_data = (getattr(v, "data", v) for v in (low, high))
    if low_data.shape != high_data.shape:
        raise ValueError(f"shape_adaptor_mix: low and high must have one shape, got {low_data.shape} and {high_data.shape}")
    if getattr(weight, "shape", ()) != ():
        raise ValueError(f"shape_adaptor_mix: weight must be a scalar (shape ()), got shape {weight.shape}")
    return apply(MIX, low, high, weight, gain=float(gain))


# ==================================================================================================
# The layer
# ==================================================================================================
class ShapeAdaptor(Module):
    r"""A learnable resize between two fixed ones: Shape Adaptor (Liu et al., ECCV 2020).

    Parameters
    ----------
    init_alpha : float
        The initial ``alpha`` (:func:`shape_adaptor_init` gives the authors' choice); ``0`` starts
        halfway, ``s = (r_1 + r_2) / 2``.
    r1, r2 : float
        The scales of the two branches, ``0 < r1 < r2``.
    low, high : callable or None
        ``x -> resize(x, r1)`` and ``x -> resize(x, r2)``. By default, for ``r1 = 0.5`` a 2 x 2 max
        pool and for ``r2 = 1`` the identity, as in the authors' networks; other scales need them.
    structure : {"local", "global"}
        How the tracked size is rounded: "local" truncates it (``int``) at every adaptor, the
        authors' standard mode (an adaptor drops at least one row once ``s < 1``); "global" keeps
        it real and rounds (Python's ``round``) only the output size (their AutoSC mode).
    residual : bool
        The authors' residual form, ``2 (1 - sigma) x_1 + 2 sigma x_2`` (ResNet blocks).
    dtype : numpy dtype
        Of ``alpha``.

    Attributes
    ----------
    alpha : Parameter, shape ()
    size : (float, float) or None
        After a forward: the size tracked for the next adaptor (its ``in_size``): integers in
        "local" structure, reals in "global".
    true_scale : float or None
        After a forward: ``s(alpha)`` without the penalty (the authors' ``current_dim_true``
        factor), read by :func:`shape_adaptor_penalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import ShapeAdaptor
    >>> first, second = ShapeAdaptor(0.0), ShapeAdaptor(0.0)  # s = 0.75 each
    >>> y = second(first(np.ones((1, 2, 32, 8))), in_size=first.size)
    >>> y.shape, first.size, second.size  # int(32 * 0.75) = 24, int(24 * 0.75) = 18
    ((1, 2, 18, 4), (24, 6), (18, 4))
    >>> float(y.data.max())  # both branches of a constant map are that constant
    1.0
    """

    def __init__(self, init_alpha=0.0, r1=0.5, r2=1.0, *, low=None, high=None, structure="local",
                 residual=False, dtype=numpy.float64):
        super().__init__()
        if not (is_real(init_alpha) and math.isfinite(init_alpha)):
            raise ValueError(f"ShapeAdaptor: init_alpha must be a finite number, got init_alpha={init_alpha!r}")
        if not (is_real(r1) and is_real(r2) and 0 < r1 < r2):
            raise ValueError(f"ShapeAdaptor: the scales must satisfy 0 < r1 < r2, got r1={r1!r}, r2={r2!r}")
        for name, branch in (("low", low), ("high", high)):
            if branch is not None and not callable(branch):
                raise TypeError(f"ShapeAdaptor: {name} must be a callable branch (a function or a Module) or None, "
                                f"got {name}={branch!r}")
        if structure not in STRUCTURES:
            raise ValueError(f"ShapeAdaptor: structure must be 'local' or 'global', got structure={structure!r}")
        if low is None and r1 != 0.5:
            raise ValueError(f"ShapeAdaptor: r1={r1!r} needs its own low branch (the default max pool halves)")
        if high is None and r2 != 1.0:
            raise ValueError(f"ShapeAdaptor: r2={r2!r} needs its own high branch (the default is the identity)")
        self.alpha = Parameter(numpy.asarray(init_alpha, dtype=dtype))
        self.r1, self.r2 = float(r1), float(r2)
        self.low = _halve_by_max_pool if low is None else low
        self.high = _identity if high is None else high
        self.structure = structure
        self.residual = check_flag(residual, "residual", "ShapeAdaptor")
        self.size = None
        self.true_scale = None

    def scale(self) -> float:
        """``s(alpha) = r1 + (r2 - r1) sigmoid(alpha)`` at the current ``alpha``, without penalty."""
        return self.r1 + (self.r2 - self.r1) * _sigmoid_value(float(self.alpha.data))

    def forward(self, x, in_size=None, penalty=1.0):
        """``y`` as in the module docstring; sets :attr:`size` and :attr:`true_scale`.

        ``in_size`` is the previous adaptor's :attr:`size` (``x``'s own size by default);
        ``penalty`` is :func:`shape_adaptor_penalty`'s factor ``p`` (1: no constraint).
        """
        if not (isinstance(penalty, (int, float)) and math.isfinite(penalty) and penalty > 0):
            raise ValueError(f"ShapeAdaptor: penalty must be a finite number > 0, got penalty={penalty!r}")
        if x.ndim not in (3, 4):
            raise ValueError(f"ShapeAdaptor: x must be (N, C, H, W) or (C, H, W), got x with shape {tuple(x.shape)}")
        tracked = tuple(float(v) for v in (x.shape[-2:] if in_size is None else in_size))
        if len(tracked) != 2 or not all(v >= 0 for v in tracked):
            raise ValueError(f"ShapeAdaptor: in_size must be two sizes >= 0, got in_size={in_size!r}")
        width = self.r2 - self.r1
        # sigma~ = p sigma + r1 / (r2 - r1) (p - 1): the authors' penalised sigmoid (p = 1: sigma itself)
        weight = sigmoid(self.alpha) * penalty + self.r1 / width * (penalty - 1.0)  # Tensor, shape ()
        scale = width * float(weight.data) + self.r1  # = p s(alpha), a plain number: no gradient
        self.true_scale = self.scale()
        if self.structure == "local":  # truncated at every adaptor, as int(current_dim * s)
            self.size = tuple(int(v * scale) for v in tracked)
            out_size = tuple(max(1, v) for v in self.size)
        else:  # real along the chain, rounded once for the output
            self.size = tuple(v * scale for v in tracked)
            out_size = tuple(max(1, round(v)) for v in self.size)
        unbatched = x.ndim == 3  # (C, H, W): one example, as in PyTorch
        if unbatched:
            x = x.reshape(1, *x.shape)
        # both branches resized to the same (H_out, W_out), bilinear with align_corners=True
        low = interpolate(self.low(x), size=out_size, mode="bilinear", align_corners=True)  # (N, C, H_out, W_out)
        high = interpolate(self.high(x), size=out_size, mode="bilinear", align_corners=True)
        # the residual form doubles both weights: it keeps the gradient's magnitude that of f(x) + x
        y = shape_adaptor_mix(low, high, weight, gain=2.0 if self.residual else 1.0)
        return y.reshape(*y.shape[1:]) if unbatched else y

    def extra_repr(self) -> str:
        return (f"alpha={float(self.alpha.data):.4g}, s={self.scale():.4g}, r1={self.r1:g}, r2={self.r2:g}, "
                f"structure={self.structure!r}")


def _sigmoid_value(a: float) -> float:
    """sigmoid of a plain number, without overflow for large ``|a|``."""
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


# ==================================================================================================
# Initialisation and the memory constraint
# ==================================================================================================
def shape_adaptor_init(input_size: float, output_size: float, count: int, r1: float = 0.5, r2: float = 1.0) -> float:
    r"""The authors' initial ``alpha`` (``SA_init``): ``count`` adaptors take ``input_size`` to ``output_size``.

    Solves :math:`\text{input}\, s(\alpha)^{n} = \text{output}` for ``alpha``, with ``eps = 1e-4``
    keeping the logarithm finite: with :math:`q = (\text{output}/\text{input})^{1/n}`,
    :math:`\alpha = \log\big((q - r_1) / (r_2 - q) + \epsilon\big)`, and :math:`\log \epsilon` when
    even all-``r1`` adaptors would leave a larger output.

    >>> round(shape_adaptor_init(32, 8, 4), 4)  # VGG on CIFAR: s = 0.707 each
    -0.3464
    >>> round(shape_adaptor_init(32, 8, 2), 4)  # two adaptors must both halve: sigma ~ 0
    -9.2103
    """
    eps = 1e-4
    if input_size * r1 ** count > output_size:
        return math.log(eps)
    q = (output_size / input_size) ** (1.0 / count)
    return math.log(-(q - r1) / (q - r2) + eps)


def shape_adaptor_penalty(adaptors, limit_scale: float) -> float:
    r"""The memory-constraint factor ``p`` for :meth:`ShapeAdaptor.forward`.

    :math:`p = 1` while :math:`\prod_l s(\alpha_l) < \text{limit}`, else
    :math:`p = (\text{limit} / \prod_l s(\alpha_l))^{1/n}` over the ``n`` adaptors. ``limit_scale``
    is the authors' ``limit_dim / input_dim``. The authors read the product from the previous
    forward (one ``alpha`` step behind); this reads it from the adaptors' current ``alpha``.

    >>> from poolref.nn import ShapeAdaptor
    >>> round(shape_adaptor_penalty([ShapeAdaptor(0.0), ShapeAdaptor(0.0)], 0.25), 4)  # 0.75 * p = 0.5
    0.6667
    """
    adaptors = list(adaptors)
    if not adaptors:
        raise ValueError("shape_adaptor_penalty: adaptors must hold at least one ShapeAdaptor, got none")
    if not (isinstance(limit_scale, (int, float)) and math.isfinite(limit_scale) and limit_scale > 0):
        raise ValueError(f"shape_adaptor_penalty: limit_scale must be a finite number > 0, got limit_scale={limit_scale!r}")
    total = math.prod(adaptor.scale() for adaptor in adaptors)
    if total < limit_scale:
        return 1.0
    return (limit_scale / total) ** (1.0 / len(adaptors))
