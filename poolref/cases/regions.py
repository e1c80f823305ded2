r"""Generators of the region ops: RoI pool and RoI Align (plain and position-sensitive) and the
deformable RoI pool.

Each ``gen(rng, op, space) -> Case`` draws a valid call of its op (see :mod:`poolref.cases.generators`).
"""

from __future__ import annotations

import numpy

from .case import Case
from .values import distinct_values, draw_batch_channels, draw_ints, off_the_kinks, pick, smooth_values

__all__ = ["GENERATORS", "deform_roi_pool_coordinates"]


def draw_boxes(rng, K, N, H, W, scale, ordered):
    """(K, 5) boxes ``[batch_index, x1, y1, x2, y2]`` around and inside the map, in input coordinates."""
    xs = rng.uniform(-2, W + 2, size=(K, 2)) / scale
    ys = rng.uniform(-2, H + 2, size=(K, 2)) / scale
    if ordered:  # ONNX Runtime fails on a box inverted along one axis
        xs.sort(axis=1)
        ys.sort(axis=1)
    return numpy.column_stack([rng.integers(0, N, K), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]])


def _region(rng, op, space):
    N, H, W = int(rng.integers(1, 3)), *draw_ints(rng, 1, 7, 2)
    ph, pw = draw_ints(rng, 1, 3, 2)
    C = ph * pw * int(rng.integers(1, 3)) if op.startswith("ps_") else int(rng.integers(1, 4))
    K = int(rng.integers(1, 4))
    scale = float(pick(rng, space.get("scales", (1.0, 0.5, 2.0))))
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    boxes = draw_boxes(rng, K, N, H, W, scale, space.get("ordered_boxes", False)).astype(dtype)
    # roi_pool and the max mode pick a maximum: distinct values, so that no tie decides
    distinct = op.endswith("roi_pool") or space.get("distinct", False)
    x = distinct_values(rng, (N, C, H, W), dtype) if distinct else smooth_values(rng, (N, C, H, W), dtype)
    kwargs = dict(output_size=(ph, pw), spatial_scale=scale)
    if "align" in op:
        kwargs["sampling_ratio"] = int(pick(rng, space.get("sampling_ratios", (-1, 0, 1, 2, 3))))
    if op == "roi_align":
        kwargs["aligned"] = bool(pick(rng, space.get("aligned", (False, True))))
        mode = pick(rng, space.get("modes", ("avg",)))
        if mode != "avg":
            kwargs["mode"] = mode
    convention = space.get("convention", "torchvision")
    convention = "torchvision" if convention == "torch" else convention  # the region ops' default's name
    if convention != "torchvision" and op in ("roi_align", "roi_pool"):
        kwargs["convention"] = convention
    return Case(op, {"x": x, "boxes": boxes}, kwargs, positional=("x", "boxes"))


def deform_roi_pool_coordinates(boxes, offset, output_size, scale, ratio, gamma) -> numpy.ndarray:
    """Every sampling coordinate of deformable RoI pooling (both axes, flattened), float64: RoI
    Align's aligned geometry shifted by ``gamma * roi size * offset``."""
    ph, pw = output_size
    coordinates = []
    for k in range(boxes.shape[0]):
        box = boxes[k].astype(numpy.float64)
        for axis, bins, low, high in ((0, pw, 1, 3), (1, ph, 2, 4)):
            start = box[low] * scale - 0.5
            size = box[high] * scale - 0.5 - start
            bin_size = size / bins
            grid = ratio if ratio > 0 else int(numpy.ceil(bin_size))
            within = (numpy.arange(max(grid, 0)) + 0.5) * bin_size / max(grid, 1)  # (G,)
            shift = gamma * size * offset[k, axis].astype(numpy.float64)  # (ph, pw)
            index = numpy.arange(bins)[None, :] if axis == 0 else numpy.arange(bins)[:, None]
            coordinates.append((start + shift + index * bin_size)[..., None] + within)
    return numpy.concatenate([c.ravel() for c in coordinates]) if coordinates else numpy.zeros(0)


def _deform_roi_pool(rng, op, space):
    """mmcv's deformable RoI pooling: boxes around and inside the map, offsets of order one.

    The boxes and offsets are redrawn until no sampling coordinate lies within 1e-4 of an integer,
    where the offsets' gradient jumps (a finite-difference step must not cross one).
    """
    N, C = draw_batch_channels(rng)
    H, W = draw_ints(rng, 1, 6, 2)
    ph, pw = draw_ints(rng, 1, 3, 2)
    K = int(rng.integers(1, 4))
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    scale = float(pick(rng, (1.0, 0.5, 2.0)))
    ratio = int(pick(rng, (0, 1, 2, 3, -1)))
    gamma = float(pick(rng, (0.1, 0.5, 1.0)))
    for _ in range(100):
        boxes = draw_boxes(rng, K, N, H, W, scale, False).astype(dtype)
        offset = rng.normal(scale=0.5, size=(K, 2, ph, pw)).astype(dtype)
        if off_the_kinks(deform_roi_pool_coordinates(boxes, offset, (ph, pw), scale, ratio, gamma)):
            break
    kwargs = dict(output_size=(ph, pw), spatial_scale=scale, sampling_ratio=ratio, gamma=gamma)
    arrays = {"x": smooth_values(rng, (N, C, H, W), dtype), "boxes": boxes, "offset": offset}
    return Case(op, arrays, kwargs, positional=("x", "boxes", "offset"), grad_inputs=("x", "offset"))


# --------------------------------------------------------------------------------------------------
# The ops of this family and their generators
# --------------------------------------------------------------------------------------------------
GENERATORS = {"roi_align": _region, "roi_pool": _region, "ps_roi_align": _region, "ps_roi_pool": _region,
              "deform_roi_pool": _deform_roi_pool}
