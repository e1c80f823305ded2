"""poolref's self-checks: the vectorised ops against their plain-loop references (values, indices and
gradients), finite-difference gradchecks, and the gradient-conservation laws. Needs no framework."""

from __future__ import annotations

import numpy

from .._geometry import pool_geometry
from ..autograd import GradcheckError, gradcheck, vjp
from ..reference import adaptive as adaptive_ref
from ..reference import window as window_ref
from ..testing.laws import assert_conserves_gradient, avg_pool_window_mass
from .cases import OPS, generate_cases
from .report import OpResult, Report

__all__ = ["self_check"]


def _split(case):
    kwargs = dict(case.kwargs)
    args = (kwargs.pop("norm_type"),) if "norm_type" in kwargs else ()
    return args, kwargs


def _geometry_args(case):
    kw = case.kwargs
    geometry = pool_geometry(
        case.x.shape[2:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0), kw.get("dilation", 1),
        kw.get("ceil_mode", False), "torch", case.op,
    )
    axes = geometry.axes
    return (
        tuple(a.kernel for a in axes), tuple(a.stride for a in axes), tuple(a.pad_begin for a in axes),
        tuple(a.pad_end for a in axes), tuple(a.dilation for a in axes), bool(kw.get("ceil_mode", False)),
    )


def _reference(case, cotangent):
    """(values, indices or None, input gradient) from the plain-loop reference of ``case.op``."""
    x, kw = case.x, case.kwargs
    if case.op.startswith("adaptive_max"):
        y, i = adaptive_ref.adaptive_max_pool_reference(x, kw["output_size"])
        return y, i, adaptive_ref.adaptive_max_pool_backward_reference(cotangent, i, x.shape)
    if case.op.startswith("adaptive_avg"):
        y = adaptive_ref.adaptive_avg_pool_reference(x, kw["output_size"])
        return y, None, adaptive_ref.adaptive_avg_pool_backward_reference(cotangent, x.shape, kw["output_size"])
    geometry = _geometry_args(case)
    if case.op.startswith("max_pool"):
        y, i = window_ref.max_pool_reference(x, *geometry)
        return y, i, window_ref.max_pool_backward_reference(cotangent, i, x.shape)
    if case.op.startswith("avg_pool"):
        extra = (kw.get("count_include_pad", True), kw.get("divisor_override"))
        y = window_ref.avg_pool_reference(x, *geometry, *extra)
        return y, None, window_ref.avg_pool_backward_reference(cotangent, x.shape, *geometry, *extra)
    p = kw["norm_type"]
    y = window_ref.lp_pool_reference(x, p, *geometry, "torch")
    return y, None, window_ref.lp_pool_backward_reference(cotangent, x, p, *geometry, "torch")


def _check_case(result: OpResult, case, index: int, seed: int):
    import poolref

    fn = getattr(poolref, case.op)
    args, kwargs = _split(case)
    with_indices = case.op.startswith(("max_pool", "adaptive_max_pool"))
    outputs, pullback = vjp(lambda t: fn(t, *args, **kwargs, **({"return_indices": True} if with_indices else {})), case.x)
    values, indices = outputs if with_indices else (outputs, None)
    cotangent = numpy.random.default_rng([seed, index]).normal(size=values.shape)
    grad = pullback(cotangent)[0]
    ref_values, ref_indices, ref_grad = _reference(case, cotangent)
    problems = []
    if not numpy.allclose(values, ref_values, rtol=1e-10, atol=1e-12):
        problems.append("outputs differ from the loop reference")
    if indices is not None and not numpy.array_equal(indices, ref_indices):
        problems.append("indices differ from the loop reference")
    if not numpy.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12):
        problems.append("gradients differ from the loop reference")
    if values.size:
        result.max_abs_error = max(result.max_abs_error, float(numpy.abs(values - ref_values).max()))
        result.max_grad_abs_error = max(result.max_grad_abs_error, float(numpy.abs(grad - ref_grad).max()))
    try:
        if index < 3:  # the finite-difference Jacobian is the expensive check: a few cases per op
            gradcheck(lambda t: fn(t, *args, **kwargs), case.x[:1, :1])
        mass = 1.0
        if case.op.startswith("avg_pool"):
            mass = avg_pool_window_mass(case.x.shape[2:], **kwargs)
        if not case.op.startswith("lp_pool"):
            assert_conserves_gradient(lambda t: fn(t, *args, **kwargs), case.x, window_mass=mass)
    except (GradcheckError, AssertionError) as error:
        problems.append(str(error).splitlines()[0])
    if problems:
        result.failures.append(f"{'; '.join(problems)}: x.shape={case.x.shape}, {case.kwargs}")


def self_check(ops=None, cases: int = 20, seed: int = 0, progress=None) -> Report:
    report = Report()
    for op in ops or OPS:
        if op not in OPS:
            raise ValueError(f"check: unknown op {op!r}; choose from {OPS}")
        if progress:
            progress(op)
        result = OpResult("self", op)
        for index, case in enumerate(generate_cases(op, cases, seed)):
            _check_case(result, case, index, seed)
            result.cases += 1
        report.results.append(result)
    return report
