r"""Bilinear (second-order) pooling (Lin et al. 2015, B-CNN): the average outer product of two
feature maps over every position, with a signed square root and an L2 normalisation.

.. math:: B = \frac{1}{P}\sum_{l=1}^{P} x_l\, y_l^{T},\qquad
          s = \operatorname{sign}(B)\sqrt{|B| + \epsilon},\qquad
          z = \frac{s}{\max(\lVert s \rVert_2, \epsilon)}

over the ``P`` positions ``l`` of an (N, C, *spatial) map (``y = x`` when no second map is given).
The forward/backward pair below is registered with :func:`poolref.autograd.define_function`; the
plain loops of :mod:`poolref.reference.learned` are the specification it is tested against.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import accumulation_dtype, cast_back, check_element_count, check_flag, check_global_input, check_positive_number
from ..autograd.function import apply, define_function

__all__ = ["bilinear_pool"]


# ==================================================================================================
# Bilinear (second-order) pooling (Lin et al. 2015, B-CNN)
# ==================================================================================================
class BilinearSaved(NamedTuple):
    x: object  # (N, C_x, P) the first factor, flattened over positions, in the products' dtype
    y: object  # (N, C_y, P) the second factor; None when it is x itself
    products: object  # (N, C_x * C_y) B, the averaged outer products
    normalized: object  # (N, C_x * C_y) z, the output before the cast (None without l2_normalize)
    norm: object  # (N, 1) ||s||_2 (None without l2_normalize)
    signed_sqrt: bool
    l2_normalize: bool
    eps: float
    x_shape: tuple
    y_shape: tuple
    dtype: numpy.dtype


def _bilinear_products_dtype(dtype) -> numpy.dtype:
    """float32 for float16 input, float64 for float32 and float64 input.

    The products square the input's magnitude: in float32, features from about 1e19 up overflow
    and from 1e-19 down underflow, where the signed square root and the normalisation would bring
    the output back into range. float64 holds the square of every float32 (and float16) value.
    """
    return numpy.dtype(numpy.float64) if numpy.dtype(dtype) == numpy.float32 else accumulation_dtype(dtype)


def _bilinear_forward(x, y, *, signed_sqrt: bool, l2_normalize: bool, eps: float):
    xp = array_module(x, y)
    accumulate = _bilinear_products_dtype(x.dtype)
    N, channels_x = x.shape[:2]
    positions = math.prod(x.shape[2:])
    xf = x.reshape(N, channels_x, positions).astype(accumulate, copy=False)  # (N, C_x, P)
    yf = None if y is None else y.reshape(N, y.shape[1], positions).astype(accumulate, copy=False)
    second = xf if yf is None else yf  # (N, C_y, P)
    # B[n, c, d] = (1/P) sum_l x[n, c, l] y[n, d, l], flattened row-major: index c * C_y + d
    channels_y = second.shape[1]
    # NaN and infinities follow IEEE arithmetic (inf - inf, 0 * inf and inf / inf are NaN), silently
    with numpy.errstate(invalid="ignore", over="ignore"):
        products = (xp.matmul(xf, second.transpose(0, 2, 1)) / positions).reshape(N, channels_x * channels_y)
        out = products
        if signed_sqrt:
            out = xp.sign(products) * xp.sqrt(xp.abs(products) + eps)
        normalized = norm = None
        if l2_normalize:
            norm = xp.sqrt((out * out).sum(axis=1, keepdims=True))  # (N, 1)
            out = normalized = out / xp.maximum(norm, eps)  # F.normalize's rule: divide by max(||s||, eps)
    saved = BilinearSaved(xf, yf, products, normalized, norm, signed_sqrt, l2_normalize, eps,
                          tuple(x.shape), None if y is None else tuple(y.shape), x.dtype)
    return cast_back(out, x.dtype), saved  # B alone (no sqrt, no norm) may overflow float16 or float32


# forward   B = (1/P) X Y^T,  s = sign(B) sqrt(|B| + eps),  z = s / max(||s||, eps)
# backward  grad_s = (g - z (z . g)) / ||s||  (g / eps below the floor),
#           grad_B = grad_s / (2 sqrt(|B| + eps)),  grad_X = (1/P) grad_B Y,  grad_Y = (1/P) grad_B^T X
def _bilinear_backward(saved: BilinearSaved, grad_out):
    xp = array_module(grad_out)
    N, channels_x, positions = saved.x.shape
    g = grad_out.astype(saved.x.dtype, copy=False)  # (N, K), K = C_x * C_y
    with numpy.errstate(invalid="ignore", over="ignore"):  # IEEE on NaN and infinities, as the forward
        if saved.l2_normalize:
            # z = s / max(||s||, eps): where ||s|| >= eps, dz/ds = (I - z z^T) / ||s||; below, 1 / eps
            z, norm = saved.normalized, saved.norm
            radial = xp.where(norm >= saved.eps, (z * g).sum(axis=1, keepdims=True), 0)  # (N, 1)
            g = (g - z * radial) / xp.maximum(norm, saved.eps)
        if saved.signed_sqrt:
            # d/dB sign(B) sqrt(|B| + eps) = sign(B)^2 / (2 sqrt(|B| + eps)): 1 / (2 sqrt(|B| + eps))
            # for B != 0, at most 1 / (2 sqrt(eps)); 0 at B = 0 (sign's derivative is 0, as PyTorch's)
            b = saved.products
            g = g * (b != 0) / (2 * xp.sqrt(xp.abs(b) + saved.eps))
        channels_y = (saved.x if saved.y is None else saved.y).shape[1]
        g_b = g.reshape(N, channels_x, channels_y) / positions  # (N, C_x, C_y) dL/dB, with B's 1/P
        if saved.y is None:
            # B = x x^T / P: x is both factors, so it receives both factors' gradients, G x + G^T x,
            # added after the products (as PyTorch's autograd adds them: an infinite x may make
            # the two inf and -inf, NaN, where (G + G^T) x would give one of them)
            grad_x = xp.matmul(g_b, saved.x) + xp.matmul(g_b.transpose(0, 2, 1), saved.x)  # (N, C_x, P)
            return cast_back(grad_x.reshape(saved.x_shape), saved.dtype), None
        grad_x = xp.matmul(g_b, saved.y)  # (N, C_x, P): sum_d dL/dB[c, d] y[d, l]
        grad_y = xp.matmul(g_b.transpose(0, 2, 1), saved.x)  # (N, C_y, P): sum_c dL/dB[c, d] x[c, l]
    return cast_back(grad_x.reshape(saved.x_shape), saved.dtype), cast_back(grad_y.reshape(saved.y_shape), saved.dtype)


BILINEAR_POOL = define_function("bilinear_pool", _bilinear_forward, _bilinear_backward)


def bilinear_pool(x, y=None, *, signed_sqrt=True, l2_normalize=True, eps=1e-12):
    r"""Bilinear (second-order) pooling: the average outer product of two feature maps (B-CNN).

    Parameters
    ----------
    x : array or Tensor, shape (N, C_x, *spatial)
        Floating-point features, at least one spatial dim (float16 is computed in float32).
    y : array or Tensor, shape (N, C_y, *spatial), optional
        Second features, with the same N, spatial dims and dtype as ``x``. None pools ``x`` with
        itself (then ``x`` receives the gradient of both factors).
    signed_sqrt : bool
        Apply :math:`\operatorname{sign}(B)\sqrt{|B| + \epsilon}` elementwise.
    l2_normalize : bool
        Divide each row by :math:`\max(\lVert s \rVert_2, \epsilon)`.
    eps : float
        Finite, > 0: used inside the square root and as the floor of the norm.

    Returns
    -------
    z : array or Tensor, shape (N, C_x * C_y)
        ``B[n, c, d]`` flattened row-major, at index ``c * C_y + d``.

    Notes
    -----
    Forward, over the :math:`P` positions :math:`l` of the spatial dims:

    .. math:: B = \frac{1}{P}\sum_l x_l\, y_l^T, \qquad
              s = \operatorname{sign}(B)\sqrt{|B| + \epsilon}, \qquad
              z = \frac{s}{\max(\lVert s \rVert_2, \epsilon)}

    (:math:`s = B` without ``signed_sqrt``, :math:`z = s` without ``l2_normalize``). How
    :math:`\epsilon` enters: inside the square root it bounds the signed-sqrt slope, which is
    :math:`1 / (2\sqrt{|B|})` without it and explodes as :math:`B \to 0`, by
    :math:`1 / (2\sqrt{\epsilon})`; note that it also lifts every nonzero :math:`|s|` to at least
    :math:`\sqrt{\epsilon}`, while :math:`B = 0` gives :math:`s = 0`. In the norm it is the floor of
    the divisor exactly as in ``torch.nn.functional.normalize(s, dim=1, eps=eps)``: a row whose norm
    is below :math:`\epsilon` is divided by :math:`\epsilon` (not made unit length), so an all-zero
    row stays zero.

    Backward, in reverse order. Through the normalisation, with :math:`n = \lVert s \rVert_2`,

    .. math:: \frac{\partial L}{\partial s} = \frac{g - z\,(z \cdot g)}{n} \ \ (n \ge \epsilon),
              \qquad \frac{\partial L}{\partial s} = \frac{g}{\epsilon} \ \ (n < \epsilon)

    through the signed square root,
    :math:`\partial L / \partial B = \partial L / \partial s \cdot \operatorname{sign}(B)^2 / (2\sqrt{|B| + \epsilon})`
    (zero at :math:`B = 0`, where the forward jumps from :math:`-\sqrt\epsilon` to
    :math:`\sqrt\epsilon`; PyTorch's composition gives the same), and through the products, with
    :math:`G = \partial L / \partial B` as a :math:`C_x \times C_y` matrix,

    .. math:: \frac{\partial L}{\partial x_l} = \frac{1}{P}\, G\, y_l, \qquad
              \frac{\partial L}{\partial y_l} = \frac{1}{P}\, G^T x_l, \qquad
              \frac{\partial L}{\partial x_l} = \frac{1}{P} (G + G^T)\, x_l \ \ (y = \text{None})

    The products square the features' magnitude: for float32 input they are taken in float64 (float32
    would overflow from about :math:`10^{19}` and underflow below :math:`10^{-19}`, where the signed
    square root and the normalisation bring the output back into range); float16 input is computed
    in float32. An output beyond the dtype's range is :math:`\pm\infty` (float64 products of
    features beyond about :math:`10^{154}` overflow). NaN and infinities follow IEEE arithmetic in
    PyTorch's order of evaluation: with ``y`` None, ``x`` receives :math:`G x + G^T x`, the two
    factors' gradients added after the products, as PyTorch's autograd adds them (an infinite
    feature can make them :math:`+\infty` and :math:`-\infty`, NaN), and the normalisation's
    backward is :math:`(g - z\,(z \cdot g)) / n`, its sum taken first.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[1., 3.], [2., 4.]]])  # N = 1, C = 2, two positions
    >>> poolref.bilinear_pool(x, signed_sqrt=False, l2_normalize=False)  # (x_0 x_0^T + x_1 x_1^T) / 2
    array([[ 5.,  7.,  7., 10.]])
    >>> poolref.bilinear_pool(np.array([[[3.], [4.]]]), np.ones((1, 1, 1)), signed_sqrt=False)  # B / ||B||
    array([[0.6, 0.8]])
    """
    op = "bilinear_pool"
    x = check_global_input(x, op)
    if y is not None:
        y = check_global_input(y, op, name="y")
        if y.ndim != x.ndim or y.shape[0] != x.shape[0] or tuple(y.shape[2:]) != tuple(x.shape[2:]):
            raise ValueError(
                f"{op}: x and y must share N and the spatial dims, got x with shape {tuple(x.shape)} "
                f"and y with shape {tuple(y.shape)}"
            )
        if numpy.dtype(y.dtype) != numpy.dtype(x.dtype):
            raise TypeError(f"{op}: x and y must have the same dtype, got x with dtype {x.dtype} and y with dtype {y.dtype}")
    signed_sqrt = check_flag(signed_sqrt, "signed_sqrt", op)
    l2_normalize = check_flag(l2_normalize, "l2_normalize", op)
    eps = check_positive_number(eps, "eps", op)
    # the output (N, C_x * C_y) grows with the square of the channels: refuse an absurd one at once
    channels_y = x.shape[1] if y is None else y.shape[1]
    check_element_count(x.shape[0] * x.shape[1] * channels_y, "x.shape", tuple(x.shape), op,
                        f"the output (N, C_x * C_y) = ({x.shape[0]}, {x.shape[1]} * {channels_y})")
    return apply(BILINEAR_POOL, x, y, signed_sqrt=signed_sqrt, l2_normalize=l2_normalize, eps=eps)
