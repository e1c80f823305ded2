r"""Seeded case generation: valid calls of every op, drawn for every class of input.

The oracle (:mod:`poolref.oracle`) checks frameworks on these cases, and
:func:`poolref.testing.strategies.oracle_cases` hands the same cases to a user's hypothesis tests;
neither of the two imports the other.

A framework can be right on smooth random numbers and wrong on everything that matters: a tie, a
NaN, a window of only -inf, float16, an unbatched or non-contiguous input, an empty batch, a value
of 1e-30. So the cases of each op are drawn *per input class* (:data:`INPUT_CLASSES`), in turn: the
first case is of finite values, the second holds NaN, the third ties, and so on round the classes
the op and the framework can take, so that twenty cases of an op cover every class at least once.
A class that the framework cannot express for the op (float16 where it has no kernel, an unbatched
input where it wants a batch) or that poolref refuses (integer input to an average) is not drawn,
and the report says why.

A case is drawn from a ``numpy.random.Generator`` seeded with ``(seed, op)``, so ``poolref check
--seed S`` reproduces a run exactly, and from a *space* of options that each adapter declares for
each framework op (which paddings, whether ceil mode exists, which dtypes, ...; see
:func:`draw_case`). The op's configuration comes from its generator
(:mod:`poolref.cases.generators`); the class is applied to its arrays here.

>>> case = generate_cases("avg_pool2d", 2, seed=0)[1]
>>> case.op, case.input_class, bool(numpy.isnan(case.x).any())
('avg_pool2d', 'nan', True)
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy

from .case import VIEWS, Case, View, Window, apply_view, make_view, materialise, window_of, with_indices
from .generators import CONVENTION_SPACES, GENERATORS, LINEAR_MODE, REFUSED_CLASSES, WINDOWED_DEFAULTS, distinct_values, smooth_values
from .worked import WORKED, worked_examples

__all__ = [
    "Case", "Window", "View", "VIEWS", "OPS", "PUBLIC_OPS", "WORKED", "INPUT_CLASSES", "CLASS_LABELS", "ClassNotApplicable",
    "Plan", "distinct_values", "smooth_values", "draw_case", "generate_cases", "generate_plan", "worked_examples",
    "with_indices", "window_of", "apply_view", "make_view", "materialise", "MAX_TYPE_OPS", "CONVENTION_SPACES",
    "LINEAR_MODE", "WINDOWED_DEFAULTS", "VALUE_ARRAYS", "gradient_scale",
]

#: Every op the oracle can draw cases for, in the order of the API.
OPS = tuple(
    [f"{kind}_pool{n}d" for kind in ("max", "avg", "lp") for n in (1, 2, 3)]
    + [f"max_unpool{n}d" for n in (1, 2, 3)]
    + [f"adaptive_{kind}_pool{n}d" for kind in ("avg", "max") for n in (1, 2, 3)]
    + ["global_avg_pool", "global_max_pool", "global_lp_pool", "fractional_max_pool2d", "fractional_max_pool3d",
       "stochastic_pool2d", "mixed_pool2d", "gem_pool", "soft_pool2d", "lse_pool", "bilinear_pool", "conv2d",
       "deform_conv2d", "blur_pool2d", "max_blur_pool2d", "spatial_pyramid_pool2d", "roi_pool", "roi_align", "ps_roi_pool", "ps_roi_align", "deform_roi_pool",
       "grid_sample", "interpolate", "dynopool2d"]
)
assert set(OPS) == set(GENERATORS)


def _public_ops() -> tuple:
    from ..ops import __all__ as names

    return tuple(name for name in names if name not in NOT_OPS)


#: Public names of poolref.ops that are not ops (helpers).
NOT_OPS = ("dynopool_output_size",)
#: Every public op, in the order of the API: each is a row of every framework's report.
PUBLIC_OPS = _public_ops()

#: Ops whose output is one of the input's elements: their zeros must keep their sign (the first of
#: tied -0.0 and +0.0 wins), compared exactly.
MAX_TYPE_OPS = tuple(op for op in OPS if op.startswith(("max_pool", "adaptive_max", "fractional_max"))) + (
    "global_max_pool", "roi_pool", "ps_roi_pool")

#: The classes of input, in the order the cases of an op go round them, with what each draws.
INPUT_CLASSES = {
    "finite": "finite values of order one (distinct, a quarter apart, for max-type ops)",
    "nan": "NaN at about one element in five, so over the cases at every position of a window",
    "ties": "ties and plateaus: every value from {-1, 0, 1, 2}, so maxima tie and gradients must pick one",
    "inf": "+inf and -inf at about one element in six, and a block of -inf wide enough that whole windows "
           "read only -inf",
    "float16": "float16 input (accumulated in float32 by poolref)",
    "unbatched": "an unbatched input, (C, *spatial)",
    "strided": "a non-contiguous view: the last two axes transposed, a negative stride, or every other "
               "element of a poisoned buffer",
    "signed_zero": "-0.0 and +0.0 (and a few +-1): which of two tied zeros wins shows in the sign",
    "magnitude": "values scaled by 10^e, |e| up to 30 within the dtype's range (the tolerance's absolute "
                 "part scales with them)",
    "empty": "an empty batch (N = 0), or no boxes (K = 0) for region ops",
    "integer": "integer input (int64, int32, uint8, ...) where the op takes it",
    "nonfinite_gradient": "NaN and +-inf in the upstream gradient (cotangent)",
    "scale_factor": "interpolate through scale_factor, recompute_scale_factor None or False",
    "recompute_scale_factor": "interpolate through scale_factor with recompute_scale_factor=True",
}
#: Column headings of the report's per-class table.
CLASS_LABELS = {
    "worked": "wrk", "finite": "fin", "nan": "nan", "ties": "tie", "inf": "inf", "float16": "f16", "unbatched": "unb",
    "strided": "view", "signed_zero": "+-0", "magnitude": "mag", "empty": "emp", "integer": "int",
    "nonfinite_gradient": "dinf", "scale_factor": "sf", "recompute_scale_factor": "rsf",
}
INTERPOLATE_ONLY = ("scale_factor", "recompute_scale_factor")
#: Arrays whose first axis is the batch (dropped when unbatched, emptied for an empty batch); an
#: ``offset`` is per image too where the case has no boxes (deformable convolution).
BATCH_ARRAYS = ("x", "indices", "random_samples", "grid", "second", "mask")
#: Arrays whose first axis runs over the boxes of a region op.
BOX_ARRAYS = ("boxes", "offset")
#: Arrays whose values the classes replace; the others (grids, boxes, samples, weights) keep theirs.
VALUE_ARRAYS = ("x", "second")
#: Arrays added to the output (a convolution's bias): their gradient sums upstream entries only.
ADDITIVE_ARRAYS = ("bias",)
ATTEMPTS = 40  # draws per class before it is declared impossible for the op and framework


def gradient_scale(case: Case, name: str) -> float:
    """The magnitude of the gradient to input ``name``, which scales the comparison's absolute tolerance.

    The upstream gradient is of order one. A value array is scaled by the case's magnitude ``s``
    together with the weights it meets, so the gradient to it is of order one; an array added to the
    output (a bias) gets a sum of upstream entries, of order one too; every other input (a weight, a
    grid, an exponent) meets the values in a product, so its gradient is of order ``s``.

    >>> case = Case("conv2d", {}, {}, scale=1e-22)
    >>> gradient_scale(case, "x"), gradient_scale(case, "bias"), gradient_scale(case, "weight")
    (1.0, 1.0, 1e-22)
    """
    return 1.0 if name in VALUE_ARRAYS + ADDITIVE_ARRAYS else case.scale


class ClassNotApplicable(ValueError):
    """A class of input that the op (or the framework's space) cannot take; the message says why."""


class Redraw(ValueError):
    """This draw cannot show its class (a view of an array too small to be strided): draw again."""


class Plan(NamedTuple):
    """The cases of one op and framework: ``cases``, how many of each class, and why others are missing."""

    cases: list
    counts: dict  # class -> number of cases
    refused: dict  # class -> the reason it has none


def _pick(rng, choices):
    return choices[int(rng.integers(len(choices)))]


# --------------------------------------------------------------------------------------------------
# The classes, applied to a case of finite values
# --------------------------------------------------------------------------------------------------
#: Ops that take non-negative input only (stochastic pooling's probabilities are a / sum(a)).
NONNEGATIVE_OPS = ("stochastic_pool2d",)


def _positive_only(case: Case, space: dict) -> bool:
    """Whether the op, or the framework's formula, wants positive input: PyTorch's Lp pooling has no
    absolute value (the generators draw positive values for it), stochastic pooling refuses negatives."""
    if case.op.startswith(("lp_pool", "global_lp_pool")):
        positive = space.get("positive")
        return case.kwargs.get("convention", "torch") == "torch" if positive is None else bool(positive)
    return case.op in NONNEGATIVE_OPS


def _sprinkle(rng, shape, fraction):
    """A mask with about ``fraction`` of its elements set, and at least one."""
    mask = rng.random(shape) < fraction
    if mask.size and not mask.any():
        mask.flat[int(rng.integers(mask.size))] = True
    return mask


def _minus_inf_block(rng, x, n):
    """A block over at least half of every spatial axis, set to -inf: whole windows of only -inf."""
    block = [slice(None)] * (x.ndim - n)
    for L in x.shape[x.ndim - n:]:
        length = int(rng.integers((L + 1) // 2, L + 1))
        start = int(rng.integers(0, L - length + 1))
        block.append(slice(start, start + length))
    x[tuple(block)] = -numpy.inf


def _power(case: Case) -> float:
    """The degree of the op's polynomial in x (Lp and GeM raise to p): magnitudes must survive it."""
    p = case.kwargs.get("norm_type", case.kwargs.get("p", 1.0))
    return max(1.0, float(p)) if isinstance(p, (int, float)) else 1.0


def _exponent_limit(dtype, power: float) -> int:
    """The largest |e| such that (10^e)^power stays a normal number of ``dtype`` (at most 30)."""
    info = numpy.finfo(dtype)
    return int(min(30, numpy.floor(min(numpy.log10(info.max), -numpy.log10(info.tiny)) / power) - 1))


def _spatial_ndim(case: Case) -> int:
    return case.x.ndim - (2 if case.batched else 1)


def _replace_values(case: Case, make) -> Case:
    arrays = dict(case.arrays)
    for name in VALUE_ARRAYS:
        if name in arrays and arrays[name].dtype.kind == "f":
            arrays[name] = make(arrays[name])
    return case.replace(arrays=arrays)


def _apply_class(rng, case: Case, input_class: str, space: dict, occurrence: int = 0) -> Case:
    """``case`` (finite values) turned into a case of ``input_class`` (the ``occurrence``-th of its class)."""
    positive = _positive_only(case, space)
    case = case.replace(input_class=input_class)
    if input_class in ("finite", "float16", "nonfinite_gradient", "scale_factor", "recompute_scale_factor"):
        return case  # drawn as such by the generator (dtype, keywords); the gradient's class is the engine's
    if input_class == "ties":
        choices = numpy.array([1.0, 2.0] if positive else [-1.0, 0.0, 1.0, 2.0])
        return _replace_values(case, lambda a: rng.choice(choices, size=a.shape).astype(a.dtype))
    if input_class == "nan":
        def make(a):
            a = a.copy()
            a[_sprinkle(rng, a.shape, 0.2)] = numpy.nan
            return a
        return _replace_values(case, make)
    if input_class == "inf":
        def make(a):
            a = a.copy()
            if not positive and a.ndim:
                _minus_inf_block(rng, a, _spatial_ndim(case))
            mask = _sprinkle(rng, a.shape, 0.15)
            signs = numpy.ones(a.shape) if positive else rng.choice([-1.0, 1.0], size=a.shape)
            signs.flat[numpy.flatnonzero(mask)[0]] = 1.0  # at least one +inf, whatever the block took
            a[mask] = (signs * numpy.inf)[mask]
            return a
        return _replace_values(case, make)
    if input_class == "signed_zero":
        choices = numpy.array([-0.0, 0.0, 1.0] if positive else [-0.0, 0.0, -0.0, 0.0, -1.0, 1.0])
        return _replace_values(case, lambda a: rng.choice(choices, size=a.shape).astype(a.dtype))
    if input_class == "magnitude":
        limit = _exponent_limit(case.dtype, _power(case))
        sign = -1 if occurrence % 2 == 0 else 1  # tiny values first, then huge ones: both in two cases
        exponent = sign * int(rng.integers(max(1, limit // 2), limit + 1))
        factor = 10.0 ** exponent
        case = _replace_values(case, lambda a: (a.astype(numpy.float64) * factor).astype(a.dtype))
        if case.op == "gem_pool":  # GeM clamps at eps: its outputs are of order max(10^e, eps)
            return case.replace(scale=max(factor, float(case.kwargs.get("eps", 1e-6))))
        return case.replace(scale=factor)
    if input_class == "integer":
        integer = numpy.dtype(_pick(rng, space["integer_dtypes"]))
        low, high = (0, 100) if integer.kind == "u" else (-50, 50)
        arrays = dict(case.arrays)
        arrays["x"] = rng.integers(low, high, size=case.x.shape).astype(integer)
        return case.replace(arrays=arrays, grad_inputs=tuple(n for n in case.grad_inputs if n != "x"))
    if input_class == "unbatched":
        arrays = {name: (a[0] if name in BATCH_ARRAYS else a) for name, a in case.arrays.items()}
        return case.replace(arrays=arrays)
    if input_class == "empty":
        region = "boxes" in case.arrays
        aligned = BOX_ARRAYS if region else BATCH_ARRAYS + ("offset",)
        arrays = {name: (a[:0] if name in aligned else a) for name, a in case.arrays.items()}
        return case.replace(arrays=arrays)
    if input_class == "strided":
        for kind in rng.permutation(list(VIEWS)):
            view, base = make_view(case.x, str(kind))
            if not view.flags.c_contiguous:  # along axes of length 1 every view is contiguous
                return case.replace(arrays={**case.arrays, "x": view}, views={"x": (str(kind), base)})
        raise Redraw("no axis long enough for a non-contiguous view")
    raise ValueError(f"unknown input class {input_class!r}")


def _scale_factor_kwargs(rng, case: Case, recompute: bool) -> dict:
    """``interpolate`` keywords with ``scale_factor`` in place of ``size``: factors with a fractional
    part, so that the scale the coordinates use (1/factor, or in/out when recomputed) matters: at
    least one axis has ``L * factor`` not an integer, and the mode reads coordinates (not "area",
    whose bins ignore the scale)."""
    kwargs = {k: v for k, v in case.kwargs.items() if k != "size"}
    if kwargs["mode"] == "area":
        kwargs["mode"] = _pick(rng, ("nearest", "nearest-exact", LINEAR_MODE[case.x.ndim - 2]))
    if "align_corners" in kwargs or kwargs["mode"] in LINEAR_MODE.values():
        kwargs["align_corners"] = False  # align_corners=True maps by (L-1)/(O-1): no scale to use
    lengths = case.x.shape[2:]
    factors = []
    for L in lengths:
        while True:
            factor = float(_pick(rng, (0.3, 0.45, 0.7, 1.3, 1.7, 2.5)))
            if int(numpy.floor(L * factor)) >= 1:
                break
        factors.append(factor)
    if all(float(L * f).is_integer() for L, f in zip(lengths, factors)):  # e.g. L = 10, factor 0.3
        factors[0] = 1.7 if not float(lengths[0] * 1.7).is_integer() else 1.3
    kwargs["scale_factor"] = factors[0] if len(factors) == 1 else tuple(factors)
    if recompute:
        kwargs["recompute_scale_factor"] = True
    elif rng.random() < 0.5:
        kwargs["recompute_scale_factor"] = False
    return kwargs


def classes_of(op: str, space: Optional[dict] = None) -> tuple:
    """The classes an op's cases go round, in order (the interpolate-only ones for interpolate)."""
    space = space or {}
    classes = [c for c in INPUT_CLASSES if op == "interpolate" or c not in INTERPOLATE_ONLY]
    if space.get("gradients") is False:
        classes.remove("nonfinite_gradient")
    return tuple(c for c in space.get("classes", classes) if c in classes)


def draw_case(rng: numpy.random.Generator, op: str, space: dict | None = None, input_class: str = "finite",
              occurrence: int = 0) -> Case:
    """Draw one random :class:`Case` of ``op`` and ``input_class`` from ``space``; ``occurrence``
    counts the cases of the class drawn before (the magnitude class alternates tiny and huge).

    ``space`` keys (all optional): ``dtypes`` (float dtypes the framework takes; default float64
    only; float16 is drawn only by the ``"float16"`` class, and only where listed),
    ``integer_dtypes`` (for the ``"integer"`` class; default none), ``unbatched`` (whether the
    framework op takes unbatched input; default False), ``empty`` (whether it takes an empty batch;
    default True), ``gradients``; for windowed ops ``convention``, ``padding`` (kinds among
    ``"none"``, ``"symmetric"``, ``"asymmetric"``, ``"same"``, ``"same_lower"``, ``"valid"``),
    ``ceil_mode``, ``dilation``, ``count_include_pad`` (choices), ``divisor_override``,
    ``norm_types``, ``positive``, ``max_kernel``, ``max_stride``, ``input_at_least_kernel``; for
    the others ``ndims``, ``modes``, ``padding_modes``, ``align_corners``, ``integer_ratio``,
    ``sampling_ratios``, ``aligned``, ``ordered_boxes``, ``scales``, ``convention``,
    ``output_size``, ``grid_gradient``, ``ratio_two``, ``groups`` (conv2d: False for none); ``generator`` (a generator of the
    framework's own, ``gen(rng, op, space) -> Case``, in place of the op's); ``conventions``
    (windowed ops: draw the convention too, with its paddings,
    :data:`~poolref.cases.generators.CONVENTION_SPACES`).

    Raises :class:`ClassNotApplicable` where the space rules the class out.
    """
    if op not in GENERATORS:
        raise ValueError(f"check: unknown op {op!r}; choose from {OPS}")
    full = dict(WINDOWED_DEFAULTS, dtypes=(numpy.float64,), integer_dtypes=(), unbatched=False, empty=True)
    full.update(space or {})
    floats = tuple(numpy.dtype(d) for d in full["dtypes"])
    if input_class == "float16":
        if numpy.dtype(numpy.float16) not in floats:
            raise ClassNotApplicable("no float16 kernel (dtypes: " + ", ".join(d.name for d in floats) + ")")
        full["dtypes"] = (numpy.float16,)
    else:
        full["dtypes"] = tuple(d for d in floats if d != numpy.float16) or floats
    if input_class == "integer" and not full["integer_dtypes"]:
        raise ClassNotApplicable("no integer input")
    if input_class == "unbatched" and full["unbatched"] is not True:
        raise ClassNotApplicable(full["unbatched"] if isinstance(full["unbatched"], str) else "batched input only")
    if input_class == "unbatched" and op.startswith("global_"):
        raise ClassNotApplicable("global pooling reads (N, C, *spatial) of any rank: an unbatched input is ambiguous")
    if input_class == "empty" and full["empty"] is not True:
        raise ClassNotApplicable(full["empty"] if isinstance(full["empty"], str) else "no empty batch")
    if input_class in INTERPOLATE_ONLY and op != "interpolate":
        raise ClassNotApplicable("interpolate only")
    if input_class in REFUSED_CLASSES.get(op, {}):
        raise ClassNotApplicable(REFUSED_CLASSES[op][input_class])
    case = full.get("generator", GENERATORS[op])(rng, op, full)
    if input_class in INTERPOLATE_ONLY:
        case = case.replace(kwargs=_scale_factor_kwargs(rng, case, input_class == "recompute_scale_factor"))
    return _apply_class(rng, case, input_class, full, occurrence)


def generate_plan(op: str, count: int, seed: int, space: dict | None = None, accept=None) -> Plan:
    """``count`` reproducible random cases of ``op``, going round its input classes.

    The seed is mixed with the op's name. ``accept(case)`` returns None for a case the framework
    (and poolref) can run, or the reason it cannot; such cases are drawn again, and a class with no
    acceptable case in :data:`ATTEMPTS` draws is dropped from the round with the last reason.
    """
    rng = numpy.random.default_rng([seed, sum(map(ord, op))])
    active = list(classes_of(op, space))
    cases, counts, refused = [], {}, {}
    turn = 0
    while len(cases) < count and active:
        input_class = active[turn % len(active)]
        chosen, reason = None, ""
        for _ in range(ATTEMPTS):
            try:
                case = draw_case(rng, op, space, input_class, counts.get(input_class, 0))
            except ClassNotApplicable as error:
                reason = str(error)
                break
            except Redraw as error:
                reason = str(error)
                continue
            reason = accept(case) if accept is not None else None
            if not reason:
                chosen = case
                break
        if chosen is None:
            refused[input_class] = reason or "no case drawn"
            active.remove(input_class)
            continue
        cases.append(chosen)
        counts[input_class] = counts.get(input_class, 0) + 1
        turn += 1
    return Plan(cases, counts, refused)


def generate_cases(op: str, count: int, seed: int, space: dict | None = None, accept=None) -> list[Case]:
    """The cases of :func:`generate_plan` alone."""
    return generate_plan(op, count, seed, space, accept).cases
