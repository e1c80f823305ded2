r"""The oracle's configuration generators: one per op family, each drawing a valid call of its op.

A generator ``gen(rng, op, space) -> Case`` draws the op's keyword arguments and shapes from
``space`` (the options an adapter declares for a framework op: which paddings, whether ceil mode
exists, which dtypes, ...; see :func:`poolref.oracle.cases.draw_case` for the keys) and fills the
arrays with *finite* values of order one. The input classes (ties, NaN, infinities, float16,
unbatched, non-contiguous views, ...) are applied on top by :mod:`poolref.oracle.cases`, which is
why a generator never thinks about them.

Values are chosen so that a comparison tests semantics and not luck:

* max-type ops get distinct values, a quarter apart (:func:`distinct_values`), so that rounding can
  never flip an argmax and a gradient has exactly one place to go;
* PyTorch's Lp pooling gets positive values (its formula has no absolute value).
"""

from __future__ import annotations

import math

import numpy

from .._geometry import pool_geometry
from .case import Case

__all__ = ["GENERATORS", "WINDOWED_DEFAULTS", "CONVENTION_SPACES", "distinct_values", "smooth_values", "LINEAR_MODE"]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def distinct_values(rng, shape, dtype=numpy.float64, spacing: float = 0.25) -> numpy.ndarray:
    """A random permutation of ``spacing * (k - size/2)``: distinct values, exact in float16/32/64."""
    size = math.prod(shape)
    return rng.permutation((numpy.arange(size) - size // 2) * spacing).reshape(shape).astype(dtype)


def smooth_values(rng, shape, dtype, low=-2.0, high=2.0) -> numpy.ndarray:
    return rng.uniform(low, high, size=shape).astype(dtype)


def _ints(rng, low, high, n) -> tuple:
    """n ints in [low, high] (inclusive), as a tuple of Python ints."""
    return tuple(int(v) for v in rng.integers(low, high + 1, n))


def _pick(rng, choices):
    return choices[int(rng.integers(len(choices)))]


# --------------------------------------------------------------------------------------------------
# Windowed pooling: max, avg, lp
# --------------------------------------------------------------------------------------------------
WINDOWED_DEFAULTS = dict(
    convention="torch",
    padding=("none", "symmetric"),  # kinds drawn: none, symmetric, asymmetric, same, same_lower, valid
    ceil_mode=True,
    dilation=None,  # None: max pooling only (PyTorch); True/False to force
    count_include_pad=(True, False),
    divisor_override=None,  # None: 2-d and 3-d only (PyTorch's avg_pool1d has none)
    norm_types=(1.0, 2.0, 3.0, 1.5),
    positive=None,  # None: positive inputs for Lp pooling under "torch" only
    max_kernel=3,
    max_stride=3,
    input_at_least_kernel=False,  # PyTorch's avg_pool3d refuses an input smaller than its kernel
)


def _draw_padding(rng, kind, kernel, dilation):
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if kind == "none":
        return 0
    if kind == "symmetric":
        return tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    if kind == "asymmetric":
        pairs = [(int(rng.integers(0, s)), int(rng.integers(0, s))) for s in spans]
        wide = [a for a, s in enumerate(spans) if s >= 2]
        if wide and all(b == e for b, e in pairs):  # asymmetric means begin != end somewhere
            a = wide[int(rng.integers(len(wide)))]
            b = int(rng.integers(0, spans[a]))
            pairs[a] = (b, (b + 1 + int(rng.integers(0, spans[a] - 1))) % spans[a])
        return tuple(pairs)
    return kind  # "same", "same_lower", "valid"


#: What a space of several ``conventions`` draws under each (the self-checks use it).
CONVENTION_SPACES = {
    "torch": dict(padding=("none", "symmetric"), ceil_mode=True),
    "onnx": dict(padding=("none", "asymmetric", "same", "same_lower", "valid"), ceil_mode=True),
    "tensorflow": dict(padding=("same", "valid", "asymmetric"), ceil_mode=False),
}


def _windowed(rng, op, space):
    n = int(op[-2])
    kind = op.split("_")[0]  # max, avg, lp
    if space.get("conventions"):
        allowed = [c for c in space["conventions"] if kind != "lp" or c != "tensorflow"]  # no Lp in TensorFlow
        convention = _pick(rng, allowed)
        space = dict(space, convention=convention, **CONVENTION_SPACES[convention])
    convention = space["convention"]
    use_dilation = space["dilation"] if space["dilation"] is not None else kind == "max"
    max_size = 8 if n < 3 else 5
    for _ in range(1000):
        kernel = _ints(rng, 1, space["max_kernel"], n)
        stride = _ints(rng, 1, space["max_stride"], n)
        dilation = _ints(rng, 1, 2, n) if use_dilation and rng.random() < 0.5 else (1,) * n
        padding = _draw_padding(rng, _pick(rng, space["padding"]), kernel, dilation)
        ceil_mode = bool(space["ceil_mode"] and rng.random() < 0.5)
        shape = _ints(rng, 1, max_size, n)
        if space["input_at_least_kernel"] and any(L < k for L, k in zip(shape, kernel)):
            continue
        try:
            pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode, convention, op)
        except ValueError:
            continue
        break
    else:  # pragma: no cover - the spaces used all have valid configurations
        raise RuntimeError(f"no valid configuration drawn for {op} in {space}")
    kwargs = {}
    if kind == "lp":
        kwargs["norm_type"] = float(_pick(rng, space["norm_types"]))
    kwargs.update(kernel_size=kernel, stride=stride)
    if padding != 0:
        kwargs["padding"] = padding
    if dilation != (1,) * n:
        kwargs["dilation"] = dilation
    kwargs["ceil_mode"] = ceil_mode
    if kind == "avg":
        kwargs["count_include_pad"] = bool(_pick(rng, space["count_include_pad"]))
        allow_override = space["divisor_override"] if space["divisor_override"] is not None else n > 1
        if allow_override and rng.random() < 0.25:
            kwargs["divisor_override"] = int(rng.integers(1, 6))
    if kind == "max":
        kwargs["return_indices"] = True
    if convention != "torch":
        kwargs["convention"] = convention
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    if kind == "max":
        x = distinct_values(rng, full, dtype)
    elif kind == "lp":
        positive = space["positive"] if space["positive"] is not None else convention == "torch"
        x = smooth_values(rng, full, dtype, *((0.5, 2.0) if positive else (-2.0, 2.0)))
    else:
        x = smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, kwargs)


# --------------------------------------------------------------------------------------------------
# Unpooling, adaptive, global, fractional
# --------------------------------------------------------------------------------------------------
def _unpool(rng, op, space):
    """Values and indices of a max pooling whose windows do not overlap (so no index repeats)."""
    import poolref

    n = int(op[-2])
    max_size = 8 if n < 3 else 5
    for _ in range(1000):
        kernel = _ints(rng, 1, 3, n)
        stride = tuple(int(rng.integers(k, k + 2)) for k in kernel)  # stride >= kernel: unique indices
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = _ints(rng, 1, max_size, n)
        try:
            pool_geometry(shape, kernel, stride, padding, 1, False, "torch", op)
        except ValueError:
            continue
        break
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    pooled, indices = getattr(poolref, f"max_pool{n}d")(distinct_values(rng, full, dtype), kernel, stride, padding, return_indices=True)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding)
    # the default output length (L_out - 1)*s - 2p + k can fall short of the pooled input's length L
    # (the remainder the pooling dropped), and then an index may point past it: give L itself, which
    # always lies within the stride of the default
    default = tuple((O - 1) * s - 2 * p + k for O, s, p, k in zip(pooled.shape[2:], stride, padding, kernel))
    if default != shape or rng.random() < 0.5:
        kwargs["output_size"] = shape
    return Case(op, {"x": pooled, "indices": indices}, kwargs, positional=("x", "indices"))


def _adaptive(rng, op, space):
    n = int(op[-2])
    max_size = 9 if n < 3 else 5
    shape, out = _ints(rng, 1, max_size, n), _ints(rng, 1, max_size, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    x = distinct_values(rng, full, dtype) if "max" in op else smooth_values(rng, full, dtype)
    kwargs = dict(output_size=out)
    if "max" in op:
        kwargs["return_indices"] = True
    return Case(op, {"x": x}, kwargs)


def _global(rng, op, space):
    n = int(_pick(rng, space.get("ndims", (1, 2, 3))))
    shape = _ints(rng, 1, 7 if n < 3 else 4, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    kwargs = {}
    if op == "global_max_pool":
        x = distinct_values(rng, full, dtype)
    elif op == "global_lp_pool":
        convention = space.get("convention", "torch")
        x = smooth_values(rng, full, dtype, *((0.5, 2.0) if convention == "torch" else (-2.0, 2.0)))
        kwargs["norm_type"] = float(_pick(rng, space.get("norm_types", (1.0, 2.0, 3.0, 1.5))))
        if convention != "torch":
            kwargs["convention"] = convention
    else:
        x = smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, kwargs)


def _fractional(rng, op, space):
    n = int(op[-2])
    if space.get("ratio_two"):
        # kernel 2 over an even length L with output L/2: alpha = (L - 2)/(L/2 - 1) = 2, so every
        # window starts at 2i whatever the sample: the regular windows TensorFlow draws for ratio 2
        shape = tuple(2 * v for v in _ints(rng, 1, 4, n))
        full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
        dtype = numpy.dtype(_pick(rng, space["dtypes"]))
        samples = rng.uniform(0, 1, size=full[:2] + (n,)).astype(dtype)
        kwargs = dict(kernel_size=(2,) * n, output_size=tuple(L // 2 for L in shape), return_indices=True)
        return Case(op, {"x": distinct_values(rng, full, dtype), "random_samples": samples}, kwargs)
    max_size = 9 if n < 3 else 6
    kernel = _ints(rng, 1, 3, n)
    # PyTorch requires output_size + kernel_size - 1 <= input size in 2-D, and < in 3-D
    strict = int(n == 3)
    shape = tuple(int(rng.integers(k + strict, max_size + 1)) for k in kernel)
    out = tuple(int(rng.integers(1, L - k + 2 - strict)) for L, k in zip(shape, kernel))
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    samples = rng.uniform(0, 1, size=full[:2] + (n,)).astype(dtype)
    kwargs = dict(kernel_size=kernel, output_size=out, return_indices=True)
    return Case(op, {"x": distinct_values(rng, full, dtype), "random_samples": samples}, kwargs)


# --------------------------------------------------------------------------------------------------
# Sampling: grid_sample and interpolate
# --------------------------------------------------------------------------------------------------
def _grid_sample(rng, op, space):
    N, C = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    H, W = _ints(rng, 1, 7, 2)
    Ho, Wo = _ints(rng, 1, 5, 2)
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    mode = _pick(rng, space.get("modes", ("bilinear", "nearest")))
    padding_mode = _pick(rng, space.get("padding_modes", ("zeros", "border", "reflection")))
    align_corners = bool(_pick(rng, space.get("align_corners", (False, True))))
    reach = space.get("grid_reach", 1.25)  # a little outside [-1, 1]: the padding modes matter
    grid = rng.uniform(-reach, reach, size=(N, Ho, Wo, 2)).astype(dtype)
    x = smooth_values(rng, (N, C, H, W), dtype)
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    # nearest sampling has no gradient to the grid (it is piecewise constant): compare x only
    grads = ("x", "grid") if mode == "bilinear" and space.get("grid_gradient", True) else ("x",)
    return Case(op, {"x": x, "grid": grid}, kwargs, positional=("x", "grid"), grad_inputs=grads)


LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _interpolate(rng, op, space):
    modes = space.get("modes", ("nearest", "nearest-exact", "linear", "area"))
    ndims = space.get("ndims", (1, 2, 3))
    mode = _pick(rng, modes)
    n = int(_pick(rng, ndims))
    max_size = 7 if n < 3 else 4
    shape = _ints(rng, 1, max_size, n)
    if space.get("integer_ratio"):  # sizes whose ratio is an integer either way (TF's area resize)
        size = tuple(L * int(rng.integers(1, 3)) if rng.random() < 0.5 else L for L in shape)
        shape, size = (size, shape) if rng.random() < 0.5 else (shape, size)
    else:
        size = _ints(rng, 1, 2 * max_size, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    kwargs = dict(size=size, mode=LINEAR_MODE[n] if mode == "linear" else mode)
    if mode == "linear":
        kwargs["align_corners"] = bool(_pick(rng, space.get("align_corners", (False, True))))
    return Case(op, {"x": smooth_values(rng, full, dtype)}, kwargs)


# --------------------------------------------------------------------------------------------------
# Region ops and convolution
# --------------------------------------------------------------------------------------------------
def _boxes(rng, K, N, H, W, scale, ordered):
    """(K, 5) boxes ``[batch_index, x1, y1, x2, y2]`` around and inside the map, in input coordinates."""
    xs = rng.uniform(-2, W + 2, size=(K, 2)) / scale
    ys = rng.uniform(-2, H + 2, size=(K, 2)) / scale
    if ordered:  # ONNX Runtime fails on a box inverted along one axis
        xs.sort(axis=1)
        ys.sort(axis=1)
    return numpy.column_stack([rng.integers(0, N, K), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]])


def _crop_and_resize(rng, op, space):
    """RoI Align cases that TensorFlow's crop_and_resize samples identically: aligned, one sample per
    bin, every sample inside the image (see :func:`poolref.oracle.layouts.crop_boxes_to_rois`)."""
    from .layouts import crop_boxes_to_rois

    N, C, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 4)), *_ints(rng, 2, 7, 2)
    crop, K = _ints(rng, 1, 3, 2), int(rng.integers(1, 4))
    normalised = rng.uniform(0, 1, size=(K, 4))  # [y1, x1, y2, x2]; y2 < y1 flips the crop
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    boxes = crop_boxes_to_rois(normalised, rng.integers(0, N, K), crop, H, W).astype(dtype)
    kwargs = dict(output_size=crop, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return Case(op, {"x": smooth_values(rng, (N, C, H, W), dtype), "boxes": boxes}, kwargs, positional=("x", "boxes"))


def _region(rng, op, space):
    if space.get("crop_and_resize"):
        return _crop_and_resize(rng, op, space)
    N, H, W = int(rng.integers(1, 3)), *_ints(rng, 1, 7, 2)
    ph, pw = _ints(rng, 1, 3, 2)
    C = ph * pw * int(rng.integers(1, 3)) if op.startswith("ps_") else int(rng.integers(1, 4))
    K = int(rng.integers(1, 4))
    scale = float(_pick(rng, space.get("scales", (1.0, 0.5, 2.0))))
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    boxes = _boxes(rng, K, N, H, W, scale, space.get("ordered_boxes", False)).astype(dtype)
    # roi_pool and the max mode pick a maximum: distinct values, so that no tie decides
    distinct = op.endswith("roi_pool") or space.get("distinct", False)
    x = distinct_values(rng, (N, C, H, W), dtype) if distinct else smooth_values(rng, (N, C, H, W), dtype)
    kwargs = dict(output_size=(ph, pw), spatial_scale=scale)
    if "align" in op:
        kwargs["sampling_ratio"] = int(_pick(rng, space.get("sampling_ratios", (-1, 0, 1, 2, 3))))
    if op == "roi_align":
        kwargs["aligned"] = bool(_pick(rng, space.get("aligned", (False, True))))
        mode = _pick(rng, space.get("modes", ("avg",)))
        if mode != "avg":
            kwargs["mode"] = mode
    convention = space.get("convention", "torchvision")
    convention = "torchvision" if convention == "torch" else convention  # the region ops' default's name
    if convention != "torchvision" and op in ("roi_align", "roi_pool"):
        kwargs["convention"] = convention
    return Case(op, {"x": x, "boxes": boxes}, kwargs, positional=("x", "boxes"))


def _conv2d(rng, op, space):
    N, Cin, Cout = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    for _ in range(1000):
        kernel = _ints(rng, 1, 3, 2)
        stride, dilation = _ints(rng, 1, 2, 2), _ints(rng, 1, 2, 2)
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        H, W = _ints(rng, 1, 8, 2)
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        if all(L + 2 * p >= s for L, p, s in zip((H, W), padding, spans)):
            break
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    arrays = {
        "x": smooth_values(rng, (N, Cin, H, W), dtype),
        "weight": smooth_values(rng, (Cout, Cin) + kernel, dtype, -1.0, 1.0),
        "bias": smooth_values(rng, (Cout,), dtype, -1.0, 1.0),
    }
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    names = ("x", "weight", "bias")
    return Case(op, arrays, kwargs, positional=names, grad_inputs=names)


# --------------------------------------------------------------------------------------------------
# The ops and their generators
# --------------------------------------------------------------------------------------------------
GENERATORS = {}
for _n in (1, 2, 3):
    for _kind in ("max", "avg", "lp"):
        GENERATORS[f"{_kind}_pool{_n}d"] = _windowed
    GENERATORS[f"max_unpool{_n}d"] = _unpool
    GENERATORS[f"adaptive_avg_pool{_n}d"] = _adaptive
    GENERATORS[f"adaptive_max_pool{_n}d"] = _adaptive
GENERATORS.update({
    "global_avg_pool": _global, "global_max_pool": _global, "global_lp_pool": _global,
    "fractional_max_pool2d": _fractional, "fractional_max_pool3d": _fractional,
    "grid_sample": _grid_sample, "interpolate": _interpolate,
    "roi_align": _region, "roi_pool": _region, "ps_roi_align": _region, "ps_roi_pool": _region,
    "conv2d": _conv2d,
})
