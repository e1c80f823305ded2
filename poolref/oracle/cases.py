r"""Seeded case generation for the oracle: valid configurations and inputs for every op it checks.

A :class:`Case` is one poolref call written down as data: the op's name, its array arguments and its
other keyword arguments, with the convention that models the framework under test (``"onnx"``,
``"tensorflow"``) already among them. A case is drawn from a ``numpy.random.Generator`` seeded with
``(seed, op)``, so ``poolref check --seed S`` reproduces a run exactly, and from a *space* of options
that each adapter declares for each framework op (which paddings, whether ceil mode exists, which
dtypes, ...; see :func:`draw_case` for the keys). The draw is by rejection: a configuration that
poolref's geometry refuses under the case's convention is drawn again.

Inputs are chosen so that a comparison tests semantics and not luck:

* max-type ops get distinct values, a quarter apart (:func:`distinct_values`), so that rounding can
  never flip an argmax and a gradient has exactly one place to go;
* PyTorch's Lp pooling gets positive values (its formula has no absolute value);
* the worked examples of SEMANTICS.md (:data:`WORKED`) are checked on every run, ahead of the
  random cases, wherever the framework can express them: ties, NaN, ceil-mode windows, overlapping
  adaptive bins, the RoI Align pixel model.

>>> case = generate_cases("avg_pool2d", 1, seed=0)[0]
>>> case.op, sorted(case.arrays), case.positional
('avg_pool2d', ['x'], ('x',))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._geometry import as_int_tuple, pool_geometry

__all__ = [
    "Case",
    "OPS",
    "WORKED",
    "distinct_values",
    "draw_case",
    "generate_cases",
    "worked_examples",
    "with_indices",
    "window_of",
]


class Case(NamedTuple):
    """One poolref call as data: ``getattr(poolref, op)(*positional arrays, **array kwargs, **kwargs)``.

    ``arrays`` maps argument names to numpy arrays; those named in ``positional`` are passed in that
    order, the others by keyword (``random_samples``). ``grad_inputs`` names the arrays whose
    gradients are compared. ``label`` names a worked example ("" for a random case).
    """

    op: str
    arrays: dict
    kwargs: dict
    positional: tuple = ("x",)
    grad_inputs: tuple = ("x",)
    label: str = ""

    @property
    def x(self) -> numpy.ndarray:
        return self.arrays["x"]

    @property
    def dtype(self) -> numpy.dtype:
        return self.arrays["x"].dtype

    def replace(self, **changes) -> "Case":
        return self._replace(**changes)

    def describe(self) -> str:
        """A one-line summary: shapes and keyword arguments."""
        shapes = ", ".join(f"{name}.shape={tuple(a.shape)}" for name, a in self.arrays.items())
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        label = f"[{self.label}] " if self.label else ""
        return f"{label}{shapes}, {kwargs} ({self.dtype})"


class Window(NamedTuple):
    n: int  # spatial dims
    kernel: tuple
    stride: tuple  # the kernel where the case gives no stride, as every framework defaults
    dilation: tuple


def window_of(case: Case) -> Window:
    """A windowed case's kernel, stride and dilation as per-axis tuples, for adapters to translate."""
    kw, n = case.kwargs, case.x.ndim - 2
    kernel = as_int_tuple(kw["kernel_size"], n, "kernel_size", case.op)
    stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], n, "stride", case.op)
    dilation = as_int_tuple(kw.get("dilation", 1), n, "dilation", case.op)
    return Window(n, kernel, stride, dilation)


def with_indices(op: str) -> bool:
    """Whether ``op`` is called with ``return_indices=True`` by the oracle (its indices are compared)."""
    return op.startswith(("max_pool", "adaptive_max_pool", "fractional_max_pool"))


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def distinct_values(rng, shape, dtype=numpy.float64, spacing: float = 0.25) -> numpy.ndarray:
    """A random permutation of ``spacing * (k - size/2)``: distinct values, exact in float16/32/64."""
    size = math.prod(shape)
    return rng.permutation((numpy.arange(size) - size // 2) * spacing).reshape(shape).astype(dtype)


def _smooth(rng, shape, dtype, low=-2.0, high=2.0) -> numpy.ndarray:
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
        return tuple((int(rng.integers(0, s)), int(rng.integers(0, s))) for s in spans)
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
        x = _smooth(rng, full, dtype, *((0.5, 2.0) if positive else (-2.0, 2.0)))
    else:
        x = _smooth(rng, full, dtype)
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
    x = distinct_values(rng, full, dtype) if "max" in op else _smooth(rng, full, dtype)
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
        x = _smooth(rng, full, dtype, *((0.5, 2.0) if convention == "torch" else (-2.0, 2.0)))
        kwargs["norm_type"] = float(_pick(rng, space.get("norm_types", (1.0, 2.0, 3.0, 1.5))))
        if convention != "torch":
            kwargs["convention"] = convention
    else:
        x = _smooth(rng, full, dtype)
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
    x = _smooth(rng, (N, C, H, W), dtype)
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
    return Case(op, {"x": _smooth(rng, full, dtype)}, kwargs)


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
    return Case(op, {"x": _smooth(rng, (N, C, H, W), dtype), "boxes": boxes}, kwargs, positional=("x", "boxes"))


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
    x = distinct_values(rng, (N, C, H, W), dtype) if distinct else _smooth(rng, (N, C, H, W), dtype)
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
        "x": _smooth(rng, (N, Cin, H, W), dtype),
        "weight": _smooth(rng, (Cout, Cin) + kernel, dtype, -1.0, 1.0),
        "bias": _smooth(rng, (Cout,), dtype, -1.0, 1.0),
    }
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    names = ("x", "weight", "bias")
    return Case(op, arrays, kwargs, positional=names, grad_inputs=names)


# --------------------------------------------------------------------------------------------------
# The ops and their generators
# --------------------------------------------------------------------------------------------------
_GENERATORS = {}
for _n in (1, 2, 3):
    for _kind in ("max", "avg", "lp"):
        _GENERATORS[f"{_kind}_pool{_n}d"] = _windowed
    _GENERATORS[f"max_unpool{_n}d"] = _unpool
    _GENERATORS[f"adaptive_avg_pool{_n}d"] = _adaptive
    _GENERATORS[f"adaptive_max_pool{_n}d"] = _adaptive
_GENERATORS.update({
    "global_avg_pool": _global, "global_max_pool": _global, "global_lp_pool": _global,
    "fractional_max_pool2d": _fractional, "fractional_max_pool3d": _fractional,
    "grid_sample": _grid_sample, "interpolate": _interpolate,
    "roi_align": _region, "roi_pool": _region, "ps_roi_align": _region, "ps_roi_pool": _region,
    "conv2d": _conv2d,
})

#: Every op the oracle can draw cases for, family by family.
OPS = tuple(
    [f"{kind}_pool{n}d" for kind in ("max", "avg", "lp") for n in (1, 2, 3)]
    + [f"max_unpool{n}d" for n in (1, 2, 3)]
    + [f"adaptive_{kind}_pool{n}d" for kind in ("avg", "max") for n in (1, 2, 3)]
    + ["global_avg_pool", "global_max_pool", "global_lp_pool", "fractional_max_pool2d", "fractional_max_pool3d",
       "grid_sample", "interpolate", "roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool", "conv2d"]
)
assert set(OPS) == set(_GENERATORS)


def draw_case(rng: numpy.random.Generator, op: str, space: dict | None = None) -> Case:
    """Draw one random :class:`Case` of ``op`` from ``space``.

    ``space`` keys (all optional): ``dtypes`` (default float64 only); for windowed ops ``convention``,
    ``padding`` (kinds among ``"none"``, ``"symmetric"``, ``"asymmetric"``, ``"same"``,
    ``"same_lower"``, ``"valid"``), ``ceil_mode``, ``dilation``, ``count_include_pad`` (choices),
    ``divisor_override``, ``norm_types``, ``positive``, ``max_kernel``, ``max_stride``,
    ``input_at_least_kernel``; for the others ``ndims``, ``modes``, ``padding_modes``,
    ``align_corners``, ``integer_ratio``, ``sampling_ratios``, ``aligned``, ``ordered_boxes``,
    ``scales``, ``convention``, ``output_size``, ``grid_gradient``, ``crop_and_resize``, ``ratio_two``;
    ``conventions`` (windowed ops: draw the convention too, with its paddings, :data:`CONVENTION_SPACES`).
    """
    if op not in _GENERATORS:
        raise ValueError(f"check: unknown op {op!r}; choose from {OPS}")
    full = dict(WINDOWED_DEFAULTS, dtypes=(numpy.float64,))
    full.update(space or {})
    return _GENERATORS[op](rng, op, full)


def generate_cases(op: str, count: int, seed: int, space: dict | None = None, accept=None) -> list[Case]:
    """``count`` reproducible random cases of ``op`` (the seed is mixed with the op's name).

    ``accept(case)`` returns None for a case the framework can run, or the reason it cannot; such
    cases are drawn again (a bounded number of times).
    """
    rng = numpy.random.default_rng([seed, sum(map(ord, op))])
    cases = []
    for _ in range(count):
        for _attempt in range(200):
            case = draw_case(rng, op, space)
            if accept is None or accept(case) is None:
                cases.append(case)
                break
    return cases


# --------------------------------------------------------------------------------------------------
# The worked examples of SEMANTICS.md
# --------------------------------------------------------------------------------------------------
def _plane(values, dtype=numpy.float64):
    """A (1, 1, *shape) input from nested lists."""
    a = numpy.asarray(values, dtype=dtype)
    return a.reshape((1, 1) + a.shape)


RAMP_4x4 = numpy.arange(1.0, 17.0).reshape(1, 1, 4, 4)
RAMP_10x10 = numpy.arange(100.0).reshape(1, 1, 10, 10)
NAN = float("nan")

#: The worked examples of SEMANTICS.md, each with the section it illustrates. They carry no
#: convention: an adapter adds its own, and skips those its framework cannot express.
WORKED = (
    Case("avg_pool2d", {"x": RAMP_4x4}, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
         label="SEMANTICS 3: ceil-mode average, last window divides by its in-padding count"),
    Case("avg_pool1d", {"x": _plane([1, 2, 3, 4, 5])}, dict(kernel_size=2, stride=2, ceil_mode=True, count_include_pad=True),
         label="SEMANTICS 3: ceil-mode overhang is not counted"),
    Case("max_pool1d", {"x": _plane([1, 2, 3, 4, 5])}, dict(kernel_size=2, stride=3, padding=1, ceil_mode=True, return_indices=True),
         label="SEMANTICS 1: no window starts in the end padding"),
    Case("lp_pool1d", {"x": _plane([1, 2, 3, 4, 5])}, dict(norm_type=1.0, kernel_size=2, stride=2, ceil_mode=True),
         label="SEMANTICS 4: Lp pooling of a partial ceil-mode window"),
    Case("lp_pool1d", {"x": _plane([-1, -2, -3, 1, 2, 3])}, dict(norm_type=3.0, kernel_size=1),
         label="SEMANTICS 4: Lp pooling of negative values"),
    Case("max_pool2d", {"x": _plane([[1, 3, 3], [3, 2, 0]])}, dict(kernel_size=(2, 3), return_indices=True),
         label="SEMANTICS 2: ties go to the first in scan order"),
    Case("max_pool2d", {"x": _plane([[1, NAN, 3], [NAN, 2, 0]])}, dict(kernel_size=(2, 3), return_indices=True),
         label="SEMANTICS 2: NaN propagates, the last NaN's index"),
    Case("adaptive_avg_pool1d", {"x": _plane(numpy.arange(8.0))}, dict(output_size=6),
         label="SEMANTICS 5: adaptive bins 8 -> 6 overlap"),
    Case("adaptive_max_pool1d", {"x": _plane([3, 1, 4, 1.5, 5, 9, 2, 6])}, dict(output_size=6, return_indices=True),
         label="SEMANTICS 5: adaptive max over overlapping bins"),
    Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
         dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=True), positional=("x", "boxes"),
         label="SEMANTICS 8: RoI Align, aligned=True (half-pixel)"),
    Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
         dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=False), positional=("x", "boxes"),
         label="SEMANTICS 8: RoI Align, aligned=False"),
    Case("interpolate", {"x": _plane([0.0, 1, 2, 3, 4])}, dict(size=3, mode="nearest"),
         label="SEMANTICS 9: nearest reads floor(dst * in/out)"),
    Case("interpolate", {"x": _plane([0.0, 1, 2, 3, 4])}, dict(size=3, mode="nearest-exact"),
         label="SEMANTICS 9: nearest-exact reads floor((dst + 1/2) * in/out)"),
)


def worked_examples(op: str) -> list[Case]:
    """The worked examples of ``op`` (see :data:`WORKED`)."""
    return [case for case in WORKED if case.op == op]
