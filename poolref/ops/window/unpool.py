r"""Max unpooling in 1, 2 and 3 dimensions: max pooling's scatter, whose backward is the gather."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..._backend import array_module
from ..._checks import check_element_count, check_pool_input
from ..._geometry import as_int_tuple, resolve_padding, unpool_output_shape
from ..._windows import gather_from_planes, plane_layout
from ...autograd.function import apply, define_function

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d", "MAX_UNPOOL"]


# ==================================================================================================
# Max unpooling
# ==================================================================================================
class MaxUnpoolSaved(NamedTuple):
    indices: object
    ndim: int


def _max_unpool_forward(x, indices, *, out_spatial: tuple):
    xp = array_module(x)
    n = len(out_spatial)
    lead = x.shape[: x.ndim - n]
    planes, plane_size = plane_layout(lead + tuple(out_spatial), n)
    y = xp.zeros((planes, plane_size), dtype=x.dtype)
    rows = xp.arange(planes).reshape(planes, 1)
    # each value goes to its index in its plane; with repeated indices the last write wins
    values_per_plane = plane_layout(x.shape, n)[1]
    y[rows, indices.reshape(planes, values_per_plane)] = x.reshape(planes, values_per_plane)
    return y.reshape(lead + tuple(out_spatial)), MaxUnpoolSaved(indices, n)


# forward  y[index_i] = x_i                 (a scatter; with repeated indices the last write wins)
# backward grad_x_i = grad_y[index_i]       (its adjoint: a gather); the indices get no gradient
def _max_unpool_backward(saved: MaxUnpoolSaved, grad_y):
    return gather_from_planes(grad_y, saved.indices, saved.ndim), None


MAX_UNPOOL = define_function("max_unpool", _max_unpool_forward, _max_unpool_backward)


def _max_unpool(x, indices, n, op, kernel_size, stride, padding, output_size):
    x = check_pool_input(x, n, op, integer_ok=True)
    if not (hasattr(indices, "shape") and hasattr(indices, "dtype")):
        indices = numpy.asarray(indices)
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"{op}: indices must have the shape of x {tuple(x.shape)}, got indices with shape {tuple(indices.shape)}")
    if numpy.dtype(indices.dtype).kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got indices with dtype {indices.dtype}")
    kernel = as_int_tuple(kernel_size, n, "kernel_size", op)
    strides = kernel if stride is None else as_int_tuple(stride, n, "stride", op)
    pads = _unpool_padding(padding, n, op)
    for name, value in (("kernel_size", kernel), ("stride", strides)):
        if any(v <= 0 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    out_spatial = unpool_output_shape(tuple(x.shape[-n:]), kernel, strides, pads, output_size, op)
    # the output (N, C, *out_spatial) is sized from the arguments: refuse an absurd one before allocating
    name, value = ("output_size", output_size) if output_size is not None else (("stride", stride) if stride is not None else ("kernel_size", kernel_size))
    check_element_count(math.prod(x.shape[:-n]) * math.prod(out_spatial), name, value, op, f"the output (spatial size {out_spatial})")
    raw = indices.data if hasattr(indices, "requires_grad") else indices
    plane_size = math.prod(out_spatial)
    if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= plane_size):
        raise ValueError(
            f"{op}: indices must lie in [0, {plane_size}) for output size {out_spatial}, got indices "
            f"from {int(raw.min())} to {int(raw.max())}"
        )
    return apply(MAX_UNPOOL, x, indices, out_spatial=out_spatial)


def _unpool_padding(padding, n, op):
    """The pooling's padding as (begin, end) pairs; unpooling has no "same" or "valid" strings."""
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be ints or (begin, end) pairs, got padding={padding!r}")
    return resolve_padding(padding, (1,) * n, (1,) * n, (1,) * n, (1,) * n, op)




def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""1-D max unpooling of (N, C, L) or (C, L); see :func:`max_unpool2d`.

    Notes
    -----
    :math:`y_{\mathrm{index}_o} = x_o`, zeros elsewhere; backward
    :math:`\partial L/\partial x_o = \partial L/\partial y_{\mathrm{index}_o}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_unpool1d(np.array([[3., 5.]]), np.array([[1, 3]]), 2)
    array([[0., 3., 0., 5.]])
    """
    return _max_unpool(x, indices, 1, "max_unpool1d", kernel_size, stride, padding, output_size)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""2-D max unpooling: put each value back where :func:`max_pool2d` found it.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Pooled values (floating or integer).
    indices : integer array or Tensor, same shape as ``x``
        Flat in-plane indices, as returned by ``max_pool2d(..., return_indices=True)``.
    kernel_size, stride, padding
        The pooling's arguments, used for the default output size.
    output_size : sequence of ints, optional
        The spatial output size (optionally preceded by N and C); must lie within ``stride`` of the
        default.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    The partial inverse of max pooling: each value is written at its index in its (n, c) plane and
    every other output is zero,

    .. math:: y_{\mathrm{index}_o} = x_o, \qquad y_j = 0 \text{ for every other } j

    Backward, the adjoint gather:
    :math:`\partial L / \partial x_o = \partial L / \partial y_{\mathrm{index}_o}`. The default output length
    is :math:`(L_{in} - 1) s - 2p + k`.

    Repeated indices (from overlapping pooling windows) follow PyTorch: the forward keeps the last
    write, and the backward still gathers for every entry, so there it is not the derivative of the
    forward. With unique indices (``stride >= kernel_size``) the pair is exactly adjoint.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[1., 4.], [3., 2.]]])
    >>> y, i = poolref.max_pool2d(x, 2, return_indices=True)
    >>> poolref.max_unpool2d(y, i, 2)
    array([[[0., 4.],
            [0., 0.]]])
    """
    return _max_unpool(x, indices, 2, "max_unpool2d", kernel_size, stride, padding, output_size)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""3-D max unpooling of (N, C, D, H, W) or (C, D, H, W); see :func:`max_unpool2d`.

    Notes
    -----
    :math:`y_{\mathrm{index}_o} = x_o`, zeros elsewhere; backward
    :math:`\partial L/\partial x_o = \partial L/\partial y_{\mathrm{index}_o}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_unpool3d(np.array([[[[2.]]]]), np.array([[[[7]]]]), 2).ravel()
    array([0., 0., 0., 0., 0., 0., 0., 2.])
    """
    return _max_unpool(x, indices, 3, "max_unpool3d", kernel_size, stride, padding, output_size)
