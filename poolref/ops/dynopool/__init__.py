r"""DynOPool: a learnable resizing module (Jang et al., "Pooling Revisited", CVPR 2022).

A fixed 2 x 2 max pool halves a feature map whatever the data; DynOPool *learns* the factor. Its
parameter ``alpha = (alpha_h, alpha_w)`` says by how much each axis shrinks (``alpha = 2``: halve;
``alpha < 1``: enlarge). The exact definition is the section "The definition" of
``docs/dynopool.rst`` (the DynOPool page of the docs); the choices it makes where the paper is
silent are poolref's, and are marked as such there.

Along one axis of length ``L`` (the same rules hold for ``H`` with ``alpha_h`` and ``W`` with
``alpha_w``)::

    L_cont = L / alpha                         continuous output length
    O      = max(1, round(L_cont))             integer output length (round half to even)
    s      = L / O                             cell size
    u(i,a) = (i + 1/4 + a/2) * s - 1/2         two query rows per output row, a in {0, 1}

Output cell ``(i, j)`` reads the four query points ``(u(i,a), v(j,b))`` bilinearly (coordinates
clamped into the image; pixel ``k`` is centred at coordinate ``k``) and keeps their maximum (or
mean). With ``alpha = 2`` on an even axis the query points are exactly the pixels ``2i`` and
``2i + 1``, so DynOPool starts out as ``max_pool2d(x, 2)``.

The output length ``O`` is an integer, so the forward is piecewise constant in ``alpha``. Its
gradient is a *straight-through* surrogate: ``O`` takes the derivative of ``L_cont``,
``dO/dalpha = -L / alpha^2``, and so ``ds/dalpha = L^2 / (O^2 alpha^2)``.

Bilinear sampling on such a grid is separable: it is a gather of two rows (``floor(u)`` and the
next) followed by a gather of two columns. The forward does exactly that, for every plane at once
(in cache-sized blocks of planes, a speed trick that changes no value); the backward to ``x`` is the
transpose of each gather, a scatter-add of each line's gradient onto the pixels it read.

A pixel is *read* by a query point where its bilinear weight is not zero: a point lying exactly on
a pixel reads that pixel only (so ``alpha = 2`` is ``max_pool2d(x, 2)`` even next to a NaN, an
infinity or a ``-0.``). The slope ``dq/du`` reads the two pixels of its forward difference, and is
exactly zero where the coordinate is clamped. Nothing else is ever multiplied, so a NaN or an
infinity reaches only the outputs and gradients that read it. The four points of a cell are reduced
by PyTorch's running max (:mod:`poolref._running_max`, rule ``torch``), the rule of ``max_pool2d``:
first of ties, a NaN wins and the last NaN is kept.

The package: ``geometry.py`` (the output length and the query coordinates of one axis),
``arrays.py`` (the array code: the gathers, their adjoints, the forward and the two backwards, in
cache-sized blocks of planes) and this module (the forward/backward pair on the tape, the CUDA
kernels for CuPy float input, the straight-through size and the public functions).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ... import kernels
from ..._backend import array_module, data_of, is_cupy_array, to_numpy
from ..._checks import accumulation_dtype, check_element_count, check_flag, check_pool_input
from ...autograd.function import apply, define_function
from ...autograd.tensor import Tensor
from .arrays import _backward_arrays, _forward_in_blocks
from .geometry import QueryAxis, dynopool_output_size, query_axis

__all__ = ["dynopool2d", "dynopool_output_size"]

AGGREGATES = ("max", "avg")


# ==================================================================================================
# Forward and backward
# ==================================================================================================
class DynOPoolSaved(NamedTuple):
    x: object  # the input (N, C, H, W), in the accumulation dtype
    x_is_finite: bool  # no NaN or infinity in x (the array code's backward may then use matrix products)
    x_dtype: numpy.dtype
    alpha_dtype: numpy.dtype
    alpha_xp: object  # numpy or cupy: where alpha (and so its gradient) lives
    rows: QueryAxis
    columns: QueryAxis
    aggregate: str
    choice: object  # (N, C, Ho, Wo) int8: the winning query point a*2 + b ("max"), else None



def _uses_kernels(x) -> bool:
    """CuPy float32/float64 input runs the fused CUDA kernels; everything else the array code."""
    return is_cupy_array(x) and numpy.dtype(x.dtype) in kernels.KERNEL_DTYPES


def _dynopool_forward(x, alpha, *, aggregate: str):
    # x and alpha may live apart (x on the GPU, alpha on the host): y lives with x, alpha's gradient
    # with alpha, and nothing is moved between them
    xp = array_module(x)
    alpha_xp = array_module(alpha)
    H, W = x.shape[-2:]
    alpha_h, alpha_w = _alpha_values(alpha)
    rows, columns = query_axis(H, alpha_h), query_axis(W, alpha_w)
    xa = x.astype(accumulation_dtype(x.dtype), copy=False)
    if _uses_kernels(xa):
        y, choice = kernels.dynopool_forward(xp, xa, rows, columns, aggregate == "max")
        finite = False  # not needed: the kernels' backward is exact for every value
    else:
        y, choice, finite = _forward_in_blocks(xa, rows, columns, aggregate, xp)
    saved = DynOPoolSaved(xa, finite, x.dtype, alpha.dtype, alpha_xp, rows, columns, aggregate, choice)
    return y.astype(x.dtype, copy=False), saved


def _alpha_values(alpha) -> tuple[float, float]:
    """The two entries of ``alpha`` (numpy or cupy, shape (2,)) as Python floats."""
    return tuple(float(a) for a in alpha.reshape(2).tolist())


# forward   y_ij = max_ab q(u_ia, v_jb)  (or the mean), q the bilinear reading of x at the query point,
#           u_ia = (i + 1/4 + a/2) s_h - 1/2 with the cell size s_h = H / H_out (likewise v)
# backward  grad_x = R_h^T G R_w  (each point's gradient G back to the pixels it read, with its weights)
#           grad_alpha_h = sum_points G dq/du (i + 1/4 + a/2) * ds_h/dalpha_h  (straight-through cell size)
def _dynopool_backward(saved: DynOPoolSaved, grad_y):
    # grad_y lives with x (and y); grad_x goes back to x's module and grad_alpha to alpha's,
    # whichever device each is on
    xp = array_module(saved.x)
    rows, columns = saved.rows, saved.columns
    g = grad_y.astype(saved.x.dtype, copy=False)
    if _uses_kernels(saved.x):
        # sums: a float64 (2,) device array, left there (no synchronisation) unless alpha is on the host
        grad_x, sums = kernels.dynopool_backward(xp, saved.x, g, saved.choice, rows, columns, saved.aggregate == "max")
        if saved.alpha_xp is not xp:
            sums = to_numpy(sums)  # a host alpha gets a host gradient: this waits for the kernels
    else:
        grad_x, sums = _backward_arrays(saved.x, saved.x_is_finite, g, saved.choice, rows, columns, saved.aggregate, xp)
    grad_alpha = _alpha_gradient(saved, sums)
    return grad_x.astype(saved.x_dtype, copy=False), grad_alpha


def _alpha_gradient(saved: DynOPoolSaved, sums):
    """``d L / d alpha`` through the cell sizes, in alpha's array module: ``sum_u * ds_h/dalpha_h``
    (likewise w), with ``ds/dalpha`` the straight-through derivative of the cell size. (The returned
    output size has a gradient path of its own: :func:`straight_through_size`.)

    ``sums`` = (sum_u, sum_v): Python floats or a float64 array; computed in float64, elementwise.
    """
    alpha_xp, rows, columns = saved.alpha_xp, saved.rows, saved.columns
    sums = alpha_xp.asarray(sums, dtype=numpy.float64)
    d_cell_d_alpha = alpha_xp.asarray([rows.d_cell_d_alpha, columns.d_cell_d_alpha])
    return (sums * d_cell_d_alpha).astype(saved.alpha_dtype, copy=False)


DYNOPOOL = define_function("dynopool2d", _dynopool_forward, _dynopool_backward)


# ==================================================================================================
# The straight-through output size
# ==================================================================================================
def _straight_through_forward(continuous, *, size):
    xp = array_module(continuous)
    if size is None:
        return xp.maximum(xp.round(continuous), 1).astype(continuous.dtype), None
    return xp.asarray(size, dtype=continuous.dtype), None


# forward   O = size, the integer output size (max(1, round(L / alpha)), half to even), or
#           max(1, round(c)) of the continuous size c when no size is given
# backward  dL/dc := dL/dO: the straight-through estimator treats the rounding as the identity
def _straight_through_backward(saved, grad_size):
    return (grad_size,)


STRAIGHT_THROUGH_SIZE = define_function("straight_through_size", _straight_through_forward, _straight_through_backward)


def straight_through_size(continuous, size=None):
    r"""Round a continuous size to the integer size, letting the gradient through unchanged.

    Forward :math:`O = \max(1, \mathrm{round}(c))` (half to even), or ``size`` when given (the size an
    op actually produced, so that value and shape can never disagree); backward
    :math:`\partial \mathcal{L}/\partial c := \partial \mathcal{L}/\partial O`, the straight-through
    estimator: the rounding is treated as the identity. With :math:`c = L / \alpha` this is DynOPool's
    size gradient, :math:`\partial O / \partial \alpha := -L / \alpha^2`; ``dynopool2d(...,
    return_size=True)`` and :class:`poolref.nn.DynOPool` both take their size from here.

    >>> import numpy as np
    >>> straight_through_size(np.array([4.8, 2.5, 0.2]))
    array([5., 2., 1.])
    """
    return apply(STRAIGHT_THROUGH_SIZE, continuous, size=None if size is None else tuple(size))


def _check_alpha(alpha, op: str):
    """``alpha`` as a float array or Tensor of shape (2,) with finite entries > 0."""
    if not (hasattr(alpha, "shape") and hasattr(alpha, "dtype")):
        try:
            alpha = numpy.asarray(alpha, dtype=numpy.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: alpha must be a float array of shape (2,), got alpha={alpha!r}") from None
    if numpy.dtype(alpha.dtype).kind != "f":
        raise TypeError(f"{op}: alpha must be a float array of shape (2,), got alpha with dtype {alpha.dtype}")
    if tuple(alpha.shape) != (2,):
        raise ValueError(f"{op}: alpha must have shape (2,) = (alpha_h, alpha_w), got alpha with shape {tuple(alpha.shape)}")
    values = _alpha_values(data_of(alpha))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{op}: alpha must be finite and > 0, got alpha={list(values)}")
    return alpha


def dynopool2d(x, alpha, *, aggregate="max", return_size=False):
    r"""DynOPool: resize ``x`` by a learnable factor ``1 / alpha`` per axis (Jang et al. 2022).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    alpha : array or Tensor, shape (2,)
        ``(alpha_h, alpha_w)``, finite and > 0: the output is about ``H / alpha_h`` by
        ``W / alpha_w``. A Tensor that requires a gradient gets the straight-through gradient.
    aggregate : {"max", "avg"}
        How the four query points of an output cell combine: their maximum (the paper's), with
        PyTorch's running max over the points in the order (0,0), (0,1), (1,0), (1,1) (ties go to the
        first, a NaN wins and the last NaN is kept, as in ``max_pool2d``; :ref:`max-rules`), or their
        mean.
    return_size : bool
        Also return the output size ``(H_out, W_out)`` as a float array or Tensor of shape (2,),
        whose gradient is the straight-through one, ``d H_out / d alpha_h = -H / alpha_h^2``: chain
        it into the next DynOPool's size or a complexity loss (:func:`poolref.nn.gmacs_loss`).

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out)
        ``H_out = max(1, round(H / alpha_h))`` (half to even), likewise ``W_out``.
    size : array or Tensor, shape (2,)
        Only with ``return_size=True``.

    Notes
    -----
    With cell sizes :math:`s_h = H / H_{out}`, :math:`s_w = W / W_{out}`, output cell
    :math:`(i, j)` reads the query points

    .. math:: u_{ia} = (i + \tfrac14 + \tfrac{a}{2}) s_h - \tfrac12, \qquad
              v_{jb} = (j + \tfrac14 + \tfrac{b}{2}) s_w - \tfrac12, \qquad a, b \in \{0, 1\}

    bilinearly, :math:`q_{ab} = \sum_{k,l} r_k(u_{ia})\, r_l(v_{jb})\, x_{kl}` with the tent weights
    :math:`r` of the coordinate clamped into the image (a pixel of weight 0 is not read: a point on a
    pixel reads that pixel only), and outputs
    :math:`y_{ij} = \max_{ab} q_{ab}` (or the mean). Backward: the gradient of :math:`y_{ij}` goes
    to the chosen query point (a quarter to each for the mean) and from there to its four pixels with
    the bilinear weights, :math:`\partial L/\partial x = R_h^\top G R_w` with :math:`R` the
    (2 H_out, H) interpolation matrix; and to alpha,

    .. math:: \frac{\partial L}{\partial \alpha_h} = \frac{H^2}{H_{out}^2 \alpha_h^2}
              \sum_{\text{points}} G_{ia,jb}\, \frac{\partial q}{\partial u_{ia}}\,
              (i + \tfrac14 + \tfrac{a}{2})

    where :math:`\partial q / \partial u` is the bilinear slope :math:`x_{k+1} - x_k` (zero where
    the coordinate lies on or beyond the border). Piecewise constant in alpha, the forward has no
    useful derivative there: this is a straight-through surrogate (see the DynOPool docs page).

    Examples
    --------
    ``alpha = (2, 2)`` on an even map is a 2 x 2 max pool:

    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.dynopool2d(x, np.array([2.0, 2.0]))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> y, size = poolref.dynopool2d(x, np.array([1.5, 3.0]), return_size=True)
    >>> y.shape, size
    ((1, 1, 3, 1), array([3., 1.]))
    """
    op = "dynopool2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    alpha = _check_alpha(alpha, op)
    # the query points (N, C, 2 H_out, 2 W_out) are the largest array: refuse an absurd alpha at once
    sizes = [dynopool_output_size(length, a) for length, a in zip(x.shape[-2:], _alpha_values(data_of(alpha)))]
    check_element_count(4 * math.prod(x.shape[:-2]) * sizes[0] * sizes[1], "alpha", _alpha_values(data_of(alpha)), op,
                        "the query points")
    if aggregate not in AGGREGATES:
        raise ValueError(f"{op}: aggregate must be 'max' or 'avg', got aggregate={aggregate!r}")
    return_size = check_flag(return_size, "return_size", op)
    y = apply(DYNOPOOL, x, alpha, aggregate=aggregate)
    if not return_size:
        return y
    # the size: round(L / alpha) with the straight-through gradient, on the tape like any op
    lengths = array_module(alpha).asarray([float(v) for v in x.shape[-2:]], dtype=alpha.dtype)
    size = straight_through_size(lengths / alpha, size=y.shape[-2:])
    if isinstance(y, Tensor) and not isinstance(size, Tensor):
        size = Tensor(size)  # Tensors in, Tensors out
    return y, size
