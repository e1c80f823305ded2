r"""Average and Lp (power-average) pooling in 1, 2 and 3 dimensions: window sums and their adjoints.

Both are built on the window sum (:func:`poolref._windows.window_sum`): average pooling divides it,
Lp pooling sums powers and takes a root. Average pooling is linear, so its backward is its
transpose: each window's gradient is spread back over the window's taps
(:func:`poolref._windows.window_sum_adjoint`); Lp pooling's backward is that spread times the
chain rule's factors.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..._backend import array_module, batch_blocks
from ..._checks import accumulation_dtype, cast_back, check_flag, check_pool_input, check_positive_number, is_real
from ..._geometry import WindowGeometry, check_convention, pool_geometry
from ..._windows import as_planes, window_sum, window_sum_adjoint, window_sum_plane_bytes
from ...autograd.function import apply, define_function
from .max import MAX_POOL

__all__ = [
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d", "AVG_POOL", "LP_POOL", "LP_POOL_INF",
]


# ==================================================================================================
# Average pooling
# ==================================================================================================
class AvgPoolSaved(NamedTuple):
    divisor: object  # (O..) what each window divides by, in the accumulation dtype
    geometry: WindowGeometry
    in_shape: tuple  # the input's shape (.., L..)
    dtype: numpy.dtype  # the input's dtype, for the gradient


def _avg_pool_forward(x, *, geometry: WindowGeometry, count_padding: bool, divisor_override):
    # Plane by plane, in cache-sized blocks of planes (a speed trick, poolref._backend.batch_blocks).
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    divisor = xp.asarray(geometry.divisor(count_padding, divisor_override), dtype=accumulate)  # (O..)
    planes = as_planes(x, geometry.ndim)  # (P, L..)
    y = xp.empty(planes.shape[:1] + geometry.out_shape, dtype=x.dtype)  # (P, O..)
    for block in batch_blocks(planes.shape[0], window_sum_plane_bytes(geometry, accumulate), like=x):
        # A zero divisor arises only under convention="jax" without count_include_pad, for a window
        # wholly in padding: its sum is 0, so it gives 0/0 = NaN, as reduce_window(x) /
        # reduce_window(ones) does.
        with numpy.errstate(invalid="ignore"):
            y[block] = window_sum(planes[block].astype(accumulate, copy=False), geometry) / divisor
    saved = AvgPoolSaved(divisor, geometry, tuple(x.shape), x.dtype)
    return y.reshape(x.shape[: x.ndim - geometry.ndim] + geometry.out_shape), saved


# forward  y_o = (1/D_o) sum_{i in W_o} x_i                (D_o the divisor of window W_o)
# backward grad_x_i = sum_{o: i in W_o} g_o / D_o          (average pooling is linear: its transpose,
#          the window sum's adjoint applied to g / D)
# A window with D_o = 0 (jax, wholly in padding) gives inf or NaN in g / D, but it has no tap in the
# input, so the adjoint drops it with the padding. Speed trick: cache-sized blocks of planes, as the
# forward (poolref._backend.batch_blocks); no value changes.
def _avg_pool_backward(saved: AvgPoolSaved, grad_y):
    xp = array_module(grad_y)
    geometry = saved.geometry
    g_planes = as_planes(grad_y, geometry.ndim)  # (P, O..)
    grad = xp.empty(g_planes.shape[:1] + geometry.in_shape, dtype=saved.dtype)  # (P, L..)
    for block in batch_blocks(grad.shape[0], window_sum_plane_bytes(geometry, saved.divisor.dtype), like=grad_y):
        with numpy.errstate(divide="ignore", invalid="ignore"):
            g = g_planes[block].astype(saved.divisor.dtype, copy=False) / saved.divisor
        grad[block] = window_sum_adjoint(g, geometry)
    return (grad.reshape(saved.in_shape),)


AVG_POOL = define_function("avg_pool", _avg_pool_forward, _avg_pool_backward)


def _avg_pool(x, n, op, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention):
    x = check_pool_input(x, n, op, integer_ok=False)
    count_include_pad = check_flag(count_include_pad, "count_include_pad", op)
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    if divisor_override is not None:
        if convention == "jax":
            raise ValueError(
                f"{op}: convention='jax' has no divisor_override (reduce_window's averages divide by prod(kernel_size) "
                f"or by a window sum of ones), got divisor_override={divisor_override!r}"
            )
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, numpy.integer)):
            raise TypeError(f"{op}: divisor_override must be an int or None, got divisor_override={divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero, got divisor_override={divisor_override!r}")
    # TensorFlow never counts padding in an average (SAME padding is not data)
    count_padding = count_include_pad and convention != "tensorflow"
    return apply(AVG_POOL, x, geometry=geometry, count_padding=count_padding, divisor_override=divisor_override)




def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""1-D average pooling over (N, C, L) or (C, L); see :func:`avg_pool2d` for the arguments.

    Notes
    -----
    :math:`y_o = \frac{1}{D_o}\sum_{i \in W_o} x_i`; backward
    :math:`\partial L/\partial x_i = \sum_{o: i \in W_o} \frac{1}{D_o} \partial L/\partial y_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.avg_pool1d(np.array([[1., 2., 3., 4., 5.]]), 2, 2, ceil_mode=True)
    array([[1.5, 3.5, 5. ]])
    """
    return _avg_pool(x, 1, "avg_pool1d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""2-D average pooling: the mean of each window.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input (float16 is accumulated in float32).
    kernel_size, stride, padding, ceil_mode
        As for :func:`max_pool2d`; padding reads as zero.
    count_include_pad : bool
        Count padding cells in the divisor (never under ``convention="tensorflow"``).
    divisor_override : int, optional
        Divide every window by this instead.
    dilation : int or (int, int)
        Spacing between taps (ONNX has it; PyTorch does not).
    convention : {"torch", "onnx", "tensorflow", "jax"}
        Whose argument and divisor rules apply. ``"jax"``: ``count_include_pad=True`` divides by
        ``prod(kernel_size)``, ``False`` by the number of input cells, so a window wholly in padding
        gives 0 or NaN (0/0); no ``divisor_override``.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    Forward, for each window :math:`W_o` with its taps inside the input (padding reads as zero):

    .. math:: y_o = \frac{1}{D_o} \sum_{i \in W_o} x_i

    The divisor :math:`D_o` is ``divisor_override`` if given; else, with ``count_include_pad``, the
    number of taps inside the input or its padding (PyTorch's ``pool_size``: a ceil-mode overhang
    past the end padding is not counted); else the number of taps inside the input. Under
    ``convention="tensorflow"`` padding is never counted (``count_include_pad`` is ignored).

    Backward, the transpose of the forward:

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o \,:\, i \in W_o} \frac{1}{D_o} \frac{\partial L}{\partial y_o}

    So the input gradient sums to :math:`\sum_o \frac{|W_o|}{D_o} \frac{\partial L}{\partial y_o}`,
    the output gradient's sum exactly when no window counts padding or overhang.

    Examples
    --------
    The ceil-mode case from PyTorch's bug tracker (the last window divides by 2, not 3, per axis):

    >>> import numpy as np, poolref
    >>> x = np.arange(1., 17.).reshape(1, 1, 4, 4)
    >>> poolref.avg_pool2d(x, 3, 2, 1, ceil_mode=True).round(4)
    array([[[[ 1.5556,  3.3333,  2.    ],
             [ 6.3333, 11.    ,  6.    ],
             [ 4.5   ,  7.5   ,  4.    ]]]])
    """
    return _avg_pool(x, 2, "avg_pool2d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""3-D average pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`avg_pool2d`.

    Notes
    -----
    :math:`y_o = \frac{1}{D_o}\sum_{i \in W_o} x_i`; backward
    :math:`\partial L/\partial x_i = \sum_{o: i \in W_o} \frac{1}{D_o} \partial L/\partial y_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.avg_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])
    """
    return _avg_pool(x, 3, "avg_pool3d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


# ==================================================================================================
# Lp pooling
# ==================================================================================================
#: TensorFlow has no Lp pooling. JAX has none either: under "jax" poolref takes the true norm of
#: ONNX's LpPool, (reduce_window(add, |x|**p)) ** (1/p), over reduce_window's geometry.
LP_CONVENTIONS = ("torch", "onnx", "jax")


class LpPoolSaved(NamedTuple):
    x: object  # (P, L..) the input's planes (cast to the accumulation dtype block by block)
    window_sum: object  # (P, O..) S of every window (rescaled under "torch"), in the accumulation dtype
    scale: object  # (O..) prod(k) / D under "torch" (rescaling of partial windows), 1 otherwise
    p: float
    convention: str
    geometry: WindowGeometry
    in_shape: tuple  # the input's shape (.., L..)
    dtype: numpy.dtype


def _lp_pool_forward(x, *, p: float, geometry: WindowGeometry, convention: str):
    # Plane by plane, in cache-sized blocks of planes (a speed trick, poolref._backend.batch_blocks).
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    if convention == "torch":
        # PyTorch: avg_pool(x**p) * prod(k), then ** (1/p). No abs: negative windows with odd or
        # fractional p give NaN. A partial ceil-mode window is rescaled by prod(k)/count (a quirk).
        scale = xp.asarray(geometry.kernel_volume / geometry.divisor(count_padding=True), dtype=accumulate)
    else:
        # ONNX LpPool (and poolref's "jax"): the true p-norm of the window; padding contributes
        # zero, nothing is rescaled. A jax window wholly in padding sums to 0 and gives 0.
        scale = xp.ones(geometry.out_shape, dtype=accumulate)
    planes = as_planes(x, geometry.ndim)  # (P, L..)
    y = xp.empty(planes.shape[:1] + geometry.out_shape, dtype=x.dtype)  # (P, O..)
    powered_sum = xp.empty(y.shape, dtype=accumulate)  # (P, O..)
    for block in batch_blocks(planes.shape[0], window_sum_plane_bytes(geometry, accumulate), like=x):
        xa = _contiguous(planes[block], accumulate)  # (B, L..)
        with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
            powered = xa**p if convention == "torch" else xp.abs(xa) ** p
            powered_sum[block] = window_sum(powered, geometry) * scale
            y[block] = powered_sum[block] ** (1.0 / p)
    saved = LpPoolSaved(planes, powered_sum, scale, p, convention, geometry, tuple(x.shape), x.dtype)
    return y.reshape(x.shape[: x.ndim - geometry.ndim] + geometry.out_shape), saved


# forward  y_o = S_o^(1/p),  S_o = c_o sum_{i in W_o} f(x_i),  f(x) = x^p ("torch") or |x|^p ("onnx",
#          "jax"), c_o the torch rescaling (1 otherwise)
# backward grad_x_i = sum_{o: i in W_o} g_o (1/p) S_o^(1/p - 1) c_o f'(x_i)
# dy/dS is computed as a power of S, not as y / (p S): where S is infinite the two differ
# (inf / inf is NaN, while S^(1/p - 1) is 0 for p > 1 and 1 for p = 1, the true limits).
# Speed trick: cache-sized blocks of planes, as the forward; no value changes.
def _lp_pool_backward(saved: LpPoolSaved, grad_y):
    xp = array_module(grad_y)
    p, geometry = saved.p, saved.geometry
    accumulate = saved.window_sum.dtype
    # Cells whose gradient is 0 whatever the product says (0 * inf and 0 * NaN would be NaN):
    # cells that no window reads (PyTorch's lp_pool gradient leaks a NaN there), and, for p < 1,
    # cells holding 0, where |x|^p has no derivative (poolref's rule: zero).
    read = geometry.cells_read()  # (L..)
    read = None if read.all() else xp.asarray(read)
    g_planes = as_planes(grad_y, geometry.ndim)  # (P, O..)
    grad = xp.empty(saved.x.shape, dtype=saved.dtype)  # (P, L..)
    for block in batch_blocks(grad.shape[0], window_sum_plane_bytes(geometry, accumulate), like=grad_y):
        x, s = _contiguous(saved.x[block], accumulate), saved.window_sum[block]  # (B, L..), (B, O..)
        with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
            dy_ds = s ** (1.0 / p - 1.0) / p
            per_window = g_planes[block].astype(accumulate, copy=False) * dy_ds * saved.scale  # (B, O..)
            # poolref's rule: a window whose sum is zero sends nothing (the norm has no derivative
            # there), not even a NaN or infinite g_o, as PyTorch's relu backward does
            per_window = xp.where(s == 0, 0, per_window)
            spread = window_sum_adjoint(per_window, geometry)  # (B, L..)
            # f'(x) = p x^(p-1) under "torch"; p sign(x) |x|^(p-1) under "onnx" and "jax"
            if saved.convention == "torch":
                dpow = p * x ** (p - 1)
            else:
                dpow = p * xp.sign(x) * xp.abs(x) ** (p - 1)
            grad_x = spread * dpow
        keep = read
        if p < 1:
            keep = (x != 0) if keep is None else keep & (x != 0)
        grad[block] = grad_x if keep is None else xp.where(keep, grad_x, 0)
    return (grad.reshape(saved.in_shape),)


def _contiguous(x, dtype):
    """``x`` in ``dtype``, as a C-contiguous array (a copy only where it is not one already).

    Powers are taken of contiguous arrays only: NumPy computes ``x ** p`` (for p other than 0.5, 1
    and 2) with SIMD code on contiguous data and with the C library's ``pow`` on some strided
    views, and the two may round the last bit differently. On a contiguous block the result is the
    same whatever the input's layout and however the planes are cut into blocks.
    """
    return array_module(x).ascontiguousarray(x, dtype=dtype)


LP_POOL = define_function("lp_pool", _lp_pool_forward, _lp_pool_backward)


# --------------------------------------------------------------------------------------------------
# norm_type = +-inf: PyTorch's max pooling of |x|
# --------------------------------------------------------------------------------------------------
class LpPoolInfSaved(NamedTuple):
    max_pool: object  # max pooling's record (MaxPoolSaved) of s |x|, its dtype the accumulation dtype
    slope: object  # (.., L..) sgn(x): +1, -1, or 0 where x is 0 or NaN (PyTorch's abs backward)
    sign: int  # s: +1 for norm_type = inf, -1 for -inf
    dtype: numpy.dtype


def _lp_pool_inf_forward(x, *, sign: int, geometry: WindowGeometry):
    # PyTorch 2.13 does not take the limit of its power formula: lp_pool{1,2,3}d test norm_type first,
    # and return max_pool(|x|) for inf and -max_pool(-|x|) (the smallest |x|) for -inf, with
    # max pooling's rules (ties to the first, a NaN wins) and its padding (none in PyTorch).
    xp = array_module(x)
    magnitudes = xp.abs(x) if sign > 0 else -xp.abs(x)  # s |x|, (.., L..)
    maxima, max_saved = MAX_POOL.forward(magnitudes, geometry=geometry, with_indices=False)
    y = maxima if sign > 0 else -maxima
    # sgn(x) as torch.sgn: 0 at 0 (either sign) and at NaN, so a NaN winner passes no gradient
    slope = xp.where(x > 0, 1, xp.where(x < 0, -1, 0)).astype(accumulation_dtype(x.dtype))
    accumulate = accumulation_dtype(x.dtype)
    return y, LpPoolInfSaved(max_saved._replace(dtype=accumulate), slope, sign, x.dtype)


# forward   y_o = s max_{i in W_o} s |x_i|                       (s = +1: inf, s = -1: -inf)
# backward  dL/dx_i = sgn(x_i) s sum_{o: i wins W_o} s dL/dy_o   (max pooling's scatter, through s|x|)
# The factors are applied in PyTorch's order (neg, max pooling's scatter, neg, abs), so that the
# signed zeros agree too: a cell that wins nothing gets (s * 0) * sgn(x), e.g. -0.0 for a negative x.
def _lp_pool_inf_backward(saved: LpPoolInfSaved, grad_y):
    s = saved.sign
    g = grad_y.astype(saved.slope.dtype, copy=False)
    (scattered,) = MAX_POOL.backward(saved.max_pool, g if s > 0 else -g)  # (.., L..)
    if s < 0:
        scattered = -scattered
    with numpy.errstate(invalid="ignore"):  # an infinite g at a zero or NaN winner: inf * 0 = NaN, as in PyTorch
        return (cast_back(scattered * saved.slope, saved.dtype),)


LP_POOL_INF = define_function("lp_pool_inf", _lp_pool_inf_forward, _lp_pool_inf_backward)


def _check_norm_type(norm_type, convention: str, op: str) -> float:
    """A finite ``p > 0``; or, under ``"torch"``, ``inf`` or ``-inf``, which PyTorch 2.13 accepts."""
    if is_real(norm_type) and math.isinf(norm_type):
        if convention != "torch":
            raise ValueError(
                f"{op}: norm_type={norm_type!r} is PyTorch's max pooling of |x| (convention='torch'); "
                f"convention={convention!r} has no infinite norm (ONNX LpPool's p is an integer), got norm_type={norm_type!r}"
            )
        return float(norm_type)
    return check_positive_number(norm_type, "norm_type", op)


def _lp_pool(x, n, op, norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention):
    x = check_pool_input(x, n, op, integer_ok=False)
    check_convention(convention, op, allowed=LP_CONVENTIONS)
    p = _check_norm_type(norm_type, convention, op)
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    if math.isinf(p):
        return apply(LP_POOL_INF, x, sign=1 if p > 0 else -1, geometry=geometry)
    return apply(LP_POOL, x, p=p, geometry=geometry, convention=convention)




def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""1-D power-average (Lp) pooling over (N, C, L) or (C, L); see :func:`lp_pool2d`.

    Notes
    -----
    torch: :math:`y_o = (\frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p)^{1/p}`; onnx:
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}`; backward
    :math:`\partial L/\partial x_i = \sum_o \partial L/\partial y_o \, (y_o / S_o) \, c_o \, x_i^{p-1}`.

    Examples
    --------
    PyTorch rescales the partial last window (3 + 7 + 5*2), ONNX Runtime does not:

    >>> import numpy as np, poolref
    >>> x = np.array([[1., 2., 3., 4., 5.]])
    >>> poolref.lp_pool1d(x, 1, 2, 2, ceil_mode=True)
    array([[ 3.,  7., 10.]])
    >>> poolref.lp_pool1d(x, 1, 2, 2, ceil_mode=True, convention="onnx")
    array([[3., 7., 5.]])
    """
    return _lp_pool(x, 1, "lp_pool1d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""2-D power-average (Lp) pooling: the p-norm of each window.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    norm_type : float
        The power ``p > 0``; ``p = 1`` is sum pooling, large ``p`` tends to max pooling. Under
        ``convention="torch"`` also ``inf`` and ``-inf``, as PyTorch 2.13 computes them (see Notes).
    kernel_size, stride, ceil_mode, padding, dilation
        As for :func:`avg_pool2d` (PyTorch has no padding or dilation for Lp pooling; poolref
        generalises its formula, ONNX has both).
    convention : {"torch", "onnx", "jax"}
        PyTorch's formula (with its quirks) or ONNX's true norm; ``"jax"`` is the true norm over
        ``lax.reduce_window``'s geometry (JAX has no Lp pooling). TensorFlow has no Lp pooling.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    ``convention="torch"`` reproduces PyTorch's formula, quirks included:

    .. math:: S_o = \frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p, \qquad y_o = S_o^{1/p}

    with :math:`D_o` average pooling's divisor counting padding, so a partial ceil-mode window is
    rescaled as if it were full, and no absolute value: negative windows give NaN for fractional
    :math:`1/p` and signed results for ``p = 1`` (a quirk). ``convention="onnx"`` is the true norm,
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}` (ONNX Runtime; padding adds zero, nothing is rescaled).

    Backward (chain rule; zero where :math:`S_o = 0`, poolref's choice where the derivative blows up):

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o \,:\, i \in W_o} \frac{\partial L}{\partial y_o}
              \frac{y_o}{S_o} \frac{\prod k}{D_o} x_i^{p-1}
              \quad\text{(onnx: } \frac{y_o}{S_o} \operatorname{sign}(x_i) |x_i|^{p-1}\text{)}

    ``norm_type=inf`` and ``-inf`` (``convention="torch"`` only): PyTorch 2.13 does not take the limit
    of its formula but tests ``norm_type`` first and returns ``max_pool(|x|)`` for ``inf`` and
    ``-max_pool(-|x|)``, the smallest magnitude, for ``-inf``; poolref does the same. With
    :math:`s = \pm 1`,

    .. math:: y_o = s \max_{i \in W_o} s |x_i|, \qquad
              \frac{\partial L}{\partial x_i} = \operatorname{sgn}(x_i)\, s
              \sum_{o \,:\, i \text{ wins } W_o} s \frac{\partial L}{\partial y_o}

    with max pooling's rules (ties to the first in scan order, a NaN wins), no rescaling of a partial
    ceil-mode window, and ``torch.sgn``'s zero at 0 and at NaN (a NaN winner passes no gradient);
    the factors are applied in PyTorch's order, so even the signs of zero gradients agree. ONNX's
    ``LpPool`` has an integer ``p``, and JAX and TensorFlow no Lp pooling: other conventions refuse it.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.lp_pool2d(np.array([[[3., 4.], [0., 0.]]]), 2, 2)
    array([[[5.]]])
    >>> poolref.lp_pool2d(np.array([[[3., -4.], [0., 0.]]]), np.inf, 2)  # PyTorch's max of |x|
    array([[[4.]]])
    """
    return _lp_pool(x, 2, "lp_pool2d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""3-D power-average (Lp) pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`lp_pool2d`.

    Notes
    -----
    torch: :math:`y_o = (\frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p)^{1/p}`; onnx:
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}`; backward
    :math:`\partial L/\partial x_i = \sum_o \partial L/\partial y_o \, (y_o / S_o) \, c_o \, x_i^{p-1}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.lp_pool3d(np.ones((1, 2, 2, 2)), 1, 2)
    array([[[[8.]]]])
    """
    return _lp_pool(x, 3, "lp_pool3d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)
