r"""Generators of the windowed ops: max, average and Lp pooling, unpooling, adaptive, global,
fractional, stochastic, mixed and spatial pyramid pooling, blur and max-blur pooling.

Each ``gen(rng, op, space) -> Case`` draws a valid call of its op (see :mod:`poolref.cases.generators`).
PyTorch's Lp pooling gets positive values (its formula has no absolute value).
"""

from __future__ import annotations

import numpy

from .._geometry import pool_geometry
from .case import Case
from .values import distinct_values, draw_batch_channels, draw_ints, draw_unpadded_window, pick, smooth_values

__all__ = ["WINDOWED_DEFAULTS", "CONVENTION_SPACES", "MIXED_LAMBDAS", "GENERATORS"]


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
        convention = pick(rng, allowed)
        space = dict(space, convention=convention, **CONVENTION_SPACES[convention])
    convention = space["convention"]
    use_dilation = space["dilation"] if space["dilation"] is not None else kind == "max"
    max_size = 8 if n < 3 else 5
    for _ in range(1000):
        kernel = draw_ints(rng, 1, space["max_kernel"], n)
        stride = draw_ints(rng, 1, space["max_stride"], n)
        dilation = draw_ints(rng, 1, 2, n) if use_dilation and rng.random() < 0.5 else (1,) * n
        padding = _draw_padding(rng, pick(rng, space["padding"]), kernel, dilation)
        ceil_mode = bool(space["ceil_mode"] and rng.random() < 0.5)
        shape = draw_ints(rng, 1, max_size, n)
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
        kwargs["norm_type"] = float(pick(rng, space["norm_types"]))
    kwargs.update(kernel_size=kernel, stride=stride)
    if padding != 0:
        kwargs["padding"] = padding
    if dilation != (1,) * n:
        kwargs["dilation"] = dilation
    kwargs["ceil_mode"] = ceil_mode
    if kind == "avg":
        kwargs["count_include_pad"] = bool(pick(rng, space["count_include_pad"]))
        allow_override = space["divisor_override"] if space["divisor_override"] is not None else n > 1
        if allow_override and rng.random() < 0.25:
            kwargs["divisor_override"] = int(rng.integers(1, 6))
    if kind == "max" and space["return_indices"]:
        kwargs["return_indices"] = True
    if convention != "torch":
        kwargs["convention"] = convention
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    if kind == "max":
        x = distinct_values(rng, full, dtype)
    elif kind == "lp":
        positive = space["positive"] if space["positive"] is not None else convention == "torch"
        x = smooth_values(rng, full, dtype, *((0.5, 2.0) if positive else (-2.0, 2.0)))
    else:
        x = smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, kwargs)


def _unpool(rng, op, space):
    """Values and indices of a max pooling whose windows do not overlap (so no index repeats)."""
    from .. import ops

    n = int(op[-2])
    max_size = 8 if n < 3 else 5
    for _ in range(1000):
        kernel = draw_ints(rng, 1, 3, n)
        stride = tuple(int(rng.integers(k, k + 2)) for k in kernel)  # stride >= kernel: unique indices
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = draw_ints(rng, 1, max_size, n)
        try:
            pool_geometry(shape, kernel, stride, padding, 1, False, "torch", op)
        except ValueError:
            continue
        break
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
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
    shape, out = draw_ints(rng, 1, max_size, n), draw_ints(rng, 1, max_size, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    x = distinct_values(rng, full, dtype) if "max" in op else smooth_values(rng, full, dtype)
    kwargs = dict(output_size=out)
    if "max" in op:
        kwargs["return_indices"] = True
    return Case(op, {"x": x}, kwargs)


def _global(rng, op, space):
    n = int(pick(rng, space.get("ndims", (1, 2, 3))))
    shape = draw_ints(rng, 1, 7 if n < 3 else 4, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    kwargs = {}
    if op == "global_max_pool":
        x = distinct_values(rng, full, dtype)
    elif op == "global_lp_pool":
        convention = space.get("convention", "torch")
        x = smooth_values(rng, full, dtype, *((0.5, 2.0) if convention == "torch" else (-2.0, 2.0)))
        kwargs["norm_type"] = float(pick(rng, space.get("norm_types", (1.0, 2.0, 3.0, 1.5))))
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
        shape = tuple(2 * v for v in draw_ints(rng, 1, 4, n))
        full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
        dtype = numpy.dtype(pick(rng, space["dtypes"]))
        samples = rng.uniform(0, 1, size=full[:2] + (n,)).astype(dtype)
        kwargs = dict(kernel_size=(2,) * n, output_size=tuple(L // 2 for L in shape), return_indices=True)
        return Case(op, {"x": distinct_values(rng, full, dtype), "random_samples": samples}, kwargs)
    max_size = 9 if n < 3 else 6
    kernel = draw_ints(rng, 1, 3, n)
    # PyTorch requires output_size + kernel_size - 1 <= input size in 2-D, and < in 3-D
    strict = int(n == 3)
    shape = tuple(int(rng.integers(k + strict, max_size + 1)) for k in kernel)
    out = tuple(int(rng.integers(1, L - k + 2 - strict)) for L, k in zip(shape, kernel))
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    samples = rng.uniform(0, 1, size=full[:2] + (n,)).astype(dtype)
    kwargs = dict(kernel_size=kernel, output_size=out, return_indices=True)
    return Case(op, {"x": distinct_values(rng, full, dtype), "random_samples": samples}, kwargs)


def _stochastic(rng, op, space):
    """Inference (``training=False``: the expectation, deterministic) on positive values.

    Stochastic pooling takes finite, non-negative activations only. The finite draw is positive, so
    the classes keep it non-negative (ties from {1, 2}, zeros of both signs, +inf only, positive
    magnitudes); windows that sum to zero come from the signed-zero class.
    """
    kernel, stride, shape = draw_unpadded_window(rng)
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    x = smooth_values(rng, draw_batch_channels(rng) + shape, dtype, 0.25, 2.0)
    kwargs = dict(kernel_size=kernel, stride=stride, training=False)
    return Case(op, {"x": x}, kwargs)


#: Mixed pooling's weights of max pooling: both ends (exactly max and exactly average pooling) and between.
MIXED_LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _mixed(rng, op, space):
    """PyTorch's max and average pooling blended: symmetric padding of at most half the kernel."""
    for _ in range(1000):
        kernel = draw_ints(rng, 1, 3, 2)
        stride = None if rng.random() < 0.3 else draw_ints(rng, 1, 3, 2)
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = draw_ints(rng, 1, 7, 2)
        try:
            pool_geometry(shape, kernel, stride, padding, 1, False, "torch", op)
        except ValueError:
            continue
        break
    lam = float(pick(rng, MIXED_LAMBDAS)) if rng.random() < 0.6 else round(float(rng.uniform(0, 1)), 3)
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    x = distinct_values(rng, draw_batch_channels(rng) + shape, dtype)  # the max half: one winner per window
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, lam=lam)
    return Case(op, {"x": x}, kwargs)


def _sppnet_fits(length: int, n: int) -> bool:
    """He et al.'s windows (ceil(L/n), stride floor(L/n)) give exactly n windows along this axis."""
    return length >= n and length % n <= length // n


def _spatial_pyramid(rng, op, space):
    for _ in range(1000):
        levels = tuple(sorted(rng.choice([1, 2, 3, 4], size=int(rng.integers(1, 4)), replace=False).tolist()))
        if rng.random() < 0.3:
            levels = levels[::-1]  # the order given is the order of the output
        shape = draw_ints(rng, 1, 9, 2)
        binning = pick(rng, ("adaptive", "sppnet"))
        if binning == "adaptive" or all(_sppnet_fits(L, n) for L in shape for n in levels):
            break
    mode = pick(rng, ("max", "avg"))
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    full = draw_batch_channels(rng) + shape
    x = distinct_values(rng, full, dtype) if mode == "max" else smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, dict(levels=levels, mode=mode, binning=binning))


def _blur(rng, op, space):
    """kornia's blur pools: a square binomial kernel of 1 to 5 (Zhang's sizes; kornia's float16 kernel
    rounds its smallest weights from about 13 on), stride 1 to 3, for max-blur pooling a max pool of
    1 to 3 and distinct values (one argmax per window, so gradients have one place to go)."""
    kernel, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    kwargs = dict(kernel_size=kernel, stride=stride)
    smallest = 1
    if op == "max_blur_pool2d":
        smallest = int(rng.integers(1, 4))
        kwargs["max_pool_size"] = smallest
    shape = draw_ints(rng, smallest, 8, 2)
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    full = draw_batch_channels(rng) + shape
    x = distinct_values(rng, full, dtype) if op == "max_blur_pool2d" else smooth_values(rng, full, dtype)
    return Case(op, {"x": x}, kwargs)


# --------------------------------------------------------------------------------------------------
# The ops of this family and their generators
# --------------------------------------------------------------------------------------------------
GENERATORS = {"global_avg_pool": _global, "global_max_pool": _global, "global_lp_pool": _global,
              "fractional_max_pool2d": _fractional, "fractional_max_pool3d": _fractional,
              "stochastic_pool2d": _stochastic, "mixed_pool2d": _mixed, "spatial_pyramid_pool2d": _spatial_pyramid,
              "blur_pool2d": _blur, "max_blur_pool2d": _blur}
for _n in (1, 2, 3):
    for _kind in ("max", "avg", "lp"):
        GENERATORS[f"{_kind}_pool{_n}d"] = _windowed
    GENERATORS[f"max_unpool{_n}d"] = _unpool
    GENERATORS[f"adaptive_avg_pool{_n}d"] = _adaptive
    GENERATORS[f"adaptive_max_pool{_n}d"] = _adaptive
