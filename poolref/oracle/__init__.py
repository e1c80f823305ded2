"""The oracle: cross-check a framework's pooling outputs and gradients against poolref.

``check("torch")`` runs seeded random cases of every op through PyTorch and through poolref and
compares values, indices (exactly) and input gradients; ``check("self")`` checks poolref against its
own plain-loop references, its gradients by finite differences and the conservation laws, and needs
no framework. The ``poolref check`` command prints the resulting :class:`Report`.
"""

from __future__ import annotations

import numpy

from . import torch_adapter
from .cases import OPS, generate_cases
from .report import OpResult, Report

__all__ = ["check", "available_frameworks", "FRAMEWORKS", "OPS", "Report"]

ADAPTERS = {torch_adapter.NAME: torch_adapter}
FRAMEWORKS = ("self",) + tuple(ADAPTERS)

# float64 throughout: the only differences left are summation order
TOLERANCE = dict(rtol=1e-10, atol=1e-12)


def available_frameworks() -> list[str]:
    """The frameworks installed here (``self`` is always available)."""
    return ["self"] + [name for name, adapter in ADAPTERS.items() if adapter.available()]


def _poolref_run(case, cotangent):
    import poolref

    fn = getattr(poolref, case.op)
    kwargs = dict(case.kwargs)
    args = (kwargs.pop("norm_type"),) if "norm_type" in kwargs else ()
    with_indices = case.op.startswith(("max_pool", "adaptive_max_pool"))
    if with_indices:
        kwargs["return_indices"] = True
    outputs, pullback = poolref.vjp(lambda t: fn(t, *args, **kwargs), case.x)
    values, indices = outputs if with_indices else (outputs, None)
    return values, indices, pullback(cotangent)[0]


def _max_error(a, b) -> float:
    if a.size == 0:
        return 0.0
    return float(numpy.max(numpy.abs(numpy.asarray(a, dtype=numpy.float64) - b)))


def _compare(result: OpResult, case, theirs, ours):
    (v1, i1, g1), (v2, i2, g2) = theirs, ours
    problems = []
    if v1.shape != v2.shape:
        problems.append(f"output shape {v1.shape} != poolref {v2.shape}")
    else:
        result.max_abs_error = max(result.max_abs_error, _max_error(v1, v2))
        if not numpy.allclose(v1, v2, **TOLERANCE):
            problems.append(f"outputs differ by up to {_max_error(v1, v2):.3e}")
        if i1 is not None and not numpy.array_equal(i1, i2):
            problems.append("indices differ")
        result.max_grad_abs_error = max(result.max_grad_abs_error, _max_error(g1, g2))
        if not numpy.allclose(g1, g2, **TOLERANCE):
            problems.append(f"gradients differ by up to {_max_error(g1, g2):.3e}")
    if problems:
        result.failures.append(f"{'; '.join(problems)}: x.shape={case.x.shape}, {case.kwargs}")


def check(framework: str, ops=None, cases: int = 20, seed: int = 0, progress=None) -> Report:
    """Cross-check ``framework`` against poolref on ``cases`` seeded cases per op.

    Parameters
    ----------
    framework : str
        ``"self"`` or an installed framework (``"torch"``).
    ops : list of str, optional
        poolref op names; all supported ops by default.
    cases : int
        Cases per op.
    seed : int
        Seed of the case generator.
    progress : callable, optional
        Called with the op name before each op is checked.

    Returns
    -------
    Report
        ``report.passed`` is True when every case of every op agrees.
    """
    if framework == "self":
        from .selfcheck import self_check

        return self_check(ops, cases, seed, progress)
    if framework not in ADAPTERS:
        raise ValueError(f"check: framework must be one of {FRAMEWORKS}, got framework={framework!r}")
    adapter = ADAPTERS[framework]
    if not adapter.available():
        raise ValueError(f"check: framework={framework!r} is not installed")
    report = Report()
    for op in ops or OPS:
        if op not in OPS:
            raise ValueError(f"check: unknown op {op!r}; choose from {OPS}")
        if not adapter.supports(op):
            continue
        if progress:
            progress(op)
        result = OpResult(framework, op)
        for index, case in enumerate(generate_cases(op, cases, seed)):
            cotangent = _cotangent(case, seed, index)
            ours = _poolref_run(case, cotangent)
            try:
                theirs = adapter.run(case, cotangent)
            except Exception as error:  # a framework refusing a case poolref accepts is a finding too
                result.failures.append(f"{framework} raised {type(error).__name__}: {error}: x.shape={case.x.shape}, {case.kwargs}")
            else:
                _compare(result, case, theirs, ours)
            result.cases += 1
        report.results.append(result)
    return report


def _cotangent(case, seed, index):
    """A seeded upstream gradient shaped like the op's output (computed by poolref)."""
    import poolref

    kwargs = dict(case.kwargs)
    args = (kwargs.pop("norm_type"),) if "norm_type" in kwargs else ()
    shape = getattr(poolref, case.op)(case.x, *args, **kwargs).shape
    return numpy.random.default_rng([seed, index, 7]).normal(size=shape)
