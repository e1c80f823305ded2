r"""Index layouts: converting frameworks' max-pooling indices to and from poolref's.

poolref (like PyTorch) flattens each index within its own (n, c) plane of the unpadded input,
``h*W + w`` in 2-D. The others flatten more:

===========================================  ===============================================
framework                                    flat index of input element (n, c, h, w)
===========================================  ===============================================
PyTorch, poolref                             ``h*W + w``
ONNX ``MaxPool`` (``storage_order=0``)       ``((n*C + c)*H + h)*W + w``
ONNX ``MaxPool`` (``storage_order=1``)       ``(n*C + c)*H*W + w*H + h``
TF ``max_pool_with_argmax``                  ``((n*H + h)*W + w)*C + c`` (NHWC)
TF, ``include_batch_in_index=False``         ``(h*W + w)*C + c``
===========================================  ===============================================

The conversions here undo the extra terms *exactly* for the (n, c) of each output: an index that
points into another plane or another channel does not decode, and becomes -1 (never a valid
poolref index), so that the exact index comparison reports it instead of a modulo hiding it.

>>> import numpy as np
>>> onnx = np.array([[[[5]], [[4 * 4 + 2]]]])  # N=1, C=2, a 4x4 input, one output per plane
>>> onnx_to_plane(onnx, (1, 2, 4, 4)).ravel().tolist()
[5, 2]
>>> plane_to_onnx(np.array([[[[5]], [[2]]]]), (1, 2, 4, 4)).ravel().tolist()
[5, 18]
"""

from __future__ import annotations

import math

import numpy

__all__ = [
    "onnx_to_plane", "plane_to_onnx", "tf_argmax_to_plane", "plane_to_tf_argmax",
    "crop_boxes_to_rois", "rois_to_crop_boxes",
]


def _plane_numbers(shape) -> numpy.ndarray:
    """(N, C, 1, .., 1) number ``n*C + c`` of each plane, broadcastable against an (N, C, ..) array."""
    N, C = shape[:2]
    return numpy.arange(N * C, dtype=numpy.int64).reshape((N, C) + (1,) * (len(shape) - 2))


def _checked(within, valid):
    return numpy.where(valid, within, -1).astype(numpy.int64)


def onnx_to_plane(indices, input_shape, storage_order: int = 0) -> numpy.ndarray:
    """ONNX ``MaxPool`` indices (flattened over the whole NC.. input) -> poolref's in-plane indices.

    ``storage_order=1`` (2-D only) flattens each plane column-major, ``w*H + h``.
    """
    indices = numpy.asarray(indices, dtype=numpy.int64)
    plane_size = math.prod(input_shape[2:])
    within = indices - _plane_numbers(indices.shape) * plane_size
    valid = (within >= 0) & (within < plane_size)
    if storage_order == 1:
        if len(input_shape) != 4:
            raise ValueError(f"onnx_to_plane: storage_order=1 is converted for 2-D inputs only, got input_shape={input_shape}")
        H, W = input_shape[2:]
        w, h = numpy.divmod(within, H)
        within = h * W + w
    return _checked(within, valid)


def plane_to_onnx(indices, output_shape) -> numpy.ndarray:
    """poolref's in-plane indices -> ONNX's whole-tensor indices of an (N, C, ..) ``output_shape``
    (what ``MaxUnpool`` reads)."""
    indices = numpy.asarray(indices, dtype=numpy.int64)
    return indices + _plane_numbers(indices.shape) * math.prod(output_shape[2:])


def tf_argmax_to_plane(indices_nchw, input_shape, include_batch_in_index: bool) -> numpy.ndarray:
    """``tf.nn.max_pool_with_argmax`` indices (already transposed to N, C, ..) -> in-plane indices.

    ``input_shape`` is the channels-first (N, C, H, W) shape of the pooled input.
    """
    indices = numpy.asarray(indices_nchw, dtype=numpy.int64)
    N, C = input_shape[:2]
    plane_size = math.prod(input_shape[2:])
    n = numpy.arange(N, dtype=numpy.int64).reshape((N, 1) + (1,) * (indices.ndim - 2))
    c = numpy.arange(C, dtype=numpy.int64).reshape((1, C) + (1,) * (indices.ndim - 2))
    rest = indices - c - (n * plane_size * C if include_batch_in_index else 0)  # (h*W + w) * C
    within, remainder = numpy.divmod(rest, C)
    return _checked(within, (remainder == 0) & (within >= 0) & (within < plane_size))


def plane_to_tf_argmax(indices, input_shape, include_batch_in_index: bool) -> numpy.ndarray:
    """The inverse of :func:`tf_argmax_to_plane` (for the docs and the tests)."""
    indices = numpy.asarray(indices, dtype=numpy.int64)
    N, C = input_shape[:2]
    plane_size = math.prod(input_shape[2:])
    n = numpy.arange(N, dtype=numpy.int64).reshape((N, 1) + (1,) * (indices.ndim - 2))
    c = numpy.arange(C, dtype=numpy.int64).reshape((1, C) + (1,) * (indices.ndim - 2))
    return indices * C + c + (n * plane_size * C if include_batch_in_index else 0)


# --------------------------------------------------------------------------------------------------
# Boxes: TensorFlow's crop_and_resize as RoI Align
# --------------------------------------------------------------------------------------------------
# tf.image.crop_and_resize samples crop point i of a box [a1, a2] (normalised, 0..1) at
#     p_i = a1*(L - 1) + i * (a2 - a1)*(L - 1)/(c - 1)        (c > 1; the centre when c == 1)
# and reads it by bilinear interpolation. roi_align(aligned=True, sampling_ratio=1) of a box [lo, hi]
# in pixels samples bin i at its centre, lo - 1/2 + (i + 1/2)*(hi - lo)/c. The two sample the same
# points when hi - lo = c*d and lo = p_0 + 1/2 - d/2 with d the crop step, and wherever every point
# lies inside the image the two interpolations agree; that is the box conversion below.
def crop_boxes_to_rois(crop_boxes, box_indices, crop_size, height: int, width: int) -> numpy.ndarray:
    """TF ``crop_and_resize`` boxes (K, 4) ``[y1, x1, y2, x2]`` (normalised) -> (K, 5) RoI Align boxes.

    >>> crop_boxes_to_rois([[0.0, 0.0, 1.0, 1.0]], [0], (3, 3), 5, 5).tolist()
    [[0.0, -0.5, -0.5, 5.5, 5.5]]
    """
    crop_boxes = numpy.asarray(crop_boxes, dtype=numpy.float64)
    columns = [numpy.asarray(box_indices, dtype=numpy.float64)]
    lows, highs = {}, {}
    for axis, (first, second, c, L) in enumerate(((1, 3, crop_size[1], width), (0, 2, crop_size[0], height))):
        a1, a2 = crop_boxes[:, first], crop_boxes[:, second]
        if c > 1:
            step = (a2 - a1) * (L - 1) / (c - 1)
            start = a1 * (L - 1)
        else:
            step = numpy.ones_like(a1)
            start = 0.5 * (a1 + a2) * (L - 1)
        lows[axis] = start + 0.5 - 0.5 * step
        highs[axis] = lows[axis] + c * step
    columns += [lows[0], lows[1], highs[0], highs[1]]  # x1, y1, x2, y2
    return numpy.stack(columns, axis=1)


def rois_to_crop_boxes(rois, crop_size, height: int, width: int):
    """The inverse of :func:`crop_boxes_to_rois`: ``(boxes (K, 4), box_indices (K,) int32)``."""
    rois = numpy.asarray(rois, dtype=numpy.float64)
    normalised = {}
    for axis, (low, high, c, L) in enumerate(((1, 3, crop_size[1], width), (2, 4, crop_size[0], height))):
        lo, hi = rois[:, low], rois[:, high]
        step = (hi - lo) / c
        first = lo - 0.5 + 0.5 * step  # the first crop point, in pixels
        last = first + (c - 1) * step if c > 1 else first
        normalised[axis] = (first / (L - 1), last / (L - 1))
    x1, x2 = normalised[0]
    y1, y2 = normalised[1]
    boxes = numpy.stack([y1, x1, y2, x2], axis=1)
    return boxes, rois[:, 0].astype(numpy.int32)
