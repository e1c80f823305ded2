r"""TensorFlow 2.21's known defects (CPU).

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
* ``tf.nn.conv2d`` in float32 (oneDNN) returns garbage for a single strided column (not modelled: the
  output is excused there).

Each is a :class:`~poolref.oracle.mapping.KnownDefect`; see :mod:`poolref.oracle.defects`.
"""

from __future__ import annotations

import numpy

from ..._geometry import pool_geometry
from ...cases.case import Case
from ...cases.learned import conv_pads
from ..mapping import KnownDefect
from ..tf_crop_and_resize import tf_crop_model
from .common import as_pair, has_nonfinite, reduce_max_model

__all__ = ["TF_MAX_POOL_ROUTING", "TF_MAX_POOL3D_NEAR_TIES", "TF_REDUCE_MAX", "TF_AVG_POOL_SAME_LONG_WINDOW", "TF_FRACTIONAL_NONFINITE", "TF_CROP_AND_RESIZE_LERP", "TF_CONV_SINGLE_COLUMN"]


def _routed_like_argmax(case: Case, ours, cotangent):
    """The gradient of ``max_pool_with_argmax``'s rule (poolref with ``return_indices=True``)."""
    from ..engine import run_poolref

    argmax = case.replace(kwargs={**case.kwargs, "return_indices": True})
    return ours._replace(grads=run_poolref(argmax, cotangent=cotangent)[0].grads)


TF_MAX_POOL_ROUTING = KnownDefect(
    "tf.nn.max_pool ignores NaN and starts from the lowest finite value, but routes its gradient like "
    "max_pool_with_argmax (first element, then a strictly greater one): [nan, 1] outputs 1 and sends its "
    "gradient to the NaN, a window of only -inf sends it to its first element",
    has_nonfinite, model=_routed_like_argmax)


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


TF_REDUCE_MAX = KnownDefect(
    "tf.reduce_max shares its gradient evenly among tied maxima (PyTorch, and poolref, give it to the first), "
    "multiplies the upstream gradient by 0 elsewhere (0 * inf = NaN) and gives NaN everywhere when the maximum "
    "is NaN; of tied maxima its value is the last's, which shows for zeros ([0., -0.] gives -0.)",
    lambda case: True, affects=("output", "grad_x"), model=reduce_max_model)  # modelled exactly: it hides nothing


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
    from ..engine import run_poolref

    pool = Case("max_pool2d", {"x": case.x}, dict(kernel_size=2, stride=2, convention="tensorflow"))
    values = run_poolref(pool, gradients=False)[0].values
    return _routed_like_argmax(pool, ours._replace(values=values), cotangent)


TF_FRACTIONAL_NONFINITE = KnownDefect(
    "tf.nn.fractional_max_pool ignores NaN and starts from the lowest finite value (as tf.nn.max_pool), and routes "
    "its gradient to a window's first element, then to a strictly greater one; its gradient raises where that "
    "routing's maximum is not the output (FractionalMaxPoolGrad re-runs the forward and finds 'tensor_out_dup is "
    "not the same as tensor_out': a NaN first in its window, a window of only -inf)",
    has_nonfinite, affects=("raises",), model=_fractional_like_tf_max_pool)


def _crop_and_resize_nonfinite(case: Case) -> bool:
    """A crop_and_resize case with a NaN or an infinity in the image or in the upstream gradient."""
    return case.op == "roi_align" and (has_nonfinite(case) or case.input_class == "nonfinite_gradient")


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


def _single_strided_column(case: Case) -> bool:
    """A float32 conv2d of one input channel per group, a batch of several, stride 1 down and above 1
    across, a kernel wider than one, and one output column (several rows)."""
    if case.op != "conv2d" or case.dtype != numpy.float32 or case.arrays["weight"].shape[1] != 1 or case.x.ndim != 4:
        return False
    kernel = case.arrays["weight"].shape[2:]
    stride = as_pair(case.kwargs.get("stride", 1))
    dilation = as_pair(case.kwargs.get("dilation", 1))
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
