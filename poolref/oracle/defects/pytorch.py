r"""PyTorch 2.13's known defects (CPU).

* Lp pooling's gradient is that of its composition ``(sign(S) * relu(|S|) * k)^(1/p)``,
  ``S = avg_pool(x^p)``: with ``norm_type=1`` a window whose sum is NaN sends ``0 * g`` back
  (``torch.sign(NaN)`` is 0), and an input cell no window reads gets NaN where it holds NaN or an
  infinity and ``p > 1`` (``0 * p x^(p-1)``).
* ``interpolate(mode="bilinear" or "bicubic", antialias=True)`` with an output width of 1 and a height
  that changes writes its first output row into every row; and it copies an axis whose size does not change, but
  its backward resamples that axis with the scale factor's weights (not a copy where the factor is
  not 1: ``scale_factor=(1.0, 1.01)`` on a (1, 2) input gives the copied element a gradient of 0.985);
  antialiased ``bicubic`` does the same.
* ``interpolate(mode="bicubic")`` resamples every axis, but its backward copies the gradient when no
  spatial size changes, also with a scale factor that keeps the size but not the scale (1.1 on 4).
* ``interpolate(mode="nearest")`` of 1-D and 3-D inputs reads by the scale factor in its forward, but
  its backward takes the 2-D kernel's shortcuts (a copy at O = L, o // 2 at O = 2L).
* ``adaptive_max_pool1d/2d/3d`` accumulate a float16 gradient in float16, one upstream entry after
  the other (poolref sums in float32 and rounds once): a few ulps apart where outputs share winners.
* ``adaptive_avg_pool1d/2d/3d`` (and ``interpolate``'s area mode) accumulate a float16 gradient in
  float16 too, each share ``g / k_T / k_H / k_W`` rounded division by division.
* ``conv2d``'s float32 weight gradient leaves out the zero padding where oneDNN computes it.

Each is a :class:`~poolref.oracle.mapping.KnownDefect`; see :mod:`poolref.oracle.defects`.
"""

from __future__ import annotations

import math

import numpy

from ..._geometry import pool_geometry
from ...cases.case import Case
from ..mapping import KnownDefect
from .common import weight_gradient_without_padding

__all__ = ["TORCH_HALF_ADAPTIVE_AVG_GRADIENT", "TORCH_LP_POOL", "TORCH_ANTIALIAS_COPIED_AXIS", "TORCH_NEAREST_SHORTCUT_GRADIENT", "TORCH_HALF_ADAPTIVE_MAX_GRADIENT", "TORCH_CONV_FLOAT32_PADDING_GRADIENT", "TORCH_BICUBIC_COPIED_GRADIENT", "TORCH_ANTIALIAS_WIDTH_ONE"]


def _lp_cells_read(case: Case):
    """(..spatial) True where some window of an Lp pooling case reads the input cell."""
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    if "kernel_size" not in kw:  # global Lp pooling: one window over everything
        return numpy.ones(case.x.shape[-n:], dtype=bool)
    return pool_geometry(case.x.shape[-n:], kw["kernel_size"], kw.get("stride"), 0, 1, kw.get("ceil_mode", False),
                         "torch", case.op).cells_read()


def _unread_nonfinite(case: Case) -> bool:
    # x^(p-1) is x^0 = 1 for p = 1, NaN and infinities included: the defect needs p != 1
    return (case.kwargs["norm_type"] != 1.0 and bool(case.x.size)
            and bool((~numpy.isfinite(case.x[..., ~_lp_cells_read(case)])).any()))


def _nan_unread_cells(case: Case, ours, cotangent):
    """PyTorch's gradient with NaN at the unread cells that hold NaN or an infinity."""
    grad = ours.grads["x"].copy()
    grad[~numpy.isfinite(case.x) & ~_lp_cells_read(case)] = numpy.nan
    return ours._replace(grads={**ours.grads, "x": grad})


def _nan_window_at_p_one(case: Case) -> bool:
    return case.kwargs["norm_type"] == 1.0 and bool(numpy.isnan(case.x).any())


def _no_gradient_from_nan_windows(case: Case, ours, cotangent):
    """PyTorch's gradient: poolref's pullback of an upstream gradient that is 0 on the NaN windows."""
    from ..engine import run_poolref

    silenced = numpy.where(numpy.isnan(ours.values), 0, cotangent).astype(cotangent.dtype)
    return run_poolref(case, cotangent=silenced)[0]


def _lp_pool_defects() -> tuple:
    """PyTorch's Lp pooling is ``sign(S) * relu(|S|) * k`` to the 1/p, ``S = avg_pool(x^p)``: its gradient is that
    composition's, which differs from the derivative in two places (found by the oracle, modelled
    exactly, so that they excuse nothing else)."""
    return (
        KnownDefect("with norm_type=1, a window whose sum is NaN sends 0 * g back, where the sum's derivative is 1: "
                    "torch.sign(NaN) is 0, so sign(S) * relu(|S|) passes nothing ([1, nan, 2, 3], kernel 2, gives the "
                    "gradient [0, 0, 1, 1]; an infinite g gives NaN)", _nan_window_at_p_one,
                    model=_no_gradient_from_nan_windows),
        KnownDefect("an input cell that no window reads gets a NaN gradient when it holds NaN or an infinity and "
                    "norm_type > 1 (its true gradient is 0): pow's backward multiplies 0 by p x^(p-1) there (the norm "
                    "types drawn are 1, 1.5, 2 and 3; with p < 1 a +inf there gets 0, as (+inf)^(p-1) is 0)",
                    _unread_nonfinite,
                    model=_nan_unread_cells),
    )


TORCH_LP_POOL = _lp_pool_defects()


def _antialias_width_one(case: Case) -> bool:
    kw = case.kwargs
    if not (kw.get("antialias") and kw.get("mode") in ("bilinear", "bicubic") and kw.get("size") is not None):
        return False
    size = (kw["size"],) * 2 if isinstance(kw["size"], int) else tuple(kw["size"])
    return size[-1] == 1 and size[-2] != case.x.shape[-2]


def _first_row_everywhere(case: Case, ours, cotangent):
    """PyTorch's output: the first output row written into every row (the gradient is right)."""
    values = numpy.broadcast_to(ours.values[..., :1, :], ours.values.shape).copy()
    return ours._replace(values=values)


def _resamples_a_copied_axis(case: Case) -> bool:
    """Antialiased bilinear with an axis whose size does not change but whose table is not a copy."""
    from ..._sampling_weights import torch_antialias
    from ...ops.sampling.interpolate import _weighs_as_copy
    from ...cases.case import resize_factors, resize_size

    kw = case.kwargs
    if not (kw.get("antialias") and kw.get("mode") in ("bilinear", "bicubic")):
        return False
    n = case.x.ndim - 2
    factors = resize_factors(case) if not kw.get("recompute_scale_factor") else None
    factors = factors or (None,) * n
    dtype = numpy.float64 if case.dtype == numpy.float64 else numpy.float32
    cubic = kw.get("mode") == "bicubic"
    return any(L == O and not _weighs_as_copy(torch_antialias(L, O, bool(kw.get("align_corners")), f, dtype, cubic))
               for L, O, f in zip(case.x.shape[-n:], resize_size(case), factors))


def _every_axis_resampled(case: Case, ours, cotangent):
    """PyTorch's antialiased backward: every axis resampled with its table's transpose, copied ones too."""
    from ..._sampling_weights import resample, torch_antialias
    from ...cases.case import resize_factors, resize_size

    kw = case.kwargs
    n = case.x.ndim - 2
    factors = resize_factors(case) if not kw.get("recompute_scale_factor") else None
    factors = factors or (None,) * n
    dtype = numpy.float64 if case.dtype == numpy.float64 else numpy.float32
    grad = cotangent.astype(numpy.float64)
    for a in reversed(range(n)):
        L, O = case.x.shape[2 + a], resize_size(case)[a]
        table = torch_antialias(L, O, bool(kw.get("align_corners")), factors[a], dtype, kw.get("mode") == "bicubic")
        grad = resample(grad, table.transpose(), 2 + a)
    return ours._replace(grads={**ours.grads, "x": grad.astype(case.dtype)})


TORCH_ANTIALIAS_COPIED_AXIS = KnownDefect(
    "interpolate(mode='bilinear', antialias=True) copies an axis whose size does not change, but its backward "
    "resamples that axis with the weights of the scale factor: with scale_factor=(1.0, 1.01) on a (1, 2) input the "
    "gradient of the copied x[..., 1] under an upstream of ones is 0.985, not 1 (antialiased bicubic: 0.990)",
    _resamples_a_copied_axis, model=_every_axis_resampled)


def _bicubic_backward_copies(case: Case) -> bool:
    """Plain bicubic, no spatial size changed, but a table that is not a copy (a scale factor other than 1)."""
    from ..._sampling_weights import torch_cubic
    from ...ops.sampling.interpolate import _weighs_as_copy
    from ...cases.case import resize_factors, resize_size

    kw = case.kwargs
    if kw.get("mode") != "bicubic" or kw.get("antialias"):
        return False
    n = case.x.ndim - 2
    if tuple(case.x.shape[-n:]) != tuple(resize_size(case)):
        return False
    factors = resize_factors(case) if not kw.get("recompute_scale_factor") else None
    factors = factors or (None,) * n
    dtype = numpy.float64 if case.dtype == numpy.float64 else numpy.float32
    return any(not _weighs_as_copy(torch_cubic(L, L, bool(kw.get("align_corners")), f, dtype))
               for L, f in zip(case.x.shape[-n:], factors))


def _gradient_copied(case: Case, ours, cotangent):
    """PyTorch's bicubic backward when no size changes: the upstream gradient, copied."""
    return ours._replace(grads={**ours.grads, "x": numpy.asarray(cotangent).astype(case.dtype)})


def _nearest_forward_without_shortcuts(case: Case) -> bool:
    """1-D or 3-D ``nearest`` through a scale factor, where the shortcuts (a copy at O = L, o // 2 at
    O = 2L) read other pixels than the scale: PyTorch's forward reads by the scale, its backward by
    the shortcuts."""
    from ..._sampling_weights import nearest_indices
    from ...cases.case import resize_scales, resize_size

    if case.op != "interpolate" or case.kwargs.get("mode") != "nearest":
        return False
    sizes, scales = resize_size(case), resize_scales(case)
    if len(sizes) == 2 or scales is None:
        return False
    return any(not numpy.array_equal(nearest_indices(L, O, s), nearest_indices(L, O, s, shortcuts=False))
               for L, O, s in zip(case.x.shape[-len(sizes):], sizes, scales))


def _gradient_by_the_shortcuts(case: Case, ours, cotangent):
    """PyTorch's nearest backward: each upstream entry added to the pixel the shortcut rule names."""
    from ..._sampling_weights import nearest_indices
    from ...cases.case import resize_scales, resize_size

    sizes, scales = resize_size(case), resize_scales(case)
    spatial = case.x.shape[case.x.ndim - len(sizes):]
    # the input cell each output reads, as a flat index into its plane, in output order
    axes = numpy.ix_(*(nearest_indices(L, O, s) for L, O, s in zip(spatial, sizes, scales)))
    cells = numpy.ravel_multi_index(numpy.broadcast_arrays(*axes), spatial).ravel()
    planes = math.prod(case.x.shape[:case.x.ndim - len(sizes)])
    grad = numpy.zeros((planes, math.prod(spatial)))
    with numpy.errstate(invalid="ignore", over="ignore"):  # one upstream entry after the other
        numpy.add.at(grad, (slice(None), cells), numpy.asarray(cotangent, dtype=numpy.float64).reshape(planes, cells.size))
    return ours._replace(grads={**ours.grads, "x": grad.reshape(case.x.shape).astype(case.dtype)})


TORCH_NEAREST_SHORTCUT_GRADIENT = KnownDefect(
    "interpolate(mode='nearest') of 1-D and 3-D inputs through a scale factor reads by the scale in its forward, but "
    "its backward (in every dimension, as the 2-D forward) copies where the length does not change and reads o // 2 "
    "where it doubles: scale_factor=2.2 on arange(4.) gives [0, 0, 0, 1, 1, 2, 2, 3] and, for an upstream "
    "[1, ..., 8], the gradient [3, 7, 11, 15] of [0, 0, 1, 1, 2, 2, 3, 3] (the forward's adjoint: [6, 9, 13, 8])",
    _nearest_forward_without_shortcuts, model=_gradient_by_the_shortcuts)


def _adaptive_max_float16(case: Case) -> bool:
    return case.op.startswith("adaptive_max_pool") and case.dtype == numpy.float16


def _half_scatter(x_shape: tuple, n: int, cells, values):
    """Add ``values`` (planes, reads) to the plane cells ``cells`` (planes, reads) of a float16 gradient
    of ``x_shape``, one after the other in the order given: every sum rounds to float16, as
    PyTorch's CPU backward kernels accumulate a float16 gradient."""
    planes, plane = math.prod(x_shape[:len(x_shape) - n]), math.prod(x_shape[len(x_shape) - n:])
    cells = numpy.asarray(cells)
    reads = math.prod(cells.shape[len(x_shape) - n:])  # per plane (spelled out: a batch may be empty)
    flat = cells.reshape(planes, reads) + numpy.arange(planes).reshape(planes, 1) * plane
    grad = numpy.zeros(planes * plane, dtype=numpy.float16)
    with numpy.errstate(invalid="ignore", over="ignore"):
        numpy.add.at(grad, flat.ravel(), numpy.asarray(values, dtype=numpy.float16).reshape(planes, reads).ravel())
    return grad.reshape(x_shape)


def _float16_sequential_scatter(case: Case, ours, cotangent):
    """PyTorch's CPU adaptive max pooling backward for float16: each upstream entry is added to its
    winner's gradient in float16, one after the other in output order (every sum rounds)."""
    from ..engine import run_poolref

    with_indices = case.replace(kwargs={**case.kwargs, "return_indices": True})
    indices = numpy.asarray(run_poolref(with_indices, gradients=False)[0].indices)
    n = int(case.op[-2])
    return ours._replace(grads={**ours.grads, "x": _half_scatter(case.x.shape, n, indices, cotangent)})


def _adaptive_avg_sizes(case: Case):
    """The output size of an adaptive average pooling case, or of an area-mode resize (the same op)."""
    from ...cases.case import resize_size

    if case.op == "interpolate":
        return tuple(resize_size(case)) if case.kwargs.get("mode") == "area" else None
    if not case.op.startswith("adaptive_avg_pool"):
        return None
    n, size = int(case.op[-2]), case.kwargs["output_size"]
    return (size,) * n if isinstance(size, int) else tuple(size)


def _adaptive_avg_float16(case: Case) -> bool:
    return case.dtype == numpy.float16 and _adaptive_avg_sizes(case) is not None


def _float16_sequential_average(case: Case, ours, cotangent):
    """PyTorch's CPU adaptive average pooling backward (interpolate's area mode) for float16: per
    output, in output order, ``delta = g / k_T / k_H / k_W`` (over the axes there are; each division
    rounds to float16) is added to each cell of its bin, every sum rounding to float16.
    Bins: ``[floor(o L / O), ceil((o + 1) L / O))``."""
    sizes = _adaptive_avg_sizes(case)
    n = len(sizes)
    spatial = case.x.shape[-n:]
    bins = []  # per axis, each output's first cell and the cell past its last: (O,), (O,)
    for L, O in zip(spatial, sizes):
        o = numpy.arange(O)
        bins.append((o * L // O, -(-(o + 1) * L // O)))
    lengths = [end - start for start, end in bins]  # (O,) per axis
    g = numpy.asarray(cotangent, dtype=numpy.float16)
    delta = g
    for axis, k in enumerate(lengths):  # g / k_T, then / k_H, then / k_W, each rounded
        delta = delta / k.astype(numpy.float16).reshape((-1,) + (1,) * (n - 1 - axis))
    # every (output, cell of its bin) read, outputs in order and cells in order within each
    cells, values = [], []
    for offsets in numpy.ndindex(*(int(k.max()) for k in lengths)):  # the bins' cells, a handful per axis
        inside = numpy.ones(tuple(sizes), dtype=bool)
        cell = numpy.zeros(tuple(sizes), dtype=numpy.int64)
        for axis, ((start, _), k, t) in enumerate(zip(bins, lengths, offsets)):
            shape = (-1,) + (1,) * (n - 1 - axis)
            inside &= (t < k).reshape(shape)
            cell = cell * spatial[axis] + (start + t).reshape(shape)
        cells.append(numpy.where(inside, cell, -1))
        values.append(delta)
    order = numpy.stack(cells, axis=-1)  # (*sizes, reads): output-major
    lead = g.shape[:g.ndim - n]
    reads = numpy.broadcast_to(order, lead + order.shape).reshape(lead + (order.size,))  # not -1: a batch may be empty
    shares = numpy.broadcast_to(numpy.stack(values, axis=-1), lead + order.shape).reshape(lead + (order.size,))
    keep = order.reshape(-1) >= 0  # the bins' cells, not the -1 of a shorter bin (the same in every plane)
    grad = _half_scatter(case.x.shape, n, reads[..., keep], shares[..., keep])
    return ours._replace(grads={**ours.grads, "x": grad})


TORCH_HALF_ADAPTIVE_AVG_GRADIENT = KnownDefect(
    "adaptive_avg_pool1d/2d/3d's (and interpolate(mode='area')'s) float16 gradient is accumulated in float16 on the "
    "CPU: per output, in output order, g / k_T / k_H / k_W (each division rounding) is added to each cell of its bin, "
    "every sum rounding, where poolref sums in float32 and rounds once; where the output is larger than the input "
    "many outputs share a cell and the partial sums' roundings add up (0.0066 apart on a (1, 1, 2, 4, 1) input "
    "resized to (5, 6, 8): -0.1354 against -0.1288, seed 28; 0.0967 against 0.0914 for a (1, 1, 1, 4) input pooled "
    "to (9, 9), seed 37)",
    _adaptive_avg_float16, model=_float16_sequential_average)


TORCH_HALF_ADAPTIVE_MAX_GRADIENT = KnownDefect(
    "adaptive_max_pool1d/2d/3d's float16 gradient is accumulated in float16 on the CPU, one upstream entry after "
    "the other in output order, where poolref sums in float32 and rounds once: where many outputs share a winner "
    "(an output larger than the input) the two differ by a few float16 ulps of the partial sums (a (1, 1, 1) input "
    "pooled to 4 with upstream [2048, 1, 1, 1] gets 2048, each 2048 + 1 rounding back to 2048; poolref 2052, the "
    "sum 2051 rounded once)",
    _adaptive_max_float16, model=_float16_sequential_scatter)


def _float32_conv_nonfinite_gradient(case: Case) -> bool:
    return (case.op == "conv2d" and case.dtype == numpy.float32 and case.input_class == "nonfinite_gradient"
            and case.kwargs.get("padding_mode", "zeros") == "zeros")


TORCH_CONV_FLOAT32_PADDING_GRADIENT = KnownDefect(
    "conv2d's weight gradient in float32 on the CPU, where oneDNN computes it (which kernel depends on the groups, "
    "channels, dilation and the machine), leaves out the zero padding: a non-finite upstream gradient over a tap "
    "that reads padding adds nothing there, where float64 (and poolref, for every dtype) multiplies the padding's 0 "
    "(0 * inf = NaN): x (2, 1, 8, 3), weight (1, 1, 3, 3), stride (1, 2), padding 1, dilation 2 gives 0.0 at the "
    "six taps that only read padding, float64 NaN; other float32 cases multiply the 0 as float64 does",
    _float32_conv_nonfinite_gradient, model=weight_gradient_without_padding)


TORCH_BICUBIC_COPIED_GRADIENT = KnownDefect(
    "interpolate(mode='bicubic') resamples every axis in its forward, but its backward copies the gradient when no "
    "spatial size changes, also where the resampling is not a copy: scale_factor=(1.0, 1.1) on arange(4.) of shape "
    "(1, 1, 1, 4) gives [-0.031, 0.809, 1.725, 2.753] and the gradient [0, 1, 0, 0] for an upstream one-hot at 1",
    _bicubic_backward_copies, model=_gradient_copied)


TORCH_ANTIALIAS_WIDTH_ONE = KnownDefect(
    "interpolate(mode='bilinear' or 'bicubic', antialias=True) on the CPU, with an output width of 1 and a height that "
    "changes, writes its first output row into every row: (6, 1) -> (2, 1) of arange(6) gives [1.25, 1.25], the resize "
    "is [1.25, 3.75] (as PyTorch gives for any other width); bicubic [1.1316, 1.1316], not [1.1316, 3.8684]; the "
    "gradient is right",
    _antialias_width_one, affects=("output",), model=_first_row_everywhere)
