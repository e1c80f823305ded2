r"""poolref's self-checks: every vectorised op against its plain-loop reference (values, indices and
gradients), finite-difference gradchecks, and the gradient-conservation laws. Needs no framework.

The cases are the oracle's own (:mod:`poolref.cases`), every input class of every op (NaN,
infinities, ties, signed zeros, float16, integers, unbatched, empty, strided views, extreme
magnitudes, non-finite upstream gradients), with the windowed ops drawn under all three conventions
(``torch``, ``onnx``, ``tensorflow``) and their paddings. For each case:

1. the shipped op and its loop reference (:mod:`poolref.reference`) must agree on the output, the
   indices and the gradient of ``sum(output * cotangent)`` to every differentiable input;
2. on the first finite float64 cases of each op, :func:`poolref.autograd.gradcheck` compares the
   hand-written backward with central differences (the inputs of max-type ops are distinct, a
   quarter apart, so no argmax flips under the step), to every differentiable input but DynOPool's
   ``alpha``, whose gradient is a straight-through surrogate (:data:`NO_FINITE_DIFFERENCES`);
3. on finite float64 cases, max-type ops must conserve gradient mass, ``sum(grad_x) == sum(cotangent)``, average pooling
   must hand on exactly ``sum(cotangent * valid / divisor)``, and blur and max-blur pooling the binomial weight each
   window keeps inside the input
   (:func:`poolref.testing.assert_conserves_gradient`).
"""

from __future__ import annotations

import math

import numpy

from .._geometry import as_int_tuple, geometry_of_keywords
from .._running_max import max_pool_rule
from ..autograd import GradcheckError, gradcheck
from ..reference import adaptive as adaptive_ref
from ..reference import blur as blur_ref
from ..reference import convolution as convolution_ref
from ..reference import deform_conv as deform_conv_ref
from ..reference import dynopool as dynopool_ref
from ..reference import learned as learned_ref
from ..reference import lp_pool as lp_pool_ref
from ..reference import region as region_ref
from ..reference import sampling as sampling_ref
from ..reference import stochastic as stochastic_ref
from ..reference import window as window_ref
from ..testing.laws import assert_conserves_gradient, avg_pool_window_mass, blur_pool_window_mass, max_pool_window_mass
from ..cases import BATCH_ARRAYS, MAX_TYPE_OPS, OPS, PUBLIC_OPS, Case, generate_plan, gradient_scale, with_indices, worked_examples
from ..cases.learned import conv_pads
from .compare import compare_arrays
from .engine import poolref_function, poolref_refusal, run_poolref
from .report import Failure, OpResult, Report

__all__ = ["self_check", "reference", "SELF_OPS", "DEFAULT_CASES", "NO_FINITE_DIFFERENCES"]

DEFAULT_CASES = 20
GRADCHECK_CASES = 2  # the finite-difference Jacobian is the expensive check: a few cases per op
#: The ops with a loop reference (all of :data:`~poolref.cases.OPS`).
SELF_OPS = OPS
#: Every dtype and layout: the self-checks hold poolref to its references on every input class
#: poolref takes (a class it refuses, such as integer input to an average, is not drawn).
EVERYTHING = dict(dtypes=("float64", "float32", "float16"), integer_dtypes=("int64", "int32", "int16", "int8", "uint8"),
                  unbatched=True, empty=True)
SPACES = {  # per op family: what the self-checks draw beyond the defaults
    "windowed": dict(conventions=("torch", "onnx", "tensorflow", "jax"), dilation=True, divisor_override=True),
    "roi_align": dict(modes=("avg",)),
    "interpolate": dict(conventions=("torch", "tensorflow", "jax"), antialias=(False, True)),
}
#: Inputs whose gradient is not the derivative of the forward, so that finite differences cannot check
#: it: DynOPool's output size round(L / alpha) is an integer, piecewise constant in alpha, and alpha
#: gets DynOPool's straight-through surrogate (docs/dynopool.rst) instead. It is held to the loop reference's
#: straight-through gradient (step 1), not to central differences (step 2).
NO_FINITE_DIFFERENCES = {"dynopool2d": ("alpha",)}
#: Classes on which the conservation laws hold as stated (finite input and upstream gradient).
LAW_CLASSES = ("finite", "ties", "signed_zero", "strided", "unbatched", "magnitude", "worked")


def _space(op: str) -> dict:
    if op.startswith(("max_pool", "avg_pool", "lp_pool")):
        return dict(EVERYTHING, **SPACES["windowed"])
    return dict(EVERYTHING, **SPACES.get(op, {}))


# --------------------------------------------------------------------------------------------------
# The loop references, called like the ops
# --------------------------------------------------------------------------------------------------
def _geometry(case: Case):
    """The case's windows as the loop references take them (kernel, stride, pads, dilation, ceil_mode)."""
    return geometry_of_keywords(case.x.shape[2 if case.batched else 1:], case.kwargs, case.op).loop_reference_arguments()


def _rois(case: Case):
    return case.arrays["boxes"].astype(numpy.float64)


def reference(case: Case, cotangent):
    """``(values, indices or None, {input: gradient})`` of ``case`` from the plain-loop references.

    The references take batched input: an unbatched case is run with a batch of one, and the batch
    axis dropped again.
    """
    if case.batched:
        return _reference(case, cotangent)
    arrays = {name: (a[None] if name in BATCH_ARRAYS else a) for name, a in case.arrays.items()}
    batched = case.replace(arrays=arrays, input_class="finite")
    values, indices, grads = _reference(batched, None if cotangent is None else cotangent[None])
    grads = {name: (g[0] if name in BATCH_ARRAYS else g) for name, g in grads.items()}
    return values[0], None if indices is None else indices[0], grads


def _reference(case: Case, cotangent):
    op, x, kw = case.op, case.arrays["x"], case.kwargs
    if op.startswith("max_pool"):
        rule = max_pool_rule(kw.get("convention", "torch"), with_indices=bool(kw.get("return_indices")))
        y, i = window_ref.max_pool_reference(x, *_geometry(case), rule=rule)
        return y, i, {"x": window_ref.max_pool_backward_reference(cotangent, i, x.shape)}
    if op.startswith("avg_pool"):
        # TensorFlow's averages never count padding
        extra = (kw.get("count_include_pad", True) and kw.get("convention") != "tensorflow", kw.get("divisor_override"))
        geometry = _geometry(case)
        y = window_ref.avg_pool_reference(x, *geometry, *extra)
        return y, None, {"x": window_ref.avg_pool_backward_reference(cotangent, x.shape, *geometry, *extra)}
    if op.startswith("lp_pool") or op == "global_lp_pool":
        p, convention = kw["norm_type"], kw.get("convention", "torch")
        if op == "global_lp_pool":
            n = x.ndim - 2
            geometry = (x.shape[2:], x.shape[2:], (0,) * n, (0,) * n, (1,) * n, False)
        else:
            geometry = _geometry(case)
        y = lp_pool_ref.lp_pool_reference(x, p, *geometry, convention)
        return y, None, {"x": lp_pool_ref.lp_pool_backward_reference(cotangent, x, p, *geometry, convention)}
    if op.startswith("max_unpool"):
        indices = case.arrays["indices"]
        out = kw.get("output_size") or _unpool_default(case)
        y = window_ref.max_unpool_reference(x, indices, tuple(out))
        return y, None, {"x": window_ref.max_unpool_backward_reference(cotangent, indices)}
    if op.startswith("adaptive_max") or op == "global_max_pool":
        size = kw.get("output_size", (1,) * (x.ndim - 2))
        size = (size,) * (x.ndim - 2) if isinstance(size, int) else tuple(size)
        y, i = adaptive_ref.adaptive_max_pool_reference(x, size)
        return y, (i if op != "global_max_pool" else None), {"x": adaptive_ref.adaptive_max_pool_backward_reference(cotangent, i, x.shape)}
    if op.startswith("adaptive_avg") or op == "global_avg_pool":
        size = kw.get("output_size", (1,) * (x.ndim - 2))
        size = (size,) * (x.ndim - 2) if isinstance(size, int) else tuple(size)
        y = adaptive_ref.adaptive_avg_pool_reference(x, size)
        return y, None, {"x": adaptive_ref.adaptive_avg_pool_backward_reference(cotangent, x.shape, size)}
    if op.startswith("fractional_max_pool"):
        y, i = stochastic_ref.fractional_max_pool_reference(x, kw["kernel_size"], kw["output_size"], case.arrays["random_samples"])
        return y, i, {"x": stochastic_ref.fractional_max_pool_backward_reference(cotangent, i, x.shape)}
    if op == "grid_sample":
        args = (kw["mode"], kw["padding_mode"], kw["align_corners"])
        y = sampling_ref.grid_sample_reference(x, case.arrays["grid"], *args)
        grad_x, grad_grid = sampling_ref.grid_sample_backward_reference(cotangent, x, case.arrays["grid"], *args)
        return y, None, {"x": grad_x, "grid": grad_grid}
    if op == "interpolate":
        n = x.ndim - 2
        align = bool(kw.get("align_corners") or False)
        if kw.get("size") is not None:
            size = (kw["size"],) * n if isinstance(kw["size"], int) else tuple(kw["size"])
            scales = None
        else:  # PyTorch: O = floor(L * factor), and the coordinates use 1/factor unless recomputed
            factors = (kw["scale_factor"],) * n if isinstance(kw["scale_factor"], float) else tuple(kw["scale_factor"])
            size = tuple(int(math.floor(L * f)) for L, f in zip(x.shape[2:], factors))
            scales = None if kw.get("recompute_scale_factor") else factors
        rules = dict(antialias=kw.get("antialias"), convention=kw.get("convention", "torch"))
        y = sampling_ref.interpolate_reference(x, size, kw["mode"], align, scales, **rules)
        grad = sampling_ref.interpolate_backward_reference(cotangent, x.shape, kw["mode"], align, scales, **rules, dtype=x.dtype)
        return y, None, {"x": grad}
    size = as_int_tuple(kw["output_size"], 2, "output_size", op) if "roi" in op else None
    if op == "roi_align":
        args = (size, kw["spatial_scale"], kw["sampling_ratio"], kw["aligned"], kw.get("mode", "avg"))
        y = region_ref.roi_align_reference(x, _rois(case), *args)
        return y, None, {"x": region_ref.roi_align_backward_reference(cotangent, x, _rois(case), *args)}
    if op == "roi_pool":
        y, argmax = region_ref.roi_pool_reference(x, _rois(case), size, kw["spatial_scale"], kw.get("convention", "torchvision"))
        return y, None, {"x": region_ref.roi_pool_backward_reference(cotangent, argmax, _rois(case), x.shape)}
    if op == "ps_roi_pool":
        y = region_ref.ps_roi_pool_reference(x, _rois(case), size, kw["spatial_scale"])
        return y, None, {"x": region_ref.ps_roi_pool_backward_reference(cotangent, x.shape, _rois(case), size, kw["spatial_scale"])}
    if op == "ps_roi_align":
        args = (size, kw["spatial_scale"], kw["sampling_ratio"])
        y = region_ref.ps_roi_align_reference(x, _rois(case), *args)
        return y, None, {"x": region_ref.ps_roi_align_backward_reference(cotangent, x.shape, _rois(case), *args)}
    if op == "stochastic_pool2d":  # inference only: the expectation (training draws its own samples)
        kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", op)
        stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", op)
        x64 = _float64(x)
        y = stochastic_ref.stochastic_pool_reference(x64, kernel, stride, training=False)
        return y, None, {"x": stochastic_ref.stochastic_pool_backward_reference(cotangent, x64, kernel, stride, training=False)}
    if op == "mixed_pool2d":
        kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", op)
        stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", op)
        args = (kw["lam"], kernel, stride, as_int_tuple(kw.get("padding", 0), 2, "padding", op))
        y = stochastic_ref.mixed_pool_reference(_float64(x), *args)
        return y, None, {"x": stochastic_ref.mixed_pool_backward_reference(_float64(cotangent), _float64(x), *args)}
    if op == "gem_pool":
        p, eps = float(case.arrays["p"]), kw.get("eps", 1e-6)
        y = learned_ref.gem_pool_reference(x, p, eps)
        grad_x, grad_p = learned_ref.gem_pool_backward_reference(cotangent, x, p, eps)
        return y, None, {"x": grad_x, "p": numpy.array(grad_p)}
    if op == "soft_pool2d":
        kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", op)
        stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", op)
        y = learned_ref.soft_pool2d_reference(x, kernel, stride)
        return y, None, {"x": learned_ref.soft_pool2d_backward_reference(cotangent, x, kernel, stride)}
    if op == "lse_pool":
        y = learned_ref.lse_pool_reference(x, kw["r"])
        return y, None, {"x": learned_ref.lse_pool_backward_reference(cotangent, x, kw["r"])}
    if op == "bilinear_pool":
        second = case.arrays.get("second")
        args = (kw["signed_sqrt"], kw["l2_normalize"], kw.get("eps", 1e-12))
        z = learned_ref.bilinear_pool_reference(x, second, *args)
        grad_x, grad_y = learned_ref.bilinear_pool_backward_reference(cotangent, x, second, *args)
        return z, None, {"x": grad_x} if second is None else {"x": grad_x, "second": grad_y}
    if op == "spatial_pyramid_pool2d":
        args = (tuple(kw["levels"]), kw["mode"], kw["binning"])
        y = region_ref.spatial_pyramid_pool_reference(x, *args)
        return y, None, {"x": region_ref.spatial_pyramid_pool_backward_reference(cotangent, x, *args)}
    if op == "deform_roi_pool":
        offset = _float64(case.arrays["offset"])
        args = (size, kw["spatial_scale"], kw["sampling_ratio"], kw["gamma"])
        y = region_ref.deform_roi_pool_reference(_float64(x), _rois(case), offset, *args)
        grad_x, grad_offset = region_ref.deform_roi_pool_backward_reference(cotangent, _float64(x), _rois(case), offset, *args)
        return y, None, {"x": grad_x, "offset": grad_offset}
    if op == "dynopool2d":
        # the gradient to alpha is the straight-through one of docs/dynopool.rst, as poolref's (see NO_FINITE_DIFFERENCES)
        alpha = tuple(float(a) for a in case.arrays["alpha"])
        y = dynopool_ref.dynopool_reference(_float64(x), alpha, kw["aggregate"])
        grad_x, grad_alpha = dynopool_ref.dynopool_backward_reference(_float64(cotangent), _float64(x), alpha, kw["aggregate"])
        return y, None, {"x": grad_x, "alpha": grad_alpha}
    if op == "conv2d":
        w, b = case.arrays["weight"], case.arrays["bias"]
        pads = conv_pads(case)  # (begin, end) per axis, "same"/"valid" resolved
        geometry = (as_int_tuple(kw.get("stride", 1), 2, "stride", op), tuple(p[0] for p in pads), tuple(p[1] for p in pads),
                    as_int_tuple(kw.get("dilation", 1), 2, "dilation", op))
        options = dict(groups=kw.get("groups", 1), padding_mode=kw.get("padding_mode", "zeros"))
        y = convolution_ref.conv2d_reference(x, w, b, *geometry, **options)
        grad_x, grad_w, grad_b = convolution_ref.conv2d_backward_reference(cotangent, x, w, *geometry, has_bias=True, **options)
        return y, None, {"x": grad_x, "weight": grad_w, "bias": grad_b}
    if op in ("blur_pool2d", "max_blur_pool2d"):
        k, stride = kw["kernel_size"], as_int_tuple(kw.get("stride", 2), 2, "stride", op)
        if op == "blur_pool2d":
            y = blur_ref.blur_pool_reference(x, k, stride)
            return y, None, {"x": blur_ref.blur_pool_backward_reference(cotangent, x.shape, k, stride, dtype=x.dtype)}
        window = as_int_tuple(kw.get("max_pool_size", 2), 2, "max_pool_size", op)
        y = blur_ref.max_blur_pool_reference(x, k, stride, window)
        return y, None, {"x": blur_ref.max_blur_pool_backward_reference(cotangent, x, k, stride, window)}
    if op == "deform_conv2d":  # the sampling points are rounded to x's dtype, as the op's
        arrays = case.arrays
        geometry = (tuple(kw["stride"]), tuple(kw["padding"]), tuple(kw["dilation"]))
        inputs = (x, arrays["offset"], arrays["weight"])
        y = deform_conv_ref.deform_conv2d_reference(*inputs, arrays.get("bias"), *geometry, arrays.get("mask"))
        grads = deform_conv_ref.deform_conv2d_backward_reference(cotangent, *inputs, *geometry, arrays.get("mask"),
                                                                 has_bias="bias" in arrays)
        return y, None, {name: g for name, g in zip(("x", "offset", "weight", "bias", "mask"), grads) if name in arrays}
    raise KeyError(op)


#: Ops whose loop reference exponentiates by the textbook formula in Python floats (math.exp of x
#: itself), which is what makes it an independent check of the shifted forms the ops use: it
#: overflows at inputs of about 1e3 and beyond, and raises where a window holds only -inf (0 / 0).
TEXTBOOK_EXPONENTIALS = ("soft_pool2d", "lse_pool")


def _reference_refusal(case: Case):
    """Why the loop reference cannot compute ``case`` (None where it can)."""
    if case.op == "gem_pool" and case.input_class == "nonfinite_gradient" and _some_plane_constant(case):
        return ("an infinite upstream gradient on a plane whose clamped values are all equal: there dy/dp is exactly 0 "
                "(y does not depend on p), which the op's form (y/p) sum w log(z/y) gives (0 * inf = NaN), but the loop "
                "reference's first derivation, -log(m)/p^2 + (sum z^p log z)/(S p m), leaves its rounding (1e-17), "
                "which the infinity turns into +-inf")
    if case.op not in TEXTBOOK_EXPONENTIALS:
        return None
    if case.input_class == "magnitude" and case.scale > 1:
        return ("magnitudes above 1: the loop reference's textbook exp(x) overflows there (the op factors out the "
                "maximum; the small magnitudes are checked)")
    try:
        with numpy.errstate(all="ignore"):
            shape = numpy.shape(poolref_function(case)(*[case.arrays[name] for name in case.grad_inputs]))
            reference(case, numpy.zeros(shape))
    except (ArithmeticError, ValueError) as error:  # Python floats raise where IEEE arithmetic gives inf or NaN
        return f"the loop reference's textbook formula cannot compute it in Python floats ({type(error).__name__}: {error})"
    return None


def _some_plane_constant(case: Case) -> bool:
    """Whether some (n, c) plane of a GeM case holds one value after the clamp at eps."""
    n = case.x.ndim - (2 if case.batched else 1)
    z = numpy.maximum(numpy.asarray(case.x, dtype=numpy.float64), case.kwargs.get("eps", 1e-6))
    planes = z.reshape(z.shape[: z.ndim - n] + (math.prod(z.shape[z.ndim - n:]),))  # not -1: a batch may be empty
    return bool((planes == planes[..., :1]).all(axis=-1).any())


def _float64(a):
    """A float array in float64 (the loop references then compute in float64 whatever the input's
    dtype, as poolref accumulates float16 in float32); integers are left as they are."""
    a = numpy.asarray(a)
    return a.astype(numpy.float64) if a.dtype.kind == "f" else a


def _unpool_default(case: Case):
    kw, n = case.kwargs, case.x.ndim - 2
    kernel = kw["kernel_size"]
    stride = kw.get("stride") or kernel
    padding = kw.get("padding", (0,) * n)
    return tuple((L - 1) * s - 2 * p + k for L, s, p, k in zip(case.x.shape[2:], stride, padding, kernel))


# --------------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------------
def _laws(case: Case) -> None:
    """The conservation law of ``case``'s op, where it has one (raises AssertionError)."""
    op = case.op
    if not (op.startswith(("max_pool", "adaptive_max", "fractional_max", "avg_pool")) or op in ("global_max_pool", "blur_pool2d", "max_blur_pool2d")):
        return
    call = poolref_function(case)
    mass = 1.0
    if op in ("blur_pool2d", "max_blur_pool2d"):
        kw = case.kwargs
        mass = blur_pool_window_mass(case.x.shape[-2:], kw["kernel_size"], kw.get("stride", 2), max_pool_size=kw.get("max_pool_size", 2) if op == "max_blur_pool2d" else None)
    if op.startswith("max_pool"):  # a window wholly in JAX's 'same' padding passes nothing on (seed 29)
        kw = case.kwargs
        mass = max_pool_window_mass(case.x.shape[2 if case.batched else 1:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                    kw.get("dilation", 1), kw.get("ceil_mode", False), convention=kw.get("convention", "torch"))
    if op.startswith("avg_pool"):
        kw = case.kwargs
        mass = avg_pool_window_mass(
            case.x.shape[2 if case.batched else 1:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0), kw.get("ceil_mode", False),
            kw.get("count_include_pad", True), kw.get("divisor_override"), dilation=kw.get("dilation", 1),
            convention=kw.get("convention", "torch"),
        )
    assert_conserves_gradient(call, case.x, window_mass=mass)


def _check_case(result: OpResult, case: Case, index: int, seed: int, finite_differences: bool) -> None:
    problems = []
    try:
        ours, cotangent = run_poolref(case, seed, index)
        if cotangent is None:  # integer input: the references still want one, and ignore it
            cotangent = numpy.zeros(ours.values.shape)
        with numpy.errstate(all="ignore"):  # NaN and inf are the point of many cases
            values, indices, grads = reference(case, cotangent)
    except (ValueError, TypeError) as error:
        result.failures.append(Failure(case.describe(), [f"raised {type(error).__name__}: {error}"], "", case.input_class))
        return
    zero_sign = case.op in MAX_TYPE_OPS
    comparisons = [compare_arrays(ours.values, values, "output", zero_sign=zero_sign, scale=case.scale, expected="loop reference")]
    if with_indices(case) and indices is not None:
        comparisons.append(compare_arrays(ours.indices, indices, "indices", exact=True, expected="loop reference"))
    gradient_comparisons = [
        compare_arrays(ours.grads[name], grads[name], f"gradient to {name}", expected="loop reference",
                       scale=gradient_scale(case, name), gradient=True)
        for name in ours.grads
    ]
    problems += [c.problem for c in comparisons + gradient_comparisons if not c.ok]
    result.record((comparisons[0].abs_error, comparisons[0].rel_error),
                  (max((c.abs_error for c in gradient_comparisons), default=0.0),
                   max((c.rel_error for c in gradient_comparisons), default=0.0)))
    try:
        # finite cases only (no warning is expected, none is silenced), and only where the output is
        # finite too: an output that is NaN by the op's definition (torchvision's ps_roi_align divides
        # an inverted box's empty bins by a count of 0) has no derivative to check
        if finite_differences and numpy.isfinite(numpy.asarray(ours.values, dtype=numpy.float64)).all():
            differentiable = tuple(n for n in case.grad_inputs if n not in NO_FINITE_DIFFERENCES.get(case.op, ()))
            gradcheck(poolref_function(case.replace(grad_inputs=differentiable)), *[case.arrays[n] for n in differentiable])
        if case.input_class in LAW_CLASSES and case.dtype == numpy.float64 and numpy.isfinite(case.x).all():
            _laws(case)
    except (GradcheckError, AssertionError) as error:
        problems.append(str(error).splitlines()[0])
    if problems:
        result.failures.append(Failure(case.describe(), problems, "", case.input_class))


def self_check(ops=None, cases: int = DEFAULT_CASES, seed: int = 0, *, progress=None, on_case=None) -> Report:
    """Check poolref against itself (loop references, gradcheck, conservation laws) on seeded cases."""
    for op in ops or ():
        if op not in PUBLIC_OPS:
            raise ValueError(f"check: unknown op {op!r}; choose from {PUBLIC_OPS}")
    requested = [op for op in PUBLIC_OPS if ops is None or op in ops]
    plans = {}
    for op in requested:
        if op in SELF_OPS:
            worked = worked_examples(op)
            plan = generate_plan(op, cases, seed, _space(op), accept=lambda case: poolref_refusal(case) or _reference_refusal(case))
            plans[op] = (worked + plan.cases, ({"worked": len(worked)} if worked else {}) | plan.counts, plan.refused)
    total, done = sum(len(p[0]) for p in plans.values()), 0
    report = Report(versions={"self": "loop references, gradcheck, conservation laws"})
    for op in requested:
        if op not in plans:
            report.results.append(OpResult("self", op, kind="not covered", reason="no loop reference is wired into the self-check"))
            continue
        planned, counts, refused = plans[op]
        result = OpResult("self", op, "loop reference + gradcheck + laws", kind="self", counts=counts, refused=refused,
                          dtypes=sorted({str(c.dtype) for c in planned}))
        gradchecked = 0
        for index, case in enumerate(planned):
            # worked examples hold ties and NaN on purpose: no derivative there to check
            finite_differences = (case.input_class == "finite" and case.dtype == numpy.float64
                                  and gradchecked < GRADCHECK_CASES)
            gradchecked += finite_differences
            if on_case:
                on_case((op, "self", index))
            _check_case(result, case, index, seed, finite_differences)
            result.cases += 1
            done += 1
            if progress:
                progress(done, total, f"self {op}")
        report.results.append(result)
    return report
