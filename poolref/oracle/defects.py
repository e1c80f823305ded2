r"""The frameworks' known defects and deviations, modelled exactly for the oracle.

poolref keeps the true derivative where a framework's gradient is wrong, and PyTorch's rule where a
framework's op follows one of its own that poolref's op has no convention for; the oracle still
compares, and these *models* compute the framework's answer from poolref's right one, so that a
mismatch that is exactly the known defect is reported as such (with its reproducer) and any other
difference fails (:class:`poolref.oracle.mapping.KnownDefect`). The docs' atlas lists them all
(:data:`ALL`). Each was found by the oracle and checked by hand.

PyTorch 2.13:

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
* ``adaptive_max_pool1d/2d/3d`` accumulate a float16 gradient in float16, one upstream entry after
  the other (poolref sums in float32 and rounds once): a few ulps apart where outputs share winners.

TensorFlow 2.21:

* ``tf.nn.max_pool1d/2d`` (and ``tf.nn.pool``'s MAX) ignore NaN and start from the lowest finite
  value, but their gradient is routed like ``tf.nn.max_pool_with_argmax``'s: to the window's first
  element, then to a strictly greater one. ``[nan, 1]`` outputs 1 and sends its gradient to the NaN;
  a window of only -inf outputs -FLT_MAX and sends its gradient to its first element.
* ``tf.nn.max_pool3d``'s gradient goes to *every* element within 1e-5 of the window's maximum
  (``MaxPool3DGrad``): ties share nothing, each receives the whole upstream value, so the input
  gradient no longer sums to the output gradient. ``[1.0, 1.000005]`` gets ``[1, 1]`` (true
  ``[0, 1]``), ``[2, 2]`` gets ``[1, 1]`` (true ``[1, 0]``); an infinite maximum gets nothing.
* ``tf.reduce_max``'s gradient is shared evenly among tied maxima, multiplies the upstream gradient
  by 0 elsewhere (``0 * inf = NaN``), and is NaN everywhere when the maximum is NaN; of tied maxima
  its value is the last's, which shows for zeros (``[0., -0.]`` gives ``-0.``).
* ``tf.nn.avg_pool`` with SAME padding and a window longer than the input sends the wrong gradient in
  float64 and float16: ``x = [1, 2, 3, 4]``, ``k = 5``, ``s = 3``, upstream ``[1, 2]`` gives ``[0.25,
  0.9167, 0.9167, 0.9167]``; the true derivative is ``[1/3, 1, 1, 2/3]`` (the forward, ``[2, 3]``, is
  right; float32 runs on oneDNN and is right).
* ``tf.nn.fractional_max_pool`` ignores NaN and starts from the lowest finite value, as
  ``tf.nn.max_pool`` does, and routes its gradient like ``max_pool_with_argmax`` (first element, then
  a strictly greater one); its gradient raises where that routing's maximum is not the output
  (``FractionalMaxPoolGrad`` re-runs the forward and finds ``tensor_out_dup is not the same as
  tensor_out``: a NaN first in its window, a window of only -inf).
* ``tf.image.crop_and_resize`` interpolates as ``a + (b - a) t`` (across, then down) and reads a point on a
  pixel row alone, where RoI Align sums the four pixels times their weights, 0 * inf included:
  ``[[1, 2], [3, inf]]`` cropped to 3 x 3 gives ``[[1, 1.5, 2], [2, inf, nan], [3, nan, nan]]`` (poolref NaN
  but at the centre), and its gradient adds the ``0 * g`` of a point on a pixel to that pixel, not to the
  next row (:mod:`poolref.oracle.tf_crop_and_resize`).

JAX 0.10 (CPU, under ``jax.jit``):

* ``jnp.max`` shares its gradient among tied maxima and gives +0 of tied zeros (-0 only when all are);
* the gradient of ``lax.reduce_window(lax.add)`` along an axis of length 1 whose dilated window lies
  wholly in the padding reaches the lone element anyway (eagerly it does not).

ONNX Runtime 1.32 (the module's own section lists them with their evidence):

* linear ``Resize`` of a 3-D tensor spreads a NaN or an infinity from one row into another;
* linear ``Resize`` of 4-D and 5-D tensors takes its source coordinates as ``(o + 0.5) / s - 0.5``
  in float32 (PyTorch multiplies by ``1/s``) and sums all corners with products of the axes'
  weights: finite outputs agree to rounding, but an infinity can meet a weight of exactly 0 where
  PyTorch's is 1.5e-8 (NaN against -inf), so those cases are held to a model of ORT's own arithmetic;
* linear ``GridSample`` with border or reflection padding clamps or reflects each tap's index, not
  the sampling point: a NaN or an infinity beside the edge lands differently.
"""

from __future__ import annotations

import math

import numpy

from .._geometry import pool_geometry
from ..cases.case import Case
from ..cases.learned import conv_pads
from .mapping import KnownDefect
from .ort_grid_sample import ort_grid_sample, shows_tap_padding
from .ort_resize import ort_cubic_resize, ort_linear_resize
from .tf_crop_and_resize import tf_crop_model

__all__ = ["TORCH_LP_POOL", "TORCH_ANTIALIAS_WIDTH_ONE", "TORCH_ANTIALIAS_COPIED_AXIS", "TF_MAX_POOL_ROUTING", "TF_MAX_POOL3D_NEAR_TIES", "TF_REDUCE_MAX", "TF_AVG_POOL_SAME_LONG_WINDOW",
           "TF_FRACTIONAL_NONFINITE", "TF_CONV_SINGLE_COLUMN", "TF_CROP_AND_RESIZE_LERP", "JAX_REDUCE_MAX", "JAX_CONV_ABORT", "JAX_DEPTHWISE_FLOAT64", "JAX_GROUPED_NONFINITE_GRADIENT", "ORT_RESIZE_ROWS_SPREAD", "ORT_RESIZE_COORDINATES", "ORT_CUBIC_RESIZE_COORDINATES",
           "ORT_GRID_SAMPLE_TAP_PADDING",
           "TORCH_HALF_ADAPTIVE_MAX_GRADIENT", "JAX_REDUCE_WINDOW_LENGTH_ONE",
           "TORCH_CONV_FLOAT32_PADDING_GRADIENT", "TORCH_NEAREST_SHORTCUT_GRADIENT", "ALL"]


def _nonfinite(case: Case) -> bool:
    return case.x.dtype.kind == "f" and not numpy.isfinite(case.x).all()


def _routed_like_argmax(case: Case, ours, cotangent):
    """The gradient of ``max_pool_with_argmax``'s rule (poolref with ``return_indices=True``)."""
    from .engine import run_poolref

    argmax = case.replace(kwargs={**case.kwargs, "return_indices": True})
    return ours._replace(grads=run_poolref(argmax, cotangent=cotangent)[0].grads)


TF_MAX_POOL_ROUTING = KnownDefect(
    "tf.nn.max_pool ignores NaN and starts from the lowest finite value, but routes its gradient like "
    "max_pool_with_argmax (first element, then a strictly greater one): [nan, 1] outputs 1 and sends its "
    "gradient to the NaN, a window of only -inf sends it to its first element",
    _nonfinite, model=_routed_like_argmax)


def _near_ties_gradient(case: Case, ours, cotangent):
    """TensorFlow's MaxPool3DGrad: every element within 1e-5 of its window's maximum receives the
    window's whole upstream gradient (computed in the input's dtype, tap by tap)."""
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    geometry = pool_geometry(case.x.shape[-n:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                             kw.get("dilation", 1), False, "tensorflow", case.op)
    lead = case.x.shape[:-n]
    padded = numpy.full(lead + geometry.padded_shape, numpy.nan, dtype=case.x.dtype)  # padding is never near
    inside, buffer = geometry.interior()
    padded[(Ellipsis,) + buffer] = case.x[(Ellipsis,) + inside]
    grad = numpy.zeros(padded.shape, dtype=numpy.float64)
    for offsets in geometry.tap_offsets():
        taps = (Ellipsis,) + geometry.tap_slices(offsets)
        with numpy.errstate(invalid="ignore"):
            near = numpy.abs(padded[taps] - ours.values) < case.x.dtype.type(1e-5)
        grad[taps] += numpy.where(near, cotangent, 0.0)
    result = numpy.zeros(case.x.shape, dtype=numpy.float64)
    result[(Ellipsis,) + inside] = grad[(Ellipsis,) + buffer]
    return ours._replace(grads={**ours.grads, "x": result.astype(case.x.dtype)})


TF_MAX_POOL3D_NEAR_TIES = KnownDefect(
    "tf.nn.max_pool3d's gradient goes to every element within 1e-5 of its window's maximum, each the whole "
    "upstream value ([1.0, 1.000005] gets [1, 1], the derivative is [0, 1]; [2, 2] gets [1, 1], not [1, 0]): "
    "the input gradient no longer sums to the output gradient",
    lambda case: case.x.dtype.kind == "f", model=_near_ties_gradient)


def _reduce_max(case: Case, ours, cotangent, last_zero: bool = True, nan_gradient: float = numpy.nan,
                zero_elsewhere: bool = False):
    """``tf.reduce_max`` (``jnp.max`` with ``last_zero=False``) over the spatial axes: the maximum,
    and its gradient ``(x == y) / count(x == y) * g``. Of tied zeros TensorFlow keeps the last's sign,
    JAX gives +0 unless all of them are -0. A plane whose maximum is NaN gets ``nan_gradient`` everywhere (TensorFlow: 0/0 =
    NaN; JAX under ``jax.jit``, as the oracle runs it: 0, although eagerly it is NaN). ``zero_elsewhere``:
    the elements off the maximum get 0 whatever ``g`` (JAX under ``jax.jit``), not ``0 * g`` (TensorFlow:
    NaN for an infinite ``g``)."""
    n = case.x.ndim - (2 if case.batched else 1)
    axes = tuple(range(case.x.ndim - n, case.x.ndim))
    x = case.x.astype(numpy.float64)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        y = numpy.max(x, axis=axes, keepdims=True)  # NaN propagates
        # of tied maxima the value is the LAST's (it shows for zeros: [-0., 0.] gives 0., [0., -0.] gives -0.)
        flat = x.reshape(x.shape[:x.ndim - n] + (math.prod(x.shape[x.ndim - n:]),))  # not -1: a batch may be empty
        last = flat.shape[-1] - 1 - numpy.argmax((flat == y.reshape(flat.shape[:-1] + (1,)))[..., ::-1], axis=-1)
        if last_zero:
            y = numpy.where(y == 0, numpy.take_along_axis(flat, last[..., None], axis=-1).reshape(y.shape), y)
        else:  # JAX: +0 if any of the tied zeros is +0, -0 only when all are -0 (max(-0, -0))
            positive_zero = ((flat == 0) & ~numpy.signbit(flat)).any(axis=-1).reshape(y.shape)
            y = numpy.where(y == 0, numpy.where(positive_zero, 0.0, -0.0), y)
        selected = (x == y).astype(numpy.float64)
        grad = selected / selected.sum(axis=axes, keepdims=True) * cotangent.astype(numpy.float64)
        if zero_elsewhere:
            grad = numpy.where(selected > 0, grad, 0.0)
        grad = numpy.where(numpy.isnan(y), nan_gradient, grad)
    return ours._replace(values=y.astype(ours.values.dtype), grads={**ours.grads, "x": grad.astype(case.x.dtype)})


TF_REDUCE_MAX = KnownDefect(
    "tf.reduce_max shares its gradient evenly among tied maxima (PyTorch, and poolref, give it to the first), "
    "multiplies the upstream gradient by 0 elsewhere (0 * inf = NaN) and gives NaN everywhere when the maximum "
    "is NaN; of tied maxima its value is the last's, which shows for zeros ([0., -0.] gives -0.)",
    lambda case: True, affects=("output", "grad_x"), model=_reduce_max)  # modelled exactly: it hides nothing


def _spatial_windows(case: Case) -> tuple:
    """A pooling case's spatial lengths, kernel and stride, each a tuple over the spatial axes."""
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    kernel = kw["kernel_size"]
    kernel = (kernel,) * n if isinstance(kernel, int) else tuple(kernel)
    stride = kw.get("stride") or kernel
    return case.x.shape[-n:], kernel, (stride,) * n if isinstance(stride, int) else tuple(stride)


def _same_window_longer_than_input(case: Case) -> bool:
    padding = case.kwargs.get("padding")
    if not (isinstance(padding, str) and padding.lower() in ("same", "same_upper")):
        return False
    spatial, kernel, _ = _spatial_windows(case)
    return any(k > L for k, L in zip(kernel, spatial))


def _avg_pool_grad_like_eigen(case: Case, ours, cotangent):
    """TensorFlow's AvgPoolGrad (Eigen, which float64 and float16 run), per axis: window ``i`` starts
    at ``b = i s`` with ``size = k``; where ``b < pad`` it covers ``k + b - pad`` cells from 0, else
    ``k`` from ``b - pad``; and where ``b + k > L`` (``b`` as moved) it covers ``min(L - b, k)``,
    which overrides the first cut. Each upstream entry is spread evenly over its window's cells."""
    spatial, kernel, stride = _spatial_windows(case)
    n = len(spatial)
    grad = numpy.asarray(cotangent, dtype=numpy.float64)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for axis, (L, k, s) in enumerate(zip(spatial, kernel, stride)):
            at = grad.ndim - n + axis  # this axis in grad
            pad = max((-(-L // s) - 1) * s + k - L, 0) // 2  # SAME: half the total, the rest after
            begin = numpy.arange(grad.shape[at]) * s
            starts_in_padding = begin < pad
            size = numpy.where(starts_in_padding, k + begin - pad, k)
            begin = numpy.where(starts_in_padding, 0, begin - pad)
            size = numpy.where(begin + k > L, numpy.minimum(L - begin, k), size)
            share = grad / size.reshape((-1,) + (1,) * (grad.ndim - at - 1))
            spread = numpy.zeros(grad.shape[:at] + (L,) + grad.shape[at + 1:])
            for tap in range(k):  # the window's cells, one offset at a time
                covered = tap < size
                numpy.add.at(spread, (slice(None),) * at + ((begin + tap)[covered],), numpy.compress(covered, share, axis=at))
            grad = spread
    return ours._replace(grads={**ours.grads, "x": grad.astype(case.dtype)})


TF_AVG_POOL_SAME_LONG_WINDOW = KnownDefect(
    "tf.nn.avg_pool with SAME padding and a window longer than the input sends the wrong gradient in float64 and float16 "
    "(AvgPoolGrad spreads a window that starts in the padding over min(L, k) cells, not the k - pad it covers): "
    "x = [1, 2, 3, 4], k = 5, s = 3, upstream [1, 2] gives [0.25, 0.9167, 0.9167, 0.9167], the derivative is "
    "[1/3, 1, 1, 2/3]; float32, which runs on oneDNN by default, is right. Modelled: Eigen cuts a window that "
    "starts in the padding to k + b - pad cells, then one that runs past the end to min(L - b, k), the second "
    "cut overriding the first",
    _same_window_longer_than_input, affects=("grad_x",), model=_avg_pool_grad_like_eigen)


def _fractional_like_tf_max_pool(case: Case, ours, cotangent):
    """TensorFlow's FractionalMaxPool on the regular windows the oracle draws (ratio 2, kernel 2):
    the forward takes each window's running ``cwiseMax`` from the lowest finite value, which drops
    a NaN (``std::max`` keeps its first argument), as ``tf.nn.max_pool`` does; the gradient, where it
    does not raise, goes to the window's first element, then to a strictly greater one, as
    ``max_pool_with_argmax``'s. Both are poolref's ``max_pool2d(convention="tensorflow")``."""
    from .engine import run_poolref

    pool = Case("max_pool2d", {"x": case.x}, dict(kernel_size=2, stride=2, convention="tensorflow"))
    values = run_poolref(pool, gradients=False)[0].values
    return _routed_like_argmax(pool, ours._replace(values=values), cotangent)


TF_FRACTIONAL_NONFINITE = KnownDefect(
    "tf.nn.fractional_max_pool ignores NaN and starts from the lowest finite value (as tf.nn.max_pool), and routes "
    "its gradient to a window's first element, then to a strictly greater one; its gradient raises where that "
    "routing's maximum is not the output (FractionalMaxPoolGrad re-runs the forward and finds 'tensor_out_dup is "
    "not the same as tensor_out': a NaN first in its window, a window of only -inf)",
    _nonfinite, affects=("raises",), model=_fractional_like_tf_max_pool)


def _crop_and_resize_nonfinite(case: Case) -> bool:
    """A crop_and_resize case with a NaN or an infinity in the image or in the upstream gradient."""
    return case.op == "roi_align" and (_nonfinite(case) or case.input_class == "nonfinite_gradient")


TF_CROP_AND_RESIZE_LERP = KnownDefect(
    "tf.image.crop_and_resize interpolates in float32 as a + (b - a) t, across (top = tl + (tr - tl) t_x, bottom = "
    "bl + (br - bl) t_x) then down (top + (bottom - top) t_y), and a point on a pixel row or column reads that row or "
    "column alone (floor = ceil); torchvision's RoI Align, which poolref follows, sums the four pixels times their "
    "weights, the next row or column with weight 0 on a pixel (0 * inf = NaN). An infinite a gives NaN whatever b "
    "(inf - inf, inf + -inf), an infinity read with t = 0 nothing: [[1, 2], [3, inf]] cropped to 3 x 3 (points 0, "
    "0.5, 1 each way) gives [[1, 1.5, 2], [2, inf, nan], [3, nan, nan]], poolref [[nan, nan, nan], [nan, inf, nan], "
    "[nan, nan, nan]]. Its image gradient adds (1 - t_x) dtop, t_x dtop, (1 - t_x) dbottom, t_x dbottom, with dtop = "
    "(1 - t_y) g and dbottom = t_y g, to tl, tr, bl, br: on a pixel all to that pixel, so an upstream inf at the point "
    "(0, 0) of a 2 x 2 image cropped to 3 x 3 gives [[nan, 0], [0, 0]] (inf + 0 * inf), poolref [[inf, nan], "
    "[nan, nan]]. Modelled: both kernels, with the points p = a1 (L - 1) + i (a2 - a1)(L - 1)/(c - 1) (the centre "
    "0.5 (a1 + a2)(L - 1) when c = 1), all in float32",
    _crop_and_resize_nonfinite, affects=("output", "grad_x"), model=tf_crop_model)


# --------------------------------------------------------------------------------------------------
# PyTorch 2.13
# --------------------------------------------------------------------------------------------------
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
    from .engine import run_poolref

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
    from .._sampling_weights import torch_antialias
    from ..ops.sampling.interpolate import _weighs_as_copy
    from ..cases.case import resize_factors, resize_size

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
    from .._sampling_weights import resample, torch_antialias
    from ..cases.case import resize_factors, resize_size

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
    from .._sampling_weights import torch_cubic
    from ..ops.sampling.interpolate import _weighs_as_copy
    from ..cases.case import resize_factors, resize_size

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
    from .._sampling_weights import nearest_indices
    from ..cases.case import resize_scales, resize_size

    if case.op != "interpolate" or case.kwargs.get("mode") != "nearest":
        return False
    sizes, scales = resize_size(case), resize_scales(case)
    if len(sizes) == 2 or scales is None:
        return False
    return any(not numpy.array_equal(nearest_indices(L, O, s), nearest_indices(L, O, s, shortcuts=False))
               for L, O, s in zip(case.x.shape[-len(sizes):], sizes, scales))


def _gradient_by_the_shortcuts(case: Case, ours, cotangent):
    """PyTorch's nearest backward: each upstream entry added to the pixel the shortcut rule names."""
    from .._sampling_weights import nearest_indices
    from ..cases.case import resize_scales, resize_size

    sizes, scales = resize_size(case), resize_scales(case)
    spatial = case.x.shape[case.x.ndim - len(sizes):]
    # the input cell each output reads, as a flat index into its plane, in output order
    axes = numpy.ix_(*(nearest_indices(L, O, s) for L, O, s in zip(spatial, sizes, scales)))
    cells = numpy.ravel_multi_index(numpy.broadcast_arrays(*axes), spatial).ravel()
    planes = math.prod(case.x.shape[:case.x.ndim - len(sizes)])
    grad = numpy.zeros((planes, math.prod(spatial)))
    with numpy.errstate(invalid="ignore", over="ignore"):  # one upstream entry after the other
        numpy.add.at(grad, (slice(None), cells), numpy.asarray(cotangent, dtype=numpy.float64).reshape(planes, -1))
    return ours._replace(grads={**ours.grads, "x": grad.reshape(case.x.shape).astype(case.dtype)})


TORCH_NEAREST_SHORTCUT_GRADIENT = KnownDefect(
    "interpolate(mode='nearest') of 1-D and 3-D inputs through a scale factor reads by the scale in its forward, but "
    "its backward (in every dimension, as the 2-D forward) copies where the length does not change and reads o // 2 "
    "where it doubles: scale_factor=2.2 on arange(4.) gives [0, 0, 0, 1, 1, 2, 2, 3] and, for an upstream "
    "[1, ..., 8], the gradient [3, 7, 11, 15] of [0, 0, 1, 1, 2, 2, 3, 3] (the forward's adjoint: [6, 9, 13, 8])",
    _nearest_forward_without_shortcuts, model=_gradient_by_the_shortcuts)


def _adaptive_max_float16(case: Case) -> bool:
    return case.op.startswith("adaptive_max_pool") and case.dtype == numpy.float16


def _float16_sequential_scatter(case: Case, ours, cotangent):
    """PyTorch's CPU adaptive max pooling backward for float16: each upstream entry is added to its
    winner's gradient in float16, one after the other in output order (every sum rounds)."""
    from .engine import run_poolref

    with_indices = case.replace(kwargs={**case.kwargs, "return_indices": True})
    indices = numpy.asarray(run_poolref(with_indices, gradients=False)[0].indices)
    n = int(case.op[-2])
    x = case.x
    planes, plane = math.prod(x.shape[: x.ndim - n]), math.prod(x.shape[x.ndim - n:])
    flat = indices.reshape(planes, -1) + numpy.arange(planes).reshape(planes, 1) * plane
    grad = numpy.zeros(planes * plane, dtype=numpy.float16)
    with numpy.errstate(invalid="ignore", over="ignore"):
        numpy.add.at(grad, flat.ravel(), numpy.asarray(cotangent, dtype=numpy.float16).ravel())
    return ours._replace(grads={**ours.grads, "x": grad.reshape(x.shape)})


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


def _weight_gradient_without_padding(case: Case, ours, cotangent):
    """PyTorch's float32 CPU conv2d weight gradient where oneDNN computes it: ``sum g * x`` over the
    taps that read a real input cell only; a tap over the zero padding adds nothing (no ``g * 0``)."""
    groups = case.kwargs.get("groups", 1)
    x, weight = case.x.astype(numpy.float64), case.arrays["weight"]
    g = numpy.asarray(cotangent, dtype=numpy.float64)  # (N, C_out, H_out, W_out)
    if x.ndim == 3:  # unbatched: a batch of one
        x, g = x[None], g[None]
    stride, dilation = _pair(case.kwargs.get("stride", 1)), _pair(case.kwargs.get("dilation", 1))
    pads = conv_pads(case)
    padded = numpy.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    real = numpy.pad(numpy.ones(x.shape, dtype=bool), ((0, 0), (0, 0)) + tuple(pads))
    n, (c_out, c_in_per_group, kh, kw), (h_out, w_out) = len(x), weight.shape, g.shape[2:]
    # the channels by group: g (N, G, C_out/G, 1, H_out, W_out) meets x (N, G, 1, C_in/G, ., .)
    g = g.reshape(n, groups, c_out // groups, 1, h_out, w_out)
    grad = numpy.zeros((groups, c_out // groups, c_in_per_group, kh, kw), dtype=numpy.float64)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for i in range(kh):  # the kernel's taps: a handful
            for j in range(kw):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (h_out - 1) + 1, stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (w_out - 1) + 1, stride[1])
                tap = padded[:, :, rows, cols].reshape(n, groups, 1, c_in_per_group, h_out, w_out)
                reads_x = real[:, :, rows, cols].reshape(n, groups, 1, c_in_per_group, h_out, w_out)
                grad[..., i, j] = numpy.where(reads_x, g * tap, 0.0).sum(axis=(0, 4, 5))
    return ours._replace(grads={**ours.grads, "weight": grad.reshape(weight.shape).astype(weight.dtype)})


TORCH_CONV_FLOAT32_PADDING_GRADIENT = KnownDefect(
    "conv2d's weight gradient in float32 on the CPU, where oneDNN computes it (which kernel depends on the groups, "
    "channels, dilation and the machine), leaves out the zero padding: a non-finite upstream gradient over a tap "
    "that reads padding adds nothing there, where float64 (and poolref, for every dtype) multiplies the padding's 0 "
    "(0 * inf = NaN): x (2, 1, 8, 3), weight (1, 1, 3, 3), stride (1, 2), padding 1, dilation 2 gives 0.0 at the "
    "six taps that only read padding, float64 NaN; other float32 cases multiply the 0 as float64 does",
    _float32_conv_nonfinite_gradient, model=_weight_gradient_without_padding)


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


# --------------------------------------------------------------------------------------------------
# JAX 0.10
# --------------------------------------------------------------------------------------------------
JAX_REDUCE_MAX = KnownDefect(
    "jnp.max shares its gradient evenly among tied maxima (PyTorch, and poolref, give it to the first), gives +0 of "
    "tied zeros (-0 only when all are -0), and under jax.jit (as the oracle runs it) 0 to the other elements whatever "
    "the upstream gradient and 0 everywhere where the maximum is NaN (eagerly it multiplies by 0: an infinite or NaN "
    "upstream gradient gives NaN off the maximum, and a NaN maximum NaN everywhere)",
    lambda case: True, affects=("output", "grad_x"),  # modelled exactly: it hides nothing
    model=lambda case, ours, cotangent: _reduce_max(case, ours, cotangent, last_zero=False, nan_gradient=0.0,
                                                    zero_elsewhere=True))


def _dilated_window_on_a_length_one_axis(case: Case) -> bool:
    """An avg pooling case with an axis of length 1 whose dilated window (kernel > 1) lies wholly in
    the padding: no tap reads the axis's only element."""
    if not case.op.startswith("avg_pool"):
        return False
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    geometry = pool_geometry(case.x.shape[-n:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                             kw.get("dilation", 1), kw.get("ceil_mode", False), "jax", case.op)
    return any(axis.length == 1 and axis.kernel > 1 and axis.dilation > 1 and not axis.inside().any()
               for axis in geometry.axes)


JAX_REDUCE_WINDOW_LENGTH_ONE = KnownDefect(
    "under jax.jit (as the oracle runs it), the gradient of lax.reduce_window(lax.add) along an axis of length 1, "
    "with a dilated window of 2 taps wholly in the 'same' padding, hands the window's upstream gradient to the lone "
    "element, which the window never reads (eagerly: 0, as the derivative is): x of shape (1, 1, 1), window (1, 2, "
    "1), dilation (1, 2, 1), upstream -1.8 gives -1.8; averaging then divides by the window's count of 0 (-inf)",
    _dilated_window_on_a_length_one_axis, affects=("grad_x",))


def _strided(case: Case) -> bool:
    """Strides, dilated or not, in any dtype (aborts seen in float32, in float64, and in float64 with
    groups); an in-process run draws none of them, a run in workers compares every one that runs."""
    return any(s > 1 for s in _pair(case.kwargs.get("stride", 1)))


def _pair(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


JAX_CONV_ABORT = KnownDefect(
    "jax.vjp of lax.conv_general_dilated aborts the process (XLA's algebraic simplifier: 'Check failed: ... Window "
    "dimensions do not match RHS shape') on some input gradients (the weight gradients of the same cases run) with "
    "strides, every one seen with an output axis shorter than the kernel: in float32 with dilation, e.g. x (1, 2, 4, 4), "
    "w (1, 2, 2, 3), stride (2, 2), padding (1, 1), dilation (1, 2), and without, e.g. x (1, 2, 5, 8), w (2, 2, 3, 2), "
    "stride (2, 2), padding (0, 1), or x (1, 2, 4, 6), w (2, 2, 3, 2), stride (1, 2), padding (0, 1) (also in float64); in float64, e.g. x (1, 1, 7, "
    "6), w (1, 1, 3, 2), stride (2, 2), padding (0, 1), dilation (2, 1); with groups, e.g. x (1, 2, 3, 4), w (2, 1, 2, "
    "2), groups 2, stride (1, 2), padding (0, 1), dilation (2, 1) in float64 (float32 runs). Only an abort is excused: "
    "a case that runs is compared",
    _strided, affects=("abort",))

def _single_strided_column(case: Case) -> bool:
    """A float32 conv2d of one input channel per group, a batch of several, stride 1 down and above 1
    across, a kernel wider than one, and one output column (several rows)."""
    if case.op != "conv2d" or case.dtype != numpy.float32 or case.arrays["weight"].shape[1] != 1 or case.x.ndim != 4:
        return False
    kernel = case.arrays["weight"].shape[2:]
    stride = _pair(case.kwargs.get("stride", 1))
    dilation = _pair(case.kwargs.get("dilation", 1))
    (top, bottom), (left, right) = conv_pads(case)
    h, w = case.x.shape[2] + top + bottom, case.x.shape[3] + left + right
    h_out = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    w_out = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return case.x.shape[0] > 1 and stride[0] == 1 and stride[1] > 1 and kernel[1] > 1 and w_out == 1 and h_out > 1


TF_CONV_SINGLE_COLUMN = KnownDefect(
    "tf.nn.conv2d in float32 on the CPU (oneDNN, TensorFlow's default on x86) returns wrong outputs, some of them "
    "uninitialised memory (0, 2.6e-36, -1.3e7 on different runs), for one input channel, a batch of two or more, strides "
    "(1, s > 1), a kernel at least two wide and one output column: x (2, 5, 1, 1) NHWC padded to width 3, kernel "
    "(1, 3) of ones, strides (1, 2) gave [-4, 0, -1, 0, 0, 1, 0, 4, 0, 0] for [-4, -3, ..., 5]; float64, float16, a "
    "batch of one, the gradients and TF_ENABLE_ONEDNN_OPTS=0 are right",
    _single_strided_column, affects=("output",))


def _float64_depthwise_nonfinite(case: Case) -> bool:
    """A float64 conv2d with one input channel per group (and several groups) on an input with NaN or
    infinities."""
    groups = case.kwargs.get("groups", 1)
    return (case.op == "conv2d" and case.dtype == numpy.float64 and groups > 1 and case.arrays["weight"].shape[1] == 1
            and not numpy.isfinite(case.x).all())


def _dense_block_diagonal_output(case: Case, ours, cotangent):
    """XLA's output: the convolution by the dense (C_out, C_in) weight that is zero off each group's
    block, so a NaN or an infinity of any channel meets a zero weight (NaN) in every output reading its
    position (the gradients are right)."""
    from ..ops.convolution import conv2d

    weight, groups = case.arrays["weight"], case.kwargs["groups"]
    c_out, per_group = weight.shape[0] // groups, weight.shape[1]
    dense = numpy.zeros((weight.shape[0], groups * per_group) + weight.shape[2:], dtype=weight.dtype)
    for g in range(groups):  # the groups' blocks on the diagonal
        dense[g * c_out:(g + 1) * c_out, g * per_group:(g + 1) * per_group] = weight[g * c_out:(g + 1) * c_out]
    kwargs = {k: v for k, v in case.kwargs.items() if k not in ("groups", "convention")}
    with numpy.errstate(all="ignore"):
        values = conv2d(case.arrays["x"], dense, case.arrays["bias"], **kwargs)
    return ours._replace(values=values)


JAX_DEPTHWISE_FLOAT64 = KnownDefect(
    "lax.conv_general_dilated with feature_group_count = C_in in float64 (a depthwise convolution) computes, on the "
    "CPU, the dense convolution whose weight is zero outside each group's block: a NaN or an infinity in one channel "
    "makes every other group's output at the positions that read it NaN (0 * inf); float32, and groups of several "
    "channels, are right, and so are the gradients",
    _float64_depthwise_nonfinite, affects=("output",), model=_dense_block_diagonal_output)

def _grouped_nonfinite_gradient(case: Case) -> bool:
    return case.op == "conv2d" and case.kwargs.get("groups", 1) > 1 and case.input_class == "nonfinite_gradient"


JAX_GROUPED_NONFINITE_GRADIENT = KnownDefect(
    "jax.vjp of lax.conv_general_dilated with feature_group_count > 1 sends a NaN or an infinity of the upstream "
    "gradient into other groups on the CPU: in float64 to every input channel's gradient when each group has one "
    "output channel, whatever its input channels (C 3, groups 3: NaN in 4, 4, 4 positions of the three channels for "
    "4, 0, 0; C_in 6, C_out 3: 4 in all six), in float32 to the weight gradient of the matching output channel of "
    "every group (C_out 6, groups 3: 4, 0, 4, 0, 4, 0 NaN for 4, 0, 0, 0, 0, 0), unless each group has one input and "
    "one output channel; finite gradients are right",
    _grouped_nonfinite_gradient, affects=("grad_x", "grad_weight"))


# --------------------------------------------------------------------------------------------------
# ONNX Runtime 1.32
# --------------------------------------------------------------------------------------------------
def _linear_resize_of_rows(case: Case) -> bool:
    return case.x.ndim == 3 and case.kwargs.get("mode") == "linear" and _nonfinite(case)


ORT_RESIZE_ROWS_SPREAD = KnownDefect(
    "Resize (mode='linear') of a 3-D tensor (N, C, L) resizes it as one volume of depth N and height C, whose "
    "unchanged axes still take two taps each: every (n, c) row reads the next row with weight 0, so a NaN or an "
    "infinity spreads into the row above ([[0, 1, 2, 3], [4, 5, 6, nan]] resized to length 10 gives NaN at "
    "positions 6-9 of the finite first row, where PyTorch gives 2.1, 2.5, 2.9, 3.0), and a length-1 axis reads "
    "its pixel twice with weight 0.5 (inf where PyTorch's 1 * inf + 0 * inf is NaN); along L, the coordinates "
    "of ORT_RESIZE_COORDINATES; where the length does not change it copies (PyTorch reads the next pixel with "
    "weight 0: NaN beside an infinity)",
    _linear_resize_of_rows, affects=("output",), model=ort_linear_resize)


def _linear_resize_2d_3d_nonfinite(case: Case) -> bool:
    return case.x.ndim in (4, 5) and case.kwargs.get("mode") in ("bilinear", "trilinear") and _nonfinite(case)


ORT_RESIZE_COORDINATES = KnownDefect(
    "Resize (mode='linear') of 4-D and 5-D tensors takes its source coordinates as (o + 0.5) / s - 0.5 "
    "in float32 (s = out/in), where PyTorch multiplies by 1/s: 3 -> 9 puts output 1 exactly on pixel 0 (weight 0 "
    "on pixel 1) where PyTorch gives pixel 1 a weight of 1.5e-8 (with align_corners, o * (L - 1) / (O - 1) in "
    "float32, where PyTorch's is in float64: a coordinate just short of a pixel reads the next one); and it sums every corner with the product of its "
    "axes' weights. Finite outputs agree to rounding; with an infinity, a weight of exactly 0 makes NaN where "
    "PyTorch's is -inf (and the other way round)",
    _linear_resize_2d_3d_nonfinite, affects=("output",), model=ort_linear_resize)


def _cubic_resize_nonfinite_or_same_size(case: Case) -> bool:
    from ..cases.case import resize_size

    return (case.x.ndim == 4 and case.kwargs.get("mode") == "bicubic"
            and (_nonfinite(case) or tuple(resize_size(case)) == tuple(case.x.shape[2:])))


ORT_CUBIC_RESIZE_COORDINATES = KnownDefect(
    "Resize (mode='cubic', half_pixel) copies its input where no size changes, also where a scale says otherwise "
    "(PyTorch resamples: scale_factor 1.25 on a length of 2); elsewhere it takes its source coordinates as "
    "(o + 0.5) / s - 0.5 in float32 (s = out/in), where PyTorch multiplies by 1/s: 7 -> 1 "
    "puts the output at 2.9999998 (taps 1 to 4) where PyTorch's is exactly 3 (taps 2 to 5, the outer three with "
    "weight 0); with align_corners, o * (L - 1) / (O - 1) in float32. Finite outputs agree to rounding; with a NaN or an infinity, the taps read and the weights of exactly 0 "
    "differ (0 * inf = NaN)",
    _cubic_resize_nonfinite_or_same_size, affects=("output",), model=ort_cubic_resize)


ORT_GRID_SAMPLE_TAP_PADDING = KnownDefect(
    "GridSample (mode='bilinear', 4-D and 5-D input) with padding_mode='border' or 'reflection' does not clamp or "
    "reflect the sampling point c = ((g + 1) * L - 1) / 2 (align_corners: (g + 1) / 2 * (L - 1)), as PyTorch does: "
    "along each axis it takes the taps floor(c) and floor(c) + 1, clamps (border) or reflects (reflection: off -1/2 and L - 1/2, "
    "align_corners: off 0 and L - 1) each tap's index on its own, and weighs them with d2 = floor(c) + 1 - c and d1 = c - floor(c) from the unmoved "
    "point, summing dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22) in float32 (3-D: dz2 * (the "
    "sum at z1) + dz1 * (the sum at z2)). The plane [[1, inf], [1, inf]] at grid point (-1, -0.5): c = (-0.5, 0), "
    "the x taps -1 and 0 both read column 0 with weights 0.5 and 0.5, so 1; PyTorch clamps x to 0 and reads "
    "1 * 1 + 0 * inf = NaN. A 1 x 1 plane [[inf]] at (0, 0): taps 0 and 1 both read the inf, 1 * inf + 0 * inf "
    "= NaN; PyTorch inf. Finite outputs agree to rounding",
    shows_tap_padding, affects=("output",), model=ort_grid_sample)


#: Every known defect, for the docs.
ALL = {
    "torch": TORCH_LP_POOL + (TORCH_ANTIALIAS_WIDTH_ONE, TORCH_ANTIALIAS_COPIED_AXIS, TORCH_BICUBIC_COPIED_GRADIENT,
              TORCH_NEAREST_SHORTCUT_GRADIENT,
              TORCH_HALF_ADAPTIVE_MAX_GRADIENT, TORCH_CONV_FLOAT32_PADDING_GRADIENT),
    "tensorflow": (TF_MAX_POOL_ROUTING, TF_MAX_POOL3D_NEAR_TIES, TF_REDUCE_MAX, TF_AVG_POOL_SAME_LONG_WINDOW,
                   TF_FRACTIONAL_NONFINITE, TF_CONV_SINGLE_COLUMN, TF_CROP_AND_RESIZE_LERP),
    "jax": (JAX_REDUCE_MAX, JAX_REDUCE_WINDOW_LENGTH_ONE, JAX_CONV_ABORT, JAX_DEPTHWISE_FLOAT64, JAX_GROUPED_NONFINITE_GRADIENT),
    "onnxruntime": (ORT_RESIZE_ROWS_SPREAD, ORT_RESIZE_COORDINATES, ORT_CUBIC_RESIZE_COORDINATES,
                    ORT_GRID_SAMPLE_TAP_PADDING),
}
