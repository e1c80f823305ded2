r"""Plain-loop references of ``interpolate``: forward and backward, output by output, with the taps of
:mod:`.resize_taps`."""

from __future__ import annotations

import itertools
import math

import numpy

from .resize_taps import (
    adaptive_bin_taps,
    jax_dense_taps,
    jax_nearest_index,
    nearest_source_index,
    tf_antialias_gradient_taps,
    tf_antialias_taps,
    tf_area_taps,
    tf_bilinear_lerp,
    tf_cubic_taps,
    tf_nearest_index,
    torch_antialias_taps,
    torch_cubic_taps,
    torch_linear_taps,
)

__all__ = ["resize_taps", "interpolate_reference", "interpolate_backward_reference"]


def resize_taps(o, L, O, mode, align_corners=False, scale_factor=None, *, antialias=False, convention="torch",
                dtype=numpy.float64, shortcuts=True):
    r"""The ``(input position, weight)`` pairs output ``o`` reads along one axis, ``L`` -> ``O``, in the
    forward of ``interpolate``.

    Parameters
    ----------
    o : int
    L, O : int
    mode : {"nearest", "nearest-exact", "linear", "area"}
        Any linear mode ("bilinear", "trilinear") reads like "linear" along each axis.
    align_corners : bool
    scale_factor : float or None
        As for :func:`nearest_source_index` (PyTorch only; ignored with ``align_corners``).
    antialias : bool
    convention : {"torch", "tensorflow", "jax"}
    dtype : numpy dtype
        The data's dtype (PyTorch computes float64 data's coordinates in float64).
    shortcuts : bool
        PyTorch's nearest shortcuts (:func:`nearest_source_index`): its 2-D resize takes them, its 1-D
        and 3-D resizes do not.

    Returns
    -------
    list of (int, float)
        Every tap read, zero weights included. ``[(o, 1.0)]`` for an axis the framework copies.
        TensorFlow's (non-antialiased) bilinear is not a weighted sum: see :func:`tf_bilinear_lerp`.

    Examples
    --------
    >>> [resize_taps(o, 2, 4, "linear") for o in range(4)]
    [[(0, 1.0), (1, 0.0)], [(0, 0.75), (1, 0.25)], [(0, 0.25), (1, 0.75)], [(1, 0.75), (1, 0.25)]]
    >>> resize_taps(0, 4, 4, "linear", convention="jax")  # JAX leaves an unchanged axis alone
    [(0, 1.0)]
    """
    linear = mode not in ("nearest", "nearest-exact", "area")
    if convention == "torch":
        if mode in ("nearest", "nearest-exact"):
            return [(nearest_source_index(o, L, O, scale_factor, exact=mode == "nearest-exact", shortcuts=shortcuts), 1.0)]
        if mode == "area":
            return adaptive_bin_taps(o, L, O)
        cubic = mode == "bicubic"
        if antialias:
            return [(o, 1.0)] if O == L else torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype, cubic)
        if cubic:
            return torch_cubic_taps(o, L, O, align_corners, scale_factor, dtype)
        return torch_linear_taps(o, L, O, align_corners, scale_factor, dtype)
    if convention == "tensorflow":
        if mode in ("nearest", "nearest-exact"):
            return [(tf_nearest_index(o, L, O, mode == "nearest-exact", align_corners), 1.0)]
        if mode == "area":
            return tf_area_taps(o, L, O, align_corners)
        if antialias:
            return tf_antialias_taps(o, L, O, cubic=mode == "bicubic")
        if mode == "bicubic":
            return tf_cubic_taps(o, L, O, align_corners)
        raise ValueError("TensorFlow's bilinear resize is a lerp, not a weighted sum: use tf_bilinear_lerp")
    if O == L:
        return [(o, 1.0)]
    if mode == "nearest-exact":
        return [(jax_nearest_index(o, L, O), 1.0)]
    return jax_dense_taps(o, L, O, {"area": "area", "bicubic": "cubic"}.get(mode, "linear"), antialias and linear)


def _weighs_as_copy(L, O, align_corners, scale_factor, dtype, mode="bilinear", antialias=True) -> bool:
    """Whether PyTorch's table (antialiased, or bicubic) of a same-size axis weighs each output's own
    pixel 1, the rest 0."""
    for o in range(O):
        if antialias:
            taps = torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype, mode == "bicubic")
        else:
            taps = torch_cubic_taps(o, L, O, align_corners, scale_factor, dtype)
        if sum(w for position, w in taps if position == o) != 1.0 or any(w != 0.0 for position, w in taps if position != o):
            return False
    return True


def _backward_reads(i, L, O, mode, align_corners, scale_factor, antialias, convention, dtype, same_size=False,
                    shortcuts=True):
    """What the gradient of input position ``i`` reads along one axis: ``[(o, w), ...]``, in the order
    ``(o, tap)`` in which a scatter-add over the outputs accumulates. ``same_size``: no spatial size
    of the image changes; ``shortcuts``: as for :func:`resize_taps` (the forward's, whose transpose
    poolref's gradient is; PyTorch's 1-D and 3-D backwards take them, a known defect)."""
    if convention == "tensorflow" and mode in ("bilinear", "bicubic") and antialias:
        return tf_antialias_gradient_taps(i, L, O, cubic=mode == "bicubic")
    reads = []
    for o in range(O):
        if convention == "tensorflow" and mode == "bilinear":  # the forward's transpose: both taps, always
            lower, upper, t = tf_bilinear_lerp(o, L, O, align_corners)
            taps = [(lower, 1.0 - float(t)), (upper, float(t))]
        elif convention == "torch" and antialias:
            # PyTorch's backward resamples an axis whose size does not change too: as it does where
            # that table is a copy (weight 1 on o, 0 elsewhere: only the zero-weight reads differ),
            # and as the copy the forward is where it is not (PyTorch's known defect)
            taps = torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype, mode == "bicubic")
            if O == L and not _weighs_as_copy(L, O, align_corners, scale_factor, dtype, mode):
                taps = [(o, 1.0)]
        elif convention == "torch" and mode == "bicubic" and same_size and _weighs_as_copy(
                L, O, align_corners, scale_factor, dtype, mode, antialias=False):
            # PyTorch's bicubic backward copies the gradient when no spatial size changes; where the
            # forward's table is not a copy (a scale factor other than 1) poolref keeps the derivative
            taps = [(o, 1.0)]
        else:
            taps = resize_taps(o, L, O, mode, align_corners, scale_factor, antialias=antialias,
                               convention=convention, dtype=dtype, shortcuts=shortcuts)
        reads += [(o, w) for position, w in taps if position == i]
    return reads


def interpolate_reference(x, output_size, mode="nearest", align_corners=False, scale_factors=None, *,
                          antialias=False, convention="torch"):
    r"""``interpolate`` by loops: every output element sums its taps' weighted inputs.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)``
        Its dtype selects PyTorch's coordinate arithmetic (float64 or float32); the sums run in float64.
    output_size : tuple of int
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"}
    align_corners : bool
    scale_factors : tuple of (float or None), optional
        Per axis, the user's scale factor (see :func:`nearest_source_index`); None: from the sizes.
    antialias : bool
        The effective flag (the convention's default already applied).
    convention : {"torch", "tensorflow", "jax"}

    Returns
    -------
    y : ndarray of float64, shape ``(N, C, *output_size)``

    Notes
    -----
    :math:`y_o = \sum w \, x_i` over the Cartesian product of the per-axis taps of
    :func:`resize_taps`, the weight being the product of the per-axis weights. TensorFlow's
    bilinear resize is its own nested form: along the last axis
    :math:`t_r = x_{r,l} + (x_{r,u} - x_{r,l})\,t` for the rows ``r`` of the lower and upper row
    taps, then :math:`y = t_{lower} + (t_{upper} - t_{lower})\,t'` (the image is copied when no size
    changes).

    Examples
    --------
    >>> interpolate_reference(numpy.array([[[0., 2.]]]), (4,), "linear").tolist()
    [[[0.0, 0.5, 1.5, 2.0]]]
    """
    dtype = numpy.asarray(x).dtype
    x = numpy.asarray(x, dtype=numpy.float64)
    output_size = tuple(output_size)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    y = numpy.zeros((N, C) + output_size)
    tf_lerp = convention == "tensorflow" and mode == "bilinear" and not antialias
    with numpy.errstate(invalid="ignore", over="ignore"):
        if tf_lerp and spatial == output_size:
            return x.copy()
        for out_pos in itertools.product(*[range(O) for O in output_size]):
            if tf_lerp:
                (top, bottom, ty), (left, right, tx) = (
                    tf_bilinear_lerp(o, L, O, align_corners) for o, L, O in zip(out_pos, spatial, output_size))
                for b, c in itertools.product(range(N), range(C)):
                    rows = [x[b, c, r, left] + (x[b, c, r, right] - x[b, c, r, left]) * tx for r in (top, bottom)]
                    y[(b, c) + out_pos] = rows[0] + (rows[1] - rows[0]) * ty
                continue
            per_axis = [
                resize_taps(o, L, O, mode, align_corners, s, antialias=antialias, convention=convention, dtype=dtype,
                            shortcuts=len(spatial) == 2)
                for o, L, O, s in zip(out_pos, spatial, output_size, scale_factors)
            ]
            taps = [(tuple(i for i, _ in combination), math.prod(w for _, w in combination))
                    for combination in itertools.product(*per_axis)]  # the n-linear weights multiply
            for b, c in itertools.product(range(N), range(C)):
                total = 0.0
                for position, weight in taps:
                    total += weight * x[(b, c) + position]
                y[(b, c) + out_pos] = total
    return y


def interpolate_backward_reference(grad_y, input_shape, mode="nearest", align_corners=False, scale_factors=None, *,
                                   antialias=False, convention="torch", dtype=numpy.float64):
    r"""Gradient of :func:`interpolate_reference`, as each framework's backward reads it.

    Parameters
    ----------
    grad_y : ndarray, shape ``(N, C, *output_size)``
    input_shape : tuple of int
        ``(N, C, *spatial)``.
    mode, align_corners, scale_factors, antialias, convention
        As for :func:`interpolate_reference`.
    dtype : numpy dtype
        The dtype of the forward's input.

    Returns
    -------
    grad_x : ndarray of float64, shape ``input_shape``

    Notes
    -----
    The transpose of the forward: every tap receives its weight times the gradient,

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o} \sum_{(i', w) \in taps(o),\, i' = i} w\,
              \frac{\partial L}{\partial y_o},

    written per input position as the list of outputs that read it along each axis. Where the
    framework's backward reads other taps than its forward: PyTorch's antialiased backward and
    TensorFlow's bilinear backward resample axes the forward copies (with their zero-weight
    neighbour), and TensorFlow's antialiased gradient reads the windows of
    :func:`tf_antialias_gradient_taps`.

    Examples
    --------
    >>> interpolate_backward_reference(numpy.ones((1, 1, 4)), (1, 1, 2), "linear").tolist()
    [[[2.0, 2.0]]]
    """
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    input_shape = tuple(input_shape)
    output_size = grad_y.shape[2:]
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    grad_x = numpy.zeros(input_shape)
    same_size = tuple(spatial) == tuple(output_size)
    reads = [[_backward_reads(i, L, O, mode, align_corners, s, antialias, convention, dtype, same_size, len(input_shape) == 4)
              for i in range(L)]
             for L, O, s in zip(spatial, output_size, scale_factors)]
    with numpy.errstate(invalid="ignore", over="ignore"):
        for in_pos in itertools.product(*[range(L) for L in spatial]):
            per_axis = [reads[a][i] for a, i in enumerate(in_pos)]
            for combination in itertools.product(*per_axis):
                out_pos = tuple(o for o, _ in combination)
                weight = math.prod(w for _, w in combination)
                for b, c in itertools.product(range(N), range(C)):
                    grad_x[(b, c) + in_pos] += weight * grad_y[(b, c) + out_pos]
    return grad_x
