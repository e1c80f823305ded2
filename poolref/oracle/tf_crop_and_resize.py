r"""TensorFlow's ``tf.image.crop_and_resize`` (bilinear, float32 CPU kernel), forward and image gradient,
as ``CropAndResize`` and ``CropAndResizeGradImage`` compute them.

The oracle's model of :data:`poolref.oracle.defects.TF_CROP_AND_RESIZE_LERP`. The oracle checks
``roi_align(aligned=True, sampling_ratio=1, spatial_scale=1)`` against crop_and_resize of the boxes
:func:`poolref.oracle.layouts.rois_to_crop_boxes` converts: both sample the same points and agree to
rounding on finite inputs, but crop_and_resize interpolates as ``a + (b - a) t`` (``inf - inf`` and
``inf + -inf`` are NaN) and reads a point that lies on a pixel row or column once (``floor = ceil``),
where torchvision's RoI Align, which poolref follows, sums the four pixels with their weights
(``0 * inf`` = NaN in the next row or column). So a NaN or an infinity, in the image or in the upstream
gradient, lands differently. Held equal to TensorFlow bit for bit on random cases by
``tests/oracle/test_tensorflow.py``.

Per axis (float32 throughout; ``L`` the image's length, ``c`` the crop's, ``a1``, ``a2`` the box's
normalised ends)::

    scale = (a2 - a1) * (L - 1) / (c - 1)                      (0 when c = 1)
    p_i   = a1 * (L - 1) + i * scale                           (c > 1)
          = 0.5 * (a1 + a2) * (L - 1)                          (c = 1)
    low, high, t = floor(p), ceil(p), p - floor(p)             (p outside [0, L - 1]: extrapolation)

and each output ``top + (bottom - top) * t_y`` with ``top = tl + (tr - tl) * t_x``,
``bottom = bl + (br - bl) * t_x``. The gradient adds, point after point (box, row, column), to the
top-left, top-right, bottom-left and bottom-right pixels in that order: ``(1 - t_x) * dtop``,
``t_x * dtop``, ``(1 - t_x) * dbottom``, ``t_x * dbottom`` with ``dtop = (1 - t_y) * g``,
``dbottom = t_y * g``; a point on a pixel row adds its ``dbottom`` (``0 * g``) to that same row.
"""

from __future__ import annotations

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case
from .layouts import rois_to_crop_boxes

__all__ = ["crop_boxes", "crop_points", "crop_taps", "interpolate", "point_shares", "tf_crop_and_resize",
           "tf_crop_and_resize_gradient", "tf_crop_model"]

F32 = numpy.float32
#: crop_and_resize's ``extrapolation_value``, the oracle's call leaves it at its default
EXTRAPOLATION_VALUE = F32(0.0)


def crop_boxes(case: Case):
    """The float32 normalised boxes (K, 4) ``[y1, x1, y2, x2]`` and box indices (K,) the oracle's call
    hands TensorFlow for a roi_align ``case`` (TensorFlow rounds the float64 boxes to float32), and
    the crop size ``(h, w)``."""
    crop = as_int_tuple(case.kwargs["output_size"], 2, "output_size", case.op)
    H, W = case.x.shape[-2:]
    boxes, box_indices = rois_to_crop_boxes(case.arrays["boxes"], crop, H, W)
    return boxes.astype(F32), box_indices.astype(numpy.int64), crop


def crop_points(first, second, crop_length: int, length: int):
    """(K, c) float32 source coordinates of the crop points along one axis, for boxes from ``first``
    to ``second`` (K,) (normalised): ``a1 (L - 1) + i (a2 - a1)(L - 1)/(c - 1)``, or the box's centre
    ``0.5 (a1 + a2)(L - 1)`` when ``c = 1`` (TensorFlow takes that product in double, from float32
    operands: exact, then rounded once, as float32's own product)."""
    span = F32(length - 1)
    if crop_length == 1:
        return (F32(0.5) * (first + second) * span)[:, None]
    scale = (second - first) * span / F32(crop_length - 1)  # (K,)
    return first[:, None] * span + numpy.arange(crop_length, dtype=F32) * scale[:, None]


def crop_taps(points, length: int):
    """The pixels a crop point reads along one axis and its weight: ``low = floor(p)``,
    ``high = ceil(p)`` (equal on a pixel) and ``t = p - low``, each (K, c), and ``inside`` (K, c),
    False where ``p`` lies outside ``[0, L - 1]`` (those indices are clipped into the axis, unused)."""
    inside = (points >= 0) & (points <= F32(length - 1))
    low = numpy.floor(points)
    lerp = points - low
    low, high = (numpy.clip(index, 0, length - 1).astype(numpy.int64) for index in (low, numpy.ceil(points)))
    return low, high, lerp, inside


def _axes(case: Case):
    """``(box_indices, rows, cols)``: the rows' and columns' taps (:func:`crop_taps`) of every box."""
    boxes, box_indices, (h, w) = crop_boxes(case)
    H, W = case.x.shape[-2:]
    rows = crop_taps(crop_points(boxes[:, 0], boxes[:, 2], h, H), H)
    cols = crop_taps(crop_points(boxes[:, 1], boxes[:, 3], w, W), W)
    return box_indices, rows, cols


def interpolate(top_left, top_right, bottom_left, bottom_right, t_x, t_y):
    """crop_and_resize's bilinear value, in float32: across, then down, each ``a + (b - a) t``."""
    top = top_left + (top_right - top_left) * t_x
    bottom = bottom_left + (bottom_right - bottom_left) * t_x
    return top + (bottom - top) * t_y


def point_shares(g, t_x, t_y):
    """The four shares of an upstream entry ``g`` a point sends back, in TensorFlow's order (top-left,
    top-right, bottom-left, bottom-right): ``(1 - t_x) dtop``, ``t_x dtop``, ``(1 - t_x) dbottom``,
    ``t_x dbottom`` with ``dtop = (1 - t_y) g`` and ``dbottom = t_y g`` (float32; a share of weight 0
    is still ``0 * g``, NaN for an infinite ``g``)."""
    one = F32(1)
    top, bottom = (one - t_y) * g, t_y * g
    return [(one - t_x) * top, t_x * top, (one - t_x) * bottom, t_x * bottom]


def tf_crop_and_resize(case: Case):
    """crop_and_resize's output (K, C, h, w), float32: ``top + (bottom - top) t_y`` with
    ``top = tl + (tr - tl) t_x`` and ``bottom = bl + (br - bl) t_x``; extrapolation outside the image."""
    box_indices, (top, bottom, t_y, inside_y), (left, right, t_x, inside_x) = _axes(case)
    x = numpy.asarray(case.x, dtype=F32)
    images = box_indices[:, None, None, None]  # (K, 1, 1, 1)
    channels = numpy.arange(x.shape[1])[None, :, None, None]  # (1, C, 1, 1)

    def pixel(rows, cols):  # (K, C, h, w): x[n_k, c, rows[k, i], cols[k, j]]
        return x[images, channels, rows[:, None, :, None], cols[:, None, None, :]]

    with numpy.errstate(invalid="ignore", over="ignore"):
        out = interpolate(pixel(top, left), pixel(top, right), pixel(bottom, left), pixel(bottom, right),
                          t_x[:, None, None, :], t_y[:, None, :, None])
    inside = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (K, 1, h, w)
    return numpy.where(inside, out, EXTRAPOLATION_VALUE).astype(F32)


def tf_crop_and_resize_gradient(case: Case, cotangent):
    """CropAndResizeGradImage: the gradient to the image (N, C, H, W), accumulated in float32 point
    after point (box, row, column), each point's four pixels in the order tl, tr, bl, br; a point
    outside the image sends nothing."""
    box_indices, (top, bottom, t_y, inside_y), (left, right, t_x, inside_x) = _axes(case)
    K, (h, w) = box_indices.shape[0], t_y.shape[1:] + t_x.shape[1:]
    g = numpy.moveaxis(numpy.asarray(cotangent, dtype=F32), 1, -1)  # (K, h, w, C)
    with numpy.errstate(invalid="ignore", over="ignore"):
        shares = point_shares(g, t_x[:, None, :, None], t_y[:, :, None, None])  # 4 x (K, h, w, C)
    # (K, h, w, 4): each point's four pixels along the last axis, so that a flat walk (box, row,
    # column, corner) is TensorFlow's order of additions
    shape = (K, h, w, 4)
    corners = ((top, left), (top, right), (bottom, left), (bottom, right))
    rows = numpy.stack([numpy.broadcast_to(r[:, :, None], shape[:3]) for r, _ in corners], axis=-1)
    cols = numpy.stack([numpy.broadcast_to(c[:, None, :], shape[:3]) for _, c in corners], axis=-1)
    images = numpy.broadcast_to(box_indices[:, None, None, None], shape)
    taken = numpy.broadcast_to((inside_y[:, :, None] & inside_x[:, None, :])[..., None], shape)  # inside the image
    values = numpy.stack(numpy.broadcast_arrays(*shares), axis=-2)  # (K, h, w, 4, C)
    grad = numpy.zeros(case.x.shape[:1] + case.x.shape[2:] + case.x.shape[1:2], dtype=F32)  # (N, H, W, C)
    with numpy.errstate(invalid="ignore", over="ignore"):
        numpy.add.at(grad, (images[taken], rows[taken], cols[taken]), values[taken])  # one after the other, in float32
    return numpy.moveaxis(grad, -1, 1)


def tf_crop_model(case: Case, ours, cotangent):
    """crop_and_resize's output and image gradient (:func:`tf_crop_and_resize`,
    :func:`tf_crop_and_resize_gradient`) in place of poolref's RoI Align."""
    grads = dict(ours.grads)
    if "x" in grads and cotangent is not None:
        grads["x"] = tf_crop_and_resize_gradient(case, cotangent).astype(case.x.dtype)
    return ours._replace(values=tf_crop_and_resize(case).astype(case.x.dtype), grads=grads)
