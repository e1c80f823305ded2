r"""The oracle's configuration generators: one per op family, each drawing a valid call of its op.

A generator ``gen(rng, op, space) -> Case`` draws the op's keyword arguments and shapes from
``space`` (the options an adapter declares for a framework op: which paddings, whether ceil mode
exists, which dtypes, ...; see :func:`poolref.cases.draw_case` for the keys) and fills the
arrays with *finite* values of order one. The input classes (ties, NaN, infinities, float16,
unbatched, non-contiguous views, ...) are applied on top by :mod:`poolref.cases`, which is
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

__all__ = ["GENERATORS", "REFUSED_CLASSES", "WINDOWED_DEFAULTS", "CONVENTION_SPACES", "distinct_values", "smooth_values", "LINEAR_MODE"]


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
    return_indices=True,  # max pooling: False where the framework op returns no indices (tf.nn.max_pool)
)


def _draw_padding(rng, kind, kernel, dilation):
    """Padding of ``kind``: none, symmetric, asymmetric (begin != end somewhere), cropping (a negative
    pad somewhere, for convention "jax"), or a string kind as it is."""
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
    if kind == "cropping":  # lax.reduce_window's negative pads: they crop the input (convention "jax")
        pairs = [(int(rng.integers(-1, s)), int(rng.integers(-1, s))) for s in spans]
        if all(b >= 0 and e >= 0 for b, e in pairs):
            a = int(rng.integers(len(pairs)))
            pairs[a] = (-1, pairs[a][1]) if rng.random() < 0.5 else (pairs[a][0], -1)
        return tuple(pairs)
    return kind  # "same", "same_lower", "valid"


#: What a space of several ``conventions`` draws under each (the self-checks use it).
CONVENTION_SPACES = {
    "torch": dict(padding=("none", "symmetric"), ceil_mode=True),
    "onnx": dict(padding=("none", "asymmetric", "same", "same_lower", "valid"), ceil_mode=True),
    "tensorflow": dict(padding=("same", "valid", "asymmetric"), ceil_mode=False),
    "jax": dict(padding=("none", "asymmetric", "cropping", "same", "same_lower", "valid"), ceil_mode=False,
                divisor_override=False),
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
    if kind == "max" and space["return_indices"]:
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
    from .. import ops

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
    pooled, indices = getattr(ops, f"max_pool{n}d")(distinct_values(rng, full, dtype), kernel, stride, padding, return_indices=True)
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


#: What ``interpolate`` takes under each convention (modes, dimensions, align_corners, where
#: ``antialias`` matters): PyTorch antialiases bilinear only; tf.image.resize is 2-D; jax.image.resize
#: has no legacy "nearest" and no align_corners, and antialiases by default.
RESIZE_CONVENTIONS = {
    "torch": dict(modes=("nearest", "nearest-exact", "linear", "area"), ndims=(1, 2, 3), align_corners=(False, True),
                  antialiased=lambda mode, n: mode == "linear" and n == 2),
    "tensorflow": dict(modes=("nearest", "nearest-exact", "linear", "area"), ndims=(2,), align_corners=(False, True),
                       antialiased=lambda mode, n: mode == "linear"),
    "jax": dict(modes=("nearest-exact", "linear", "area"), ndims=(1, 2, 3), align_corners=(False,),
                antialiased=lambda mode, n: mode == "linear"),
}


def _interpolate(rng, op, space):
    convention = _pick(rng, space["conventions"]) if space.get("conventions") else space.get("convention", "torch")
    rules = RESIZE_CONVENTIONS[convention]
    modes = tuple(m for m in space.get("modes", rules["modes"]) if m in rules["modes"])
    ndims = tuple(n for n in space.get("ndims", rules["ndims"]) if n in rules["ndims"])
    mode = _pick(rng, modes)
    n = int(_pick(rng, ndims))
    max_size = 7 if n < 3 else 4
    shape = _ints(rng, 1, max_size, n)
    if space.get("integer_ratio"):  # sizes whose ratio is an integer either way
        size = tuple(L * int(rng.integers(1, 3)) if rng.random() < 0.5 else L for L in shape)
        shape, size = (size, shape) if rng.random() < 0.5 else (shape, size)
    else:
        size = _ints(rng, 1, 2 * max_size, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    kwargs = dict(size=size, mode=LINEAR_MODE[n] if mode == "linear" else mode)
    if mode == "linear":
        choices = tuple(a for a in space.get("align_corners", (False, True)) if a in rules["align_corners"])
        kwargs["align_corners"] = bool(_pick(rng, choices or (False,)))
    if rules["antialiased"](mode, n) and not kwargs.get("align_corners"):
        antialias = _pick(rng, space.get("antialias", (False,)))
        if antialias is not False or convention == "jax":  # JAX antialiases by default: say which
            kwargs["antialias"] = antialias
    if convention != "torch":
        kwargs["convention"] = convention
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


def _region(rng, op, space):
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


def _deform_conv2d(rng, op, space):
    """torchvision's deformable convolution: groups and offset groups of 1 or 2, half the time a mask
    (DCN v2), offsets of order one that send some samples off the image.

    The offsets are redrawn until no sampling coordinate (rounded to the case's dtype, as the op
    computes it) lies within 1e-4 of an integer, where the bilinear derivative jumps: a pixel row
    or column, and the edges -1 and H of the readable range (a finite-difference step must not
    cross one). float16 coordinates, a 256th of a pixel apart from 4 on, land on integers too often
    for that; both sides of a comparison then take the same one-sided derivative.
    """
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    groups, offset_groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    per_group = int(rng.integers(1, 3))
    C = groups * offset_groups * per_group  # both kinds of group divide the channels
    c_out = groups * int(rng.integers(1, 3))
    N = int(rng.integers(1, 3))
    for _ in range(1000):
        kernel = _ints(rng, 1, 3, 2)
        stride, dilation = _ints(rng, 1, 2, 2), _ints(rng, 1, 2, 2)
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        H, W = _ints(rng, 1, 6, 2)
        out = [(L + 2 * p - d * (k - 1) - 1) // s + 1 for L, p, d, k, s in zip((H, W), padding, dilation, kernel, stride)]
        if min(out) >= 1:
            break
    taps = kernel[0] * kernel[1]
    for _ in range(100):
        offset = (rng.normal(scale=1.0, size=(N, 2 * offset_groups * taps) + tuple(out))).astype(dtype)
        if dtype == numpy.float16 or _off_the_kinks(_deform_conv_coordinates(offset, kernel, stride, padding, dilation)):
            break
    arrays = {
        "x": smooth_values(rng, (N, C, H, W), dtype),
        "offset": offset,
        "weight": smooth_values(rng, (c_out, C // groups) + kernel, dtype, -1.0, 1.0),
    }
    if rng.random() < 0.7:
        arrays["bias"] = smooth_values(rng, (c_out,), dtype, -1.0, 1.0)
    if rng.random() < 0.5:
        arrays["mask"] = smooth_values(rng, (N, offset_groups * taps) + tuple(out), dtype, 0.0, 1.0)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    positional = ("x", "offset", "weight") + (("bias",) if "bias" in arrays else ())
    return Case(op, arrays, kwargs, positional=positional, grad_inputs=tuple(arrays))


def _deform_conv_coordinates(offset, kernel, stride, padding, dilation) -> numpy.ndarray:
    """Every sampling coordinate of deformable convolution (rows and columns, flattened), as the op
    computes them: the tap's place plus its offset, in the offset's dtype."""
    N, channels, h_out, w_out = offset.shape
    kh, kw = kernel
    shifts = offset.reshape(N, -1, kh, kw, 2, h_out, w_out)
    rows = (numpy.arange(h_out) * stride[0] - padding[0])[None, :] + (numpy.arange(kh) * dilation[0])[:, None]  # (kh, H_out)
    cols = (numpy.arange(w_out) * stride[1] - padding[1])[None, :] + (numpy.arange(kw) * dilation[1])[:, None]  # (kw, W_out)
    ys = rows[:, None, :, None].astype(offset.dtype) + shifts[:, :, :, :, 0]
    xs = cols[None, :, None, :].astype(offset.dtype) + shifts[:, :, :, :, 1]
    return numpy.concatenate([ys.ravel(), xs.ravel()]).astype(numpy.float64)


# --------------------------------------------------------------------------------------------------
# Stochastic (inference), mixed, and the learned and smooth pools
# --------------------------------------------------------------------------------------------------
def _batch_channels(rng) -> tuple:
    return int(rng.integers(1, 3)), int(rng.integers(1, 4))


def _unpadded_window(rng, max_extra: int = 4):
    """A 2-D kernel, a stride (None: the kernel) and an input at least as large as the kernel."""
    kernel = _ints(rng, 1, 3, 2)
    stride = None if rng.random() < 0.3 else _ints(rng, 1, 3, 2)
    shape = tuple(k + int(rng.integers(0, max_extra + 1)) for k in kernel)
    return kernel, stride, shape


def _stochastic(rng, op, space):
    """Inference (``training=False``: the expectation, deterministic) on positive values.

    Stochastic pooling takes finite, non-negative activations only. The finite draw is positive, so
    the classes keep it non-negative (ties from {1, 2}, zeros of both signs, +inf only, positive
    magnitudes); windows that sum to zero come from the signed-zero class.
    """
    kernel, stride, shape = _unpadded_window(rng)
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    x = smooth_values(rng, _batch_channels(rng) + shape, dtype, 0.25, 2.0)
    kwargs = dict(kernel_size=kernel, stride=stride, training=False)
    return Case(op, {"x": x}, kwargs)


#: Mixed pooling's weights of max pooling: both ends (exactly max and exactly average pooling) and between.
MIXED_LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _mixed(rng, op, space):
    """PyTorch's max and average pooling blended: symmetric padding of at most half the kernel."""
    for _ in range(1000):
        kernel = _ints(rng, 1, 3, 2)
        stride = None if rng.random() < 0.3 else _ints(rng, 1, 3, 2)
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = _ints(rng, 1, 7, 2)
        try:
            pool_geometry(shape, kernel, stride, padding, 1, False, "torch", op)
        except ValueError:
            continue
        break
    lam = float(_pick(rng, MIXED_LAMBDAS)) if rng.random() < 0.6 else round(float(rng.uniform(0, 1)), 3)
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    x = distinct_values(rng, _batch_channels(rng) + shape, dtype)  # the max half: one winner per window
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, lam=lam)
    return Case(op, {"x": x}, kwargs)


def _global_shape(rng) -> tuple:
    """(N, C, *spatial) with 1 to 3 small spatial dims, for the global ops."""
    n = int(rng.integers(1, 4))
    return _batch_channels(rng) + _ints(rng, 1, 5 if n < 3 else 3, n)


def _gem(rng, op, space):
    """Values in [-1, 2] (some clamped to eps) and the exponent ``p`` as a 0-d array with a gradient.

    No value lies within 1e-3 of eps, so a finite-difference step never crosses the clamp; ``p`` is a
    multiple of 1/16, exact in every float dtype, and has x's dtype (so both sides compute alike).
    """
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    eps = 1e-6 if rng.random() < 0.7 else 0.05
    x = rng.uniform(-1.0, 2.0, size=_global_shape(rng))
    x = numpy.where(numpy.abs(x - eps) < 1e-3, 0.5, x).astype(dtype)
    p = numpy.array(numpy.round(rng.uniform(0.5, 6.0) * 16) / 16, dtype=dtype)
    kwargs = {} if eps == 1e-6 else dict(eps=eps)
    return Case(op, {"x": x, "p": p}, kwargs, positional=("x", "p"), grad_inputs=("x", "p"))


def _soft(rng, op, space):
    kernel, stride, shape = _unpadded_window(rng)
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    return Case(op, {"x": smooth_values(rng, _batch_channels(rng) + shape, dtype)}, dict(kernel_size=kernel, stride=stride))


def _lse(rng, op, space):
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    r = float(_pick(rng, (0.5, 1.0, 2.5))) if rng.random() < 0.5 else round(float(rng.uniform(0.1, 5.0)), 3)
    return Case(op, {"x": smooth_values(rng, _global_shape(rng), dtype)}, dict(r=r))


def _bilinear(rng, op, space):
    """``x > 0`` and, half the time, a second map (poolref's ``y``, named ``second`` here: every
    framework's check names its output ``y``) of one sign per channel, so that every product
    ``B[c, d]`` is at least 0.25 in size: the signed square root is smooth there (its slope near
    ``B = 0`` is ``1 / (2 sqrt(eps))``, which finite differences cannot follow). Both flags drawn."""
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    shape = _global_shape(rng)
    arrays = {"x": rng.uniform(0.5, 1.5, size=shape).astype(dtype)}
    if rng.random() < 0.5:
        channels_y = int(rng.integers(1, 4))
        signs = rng.choice([-1.0, 1.0], size=(1, channels_y) + (1,) * (len(shape) - 2))
        arrays["second"] = (rng.uniform(0.5, 1.5, size=(shape[0], channels_y) + shape[2:]) * signs).astype(dtype)
    kwargs = dict(signed_sqrt=bool(rng.random() < 0.5), l2_normalize=bool(rng.random() < 0.5))
    names = tuple(arrays)
    return Case(op, arrays, kwargs, positional=names, grad_inputs=names)


# --------------------------------------------------------------------------------------------------
# Spatial pyramid pooling, deformable RoI pooling, DynOPool
# --------------------------------------------------------------------------------------------------
def _sppnet_fits(length: int, n: int) -> bool:
    """He et al.'s windows (ceil(L/n), stride floor(L/n)) give exactly n windows along this axis."""
    return length >= n and length % n <= length // n


def _spatial_pyramid(rng, op, space):
    for _ in range(1000):
        levels = tuple(sorted(rng.choice([1, 2, 3, 4], size=int(rng.integers(1, 4)), replace=False).tolist()))
        if rng.random() < 0.3:
            levels = levels[::-1]  # the order given is the order of the output
        shape = _ints(rng, 1, 9, 2)
        binning = _pick(rng, ("adaptive", "sppnet"))
        if binning == "adaptive" or all(_sppnet_fits(L, n) for L in shape for n in levels):
            break
    mode = _pick(rng, ("max", "avg"))
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    full = _batch_channels(rng) + shape
    x = distinct_values(rng, full, dtype) if mode == "max" else smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, dict(levels=levels, mode=mode, binning=binning))


def _deform_coordinates(boxes, offset, output_size, scale, ratio, gamma) -> numpy.ndarray:
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


def _off_the_kinks(coordinates, clearance: float = 1e-4) -> bool:
    """No coordinate within ``clearance`` of an integer, where bilinear sampling has a kink (a pixel
    row or column, the clamp at 0 and L - 1, the edges -1 and L of the readable range)."""
    return coordinates.size == 0 or bool(numpy.abs(coordinates - numpy.round(coordinates)).min() > clearance)


def _deform_roi_pool(rng, op, space):
    """mmcv's deformable RoI pooling: boxes around and inside the map, offsets of order one.

    The boxes and offsets are redrawn until no sampling coordinate lies within 1e-4 of an integer,
    where the offsets' gradient jumps (a finite-difference step must not cross one).
    """
    N, C = _batch_channels(rng)
    H, W = _ints(rng, 1, 6, 2)
    ph, pw = _ints(rng, 1, 3, 2)
    K = int(rng.integers(1, 4))
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    scale = float(_pick(rng, (1.0, 0.5, 2.0)))
    ratio = int(_pick(rng, (0, 1, 2, 3, -1)))
    gamma = float(_pick(rng, (0.1, 0.5, 1.0)))
    for _ in range(100):
        boxes = _boxes(rng, K, N, H, W, scale, False).astype(dtype)
        offset = rng.normal(scale=0.5, size=(K, 2, ph, pw)).astype(dtype)
        if _off_the_kinks(_deform_coordinates(boxes, offset, (ph, pw), scale, ratio, gamma)):
            break
    kwargs = dict(output_size=(ph, pw), spatial_scale=scale, sampling_ratio=ratio, gamma=gamma)
    arrays = {"x": smooth_values(rng, (N, C, H, W), dtype), "boxes": boxes, "offset": offset}
    return Case(op, arrays, kwargs, positional=("x", "boxes", "offset"), grad_inputs=("x", "offset"))


def _dynopool_queries(length: int, alpha: float) -> numpy.ndarray:
    """DynOPool's query coordinates along one axis: ``(i + 1/4 + a/2) * L / O - 1/2`` (DYNOPOOL.md)."""
    out = max(1, int(numpy.round(length / alpha)))
    phase = (numpy.arange(out)[:, None] + 0.25 + 0.5 * numpy.arange(2)[None, :]).ravel()
    return phase * (length / out) - 0.5


def _dynopool_alpha(rng) -> float:
    """A factor below 1 (enlarge) or above 1 (shrink), a multiple of 1/64 (exact in float16)."""
    value = rng.uniform(0.5, 0.95) if rng.random() < 0.4 else rng.uniform(1.05, 3.5)
    return float(numpy.round(value * 64) / 64)


def _dynopool(rng, op, space):
    """DynOPool with ``alpha`` as a (2,) array input in x's dtype, its gradient compared (the
    straight-through one) where it is defined.

    The output length ``round(L / alpha)`` must not sit near a rounding tie (L / alpha within 0.02 of a
    half-integer, where L / alpha computed in float16 and in float64 could round apart). Where a query point
    lies on a pixel coordinate (alpha = 2 on an even axis: max pooling), the value has a kink in
    alpha and its derivative is one-sided: such cases compare the gradient to x only.
    """
    N, C = _batch_channels(rng)
    for _ in range(1000):
        H, W = _ints(rng, 1, 8, 2)
        alpha = (_dynopool_alpha(rng), _dynopool_alpha(rng))
        ratios = (H / alpha[0], W / alpha[1])
        if all(abs(r - numpy.floor(r) - 0.5) > 0.02 for r in ratios):
            break
    dtype = numpy.dtype(_pick(rng, space["dtypes"]))
    queries = numpy.concatenate([_dynopool_queries(H, alpha[0]), _dynopool_queries(W, alpha[1])])
    smooth = _off_the_kinks(queries)
    arrays = {"x": smooth_values(rng, (N, C, H, W), dtype), "alpha": numpy.array(alpha, dtype=dtype)}
    kwargs = dict(aggregate=_pick(rng, ("max", "avg")))
    return Case(op, arrays, kwargs, positional=("x", "alpha"), grad_inputs=("x", "alpha") if smooth else ("x",))


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
    "stochastic_pool2d": _stochastic, "mixed_pool2d": _mixed, "gem_pool": _gem, "soft_pool2d": _soft, "lse_pool": _lse,
    "bilinear_pool": _bilinear, "conv2d": _conv2d, "deform_conv2d": _deform_conv2d, "spatial_pyramid_pool2d": _spatial_pyramid,
    "roi_align": _region, "roi_pool": _region, "ps_roi_align": _region, "ps_roi_pool": _region,
    "deform_roi_pool": _deform_roi_pool, "grid_sample": _grid_sample, "interpolate": _interpolate,
    "dynopool2d": _dynopool,
})

#: Classes an op cannot take whatever the framework, and why (:func:`poolref.cases.draw_case`
#: refuses them with this reason).
GLOBAL_UNBATCHED = "a global op reads (N, C, *spatial) of any rank: an unbatched input is ambiguous"
DYNOPOOL_TIES = ("equal pixels make equal query values only in exact arithmetic: between interpolated points a tie "
                 "is decided by rounding, which each implementation (and its dtype) does its own way (at alpha = 2, "
                 "where the query points are the pixels, tests/ops/test_dynopool.py holds the ties to max_pool2d's)")

REFUSED_CLASSES = {
    "deform_conv2d": {"unbatched": "torchvision.ops.deform_conv2d takes (N, C, H, W) input only, and so does poolref's"},
    "dynopool2d": {"ties": DYNOPOOL_TIES, "signed_zero": DYNOPOOL_TIES},
    "gem_pool": {"unbatched": GLOBAL_UNBATCHED},
    "lse_pool": {"unbatched": GLOBAL_UNBATCHED},
    "bilinear_pool": {
        "unbatched": GLOBAL_UNBATCHED,
        # the comparison's absolute tolerance scales with one magnitude s of the inputs, the
        # gradients' with 1; bilinear pooling has no such single degree
        "magnitude": "bilinear pooling is not homogeneous in x: its output has degree 2, 1 or 0 in x (B, its "
                     "signed square root, its L2 normalisation), eps enters the root and the norm's floor, and "
                     "its gradients have one degree less, so no single input magnitude sets the tolerances",
    },
}
