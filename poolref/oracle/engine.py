r"""The oracle's engine: run each case through a framework and through poolref, compare, and turn a
mismatch into a small runnable reproducer.

For one :class:`~poolref.oracle.mapping.Mapping` the engine

1. collects the cases: the worked examples of SEMANTICS.md that the framework can express and
   poolref can model under the mapping's convention, then ``count`` seeded random cases;
2. runs poolref (:func:`run_poolref`): the op's values, indices and, through :func:`poolref.vjp`,
   the gradient of ``sum(values * cotangent)`` to every differentiable input, for a seeded random
   cotangent shaped like the output;
3. runs the framework (:func:`run_framework`): the mapping's source code, executed with the case's
   arrays and the same cotangent;
4. compares (:mod:`poolref.oracle.compare`) and, on a mismatch, shrinks the case to the (n, c)
   plane, box or image where it first differs while it still fails (:func:`shrink`), and writes
   the reproducer (:func:`reproducer`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy

from ..cases import MAX_TYPE_OPS, VIEWS, Case, Plan, generate_plan, gradient_scale, materialise, with_indices, worked_examples
from .compare import compare_arrays
from .mapping import Mapping, array_literal, format_kwargs
from .report import DEFAULTS, Failure, OpResult

__all__ = [
    "Results", "Outcome", "poolref_function", "run_poolref", "run_framework", "compare_case", "evaluate",
    "plan_cases", "check_mapping", "shrink", "reproducer", "poolref_refusal", "known_defects",
]


class Results(NamedTuple):
    values: object
    indices: object  # None for ops without indices
    grads: dict  # input name -> gradient (None where not computed)
    native_indices: object = None  # the framework's own index layout, before conversion


class Outcome(NamedTuple):
    comparisons: list  # (name, Comparison) for the output, the indices and each gradient
    error: str  # "" or what the framework raised
    ours: object = None  # poolref's Results
    theirs: object = None  # the framework's Results

    @property
    def ok(self) -> bool:
        return not self.error and all(c.ok for _, c in self.comparisons)

    @property
    def problems(self) -> list:
        return [self.error] if self.error else [c.problem for _, c in self.comparisons if not c.ok]

    def location(self):
        """(name, index) of the first mismatching element (output first), or None."""
        for name, c in self.comparisons:
            if not c.ok and c.first is not None:
                return name, c.first
        return None


# --------------------------------------------------------------------------------------------------
# poolref's side
# --------------------------------------------------------------------------------------------------
def poolref_function(case: Case):
    """``f(*grad_inputs)`` calling ``poolref.<op>`` with the case's other arrays and keywords fixed."""
    from .. import ops

    fn = getattr(ops, case.op)

    def call(*primals):
        arrays = dict(case.arrays)
        arrays.update(zip(case.grad_inputs, primals))
        positional = [arrays[name] for name in case.positional]
        keyword = {name: a for name, a in arrays.items() if name not in case.positional}
        return fn(*positional, **keyword, **case.kwargs)

    return call


def cotangent_for(shape, dtype, seed: int, index: int, nonfinite: bool = False) -> numpy.ndarray:
    """A seeded upstream gradient: standard normal, in the output's dtype; with ``nonfinite``, about
    one entry in five is NaN, +inf or -inf (the ``nonfinite_gradient`` class)."""
    rng = numpy.random.default_rng([seed, index, 7])
    cotangent = rng.normal(size=shape)
    if nonfinite and cotangent.size:
        mask = rng.random(shape) < 0.2
        mask.flat[int(rng.integers(cotangent.size))] = True
        cotangent[mask] = rng.choice([numpy.nan, numpy.inf, -numpy.inf], size=int(mask.sum()))
    return cotangent.astype(dtype)


def run_poolref(case: Case, seed: int = 0, index: int = 0, gradients: bool = True, cotangent=None):
    """``(Results, cotangent)``: poolref's values, indices and input gradients for ``case``.

    poolref gets fresh copies of the case's arrays (views rebuilt as views). The cotangent is drawn
    (seeded by ``seed`` and ``index``) unless given.
    """
    from ..autograd import vjp

    arrays = materialise(case)
    call = poolref_function(case.replace(arrays={name: arrays[name] for name in case.arrays}))
    primals = [arrays[name] for name in case.grad_inputs]
    gradients = gradients and bool(primals)
    # NaN and infinities are the point of many cases: inf - inf is NaN here as in every framework,
    # and numpy's warning that it happened says nothing the comparison does not
    with numpy.errstate(all="ignore"):
        if gradients:
            outputs, pullback = vjp(call, *primals)
        else:
            outputs, pullback = call(*primals), None
        values, indices = outputs if with_indices(case) else (outputs, None)
        if cotangent is None and gradients:
            cotangent = cotangent_for(values.shape, values.dtype, seed, index, case.input_class == "nonfinite_gradient")
        grads = dict(zip(case.grad_inputs, pullback(cotangent))) if gradients else {}
    return Results(values, indices, grads), cotangent


def poolref_refusal(case: Case) -> Optional[str]:
    """Why poolref refuses ``case`` (its error message), or None when it runs it."""
    try:
        with numpy.errstate(all="ignore"):
            poolref_function(case)(*[case.arrays[name] for name in case.grad_inputs])
    except (ValueError, TypeError) as error:
        return f"poolref refuses it ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None


# --------------------------------------------------------------------------------------------------
# The framework's side
# --------------------------------------------------------------------------------------------------
def framework_source(imports: str, mapping: Mapping, case: Case) -> str:
    return f"{imports}\n{mapping.code(case)}"


def run_framework(imports: str, mapping: Mapping, case: Case, cotangent) -> Results:
    """Execute the mapping's source with copies of the case's arrays; collect what it set."""
    namespace = {"np": numpy, "cotangent": None if cotangent is None else cotangent.copy()}
    namespace.update(materialise(case))
    with numpy.errstate(all="ignore"):
        exec(compile(framework_source(imports, mapping, case), f"<{mapping.call}>", "exec"), namespace)  # noqa: S102
    grads = {name: namespace.get(f"grad_{name}") for name in case.grad_inputs} if mapping.gradients else {}
    indices = namespace.get("y_indices")
    return Results(namespace["y"], indices, grads, namespace.get("y_indices_native", indices))


def compare_case(mapping: Mapping, case: Case, ours: Results, theirs: Results) -> list:
    """(name, Comparison) for the output, the indices, and each input gradient."""
    zero_sign = case.op in MAX_TYPE_OPS  # which of tied -0.0 and +0.0 won shows in the sign
    comparisons = [("output", compare_arrays(theirs.values, ours.values, "output", zero_sign=zero_sign, scale=case.scale))]
    if ours.indices is not None and mapping.indices:
        comparisons.append(("indices", compare_arrays(theirs.indices, ours.indices, "indices", exact=True)))
    if mapping.gradients:
        for name in ours.grads:
            comparisons.append((f"grad_{name}", compare_arrays(theirs.grads.get(name), ours.grads[name], f"gradient to {name}",
                                                               scale=gradient_scale(case, name), gradient=True)))
    return comparisons


def evaluate(imports: str, mapping: Mapping, case: Case, seed: int, index: int, cotangent=None):
    """Run both sides and compare: ``(Outcome, cotangent)``."""
    try:
        ours, cotangent = run_poolref(case, seed, index, mapping.gradients, cotangent)
    except (ValueError, TypeError) as error:  # a case poolref refuses is a bug of the case's space
        return Outcome([], f"poolref raised {type(error).__name__}: {error}"), cotangent
    try:
        theirs = run_framework(imports, mapping, case, cotangent)
    except Exception as error:  # a framework refusing a case poolref accepts is a finding too
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Outcome([], f"{mapping.call} raised {type(error).__name__}: {message}"), cotangent
    return Outcome(compare_case(mapping, case, ours, theirs), "", ours, theirs), cotangent


# --------------------------------------------------------------------------------------------------
# Shrinking a failing case
# --------------------------------------------------------------------------------------------------
PLANE_OPS = ("max_pool", "avg_pool", "lp_pool", "max_unpool", "adaptive_", "global_", "fractional_", "interpolate")


def _planes(case: Case, cotangent, n: int, c: Optional[int]):
    """The case restricted to image ``n`` (and channel ``c``) of every (N, C, ...) array."""
    pick = slice(n, n + 1)
    channel = slice(None) if c is None else slice(c, c + 1)
    arrays = {}
    for name, a in case.arrays.items():
        if name in ("x", "indices", "random_samples"):
            arrays[name] = numpy.ascontiguousarray(a[pick, channel])
        elif name == "grid":
            arrays[name] = numpy.ascontiguousarray(a[pick])
        else:
            arrays[name] = a
    return case.replace(arrays=arrays), numpy.ascontiguousarray(cotangent[pick, channel])


def _box(case: Case, cotangent, k: int, c: Optional[int]):
    """The case restricted to box ``k`` and its image (and channel ``c`` of a plain RoI op)."""
    boxes = case.arrays["boxes"][k:k + 1].copy()
    n = int(boxes[0, 0])
    boxes[0, 0] = 0
    channel = slice(None) if c is None else slice(c, c + 1)
    x = numpy.ascontiguousarray(case.arrays["x"][n:n + 1, channel])
    arrays = {"x": x, "boxes": boxes}
    if "offset" in case.arrays:  # deformable RoI pooling: the box's own offsets
        arrays["offset"] = numpy.ascontiguousarray(case.arrays["offset"][k:k + 1])
    return case.replace(arrays=arrays), numpy.ascontiguousarray(cotangent[k:k + 1, channel])


def shrink_candidates(case: Case, cotangent, location):
    """Smaller cases that may still fail, smallest first (none for views, unbatched or empty cases,
    which are shown whole: their layout is the point)."""
    if case.views or not case.batched or case.input_class == "empty" or cotangent is None:
        return
    name, index = location if location else ("", None)
    if case.op.startswith(PLANE_OPS):
        if index is not None and name in ("output", "indices", "grad_x") and len(index) >= 2:
            yield _planes(case, cotangent, index[0], index[1])
            yield _planes(case, cotangent, index[0], None)
        else:
            for n in range(case.x.shape[0]):
                yield _planes(case, cotangent, n, None)
    elif case.op in ("grid_sample", "conv2d"):
        n = index[0] if index is not None and name in ("output", "grad_x", "grad_grid") else None
        for m in ([n] if n is not None else range(case.x.shape[0])):
            if case.op == "grid_sample" and name == "output" and index is not None:
                yield _planes(case, cotangent, m, index[1])
            if case.op == "grid_sample":
                yield _planes(case, cotangent, m, None)
            else:
                x = case.arrays["x"][m:m + 1]
                yield case.replace(arrays={**case.arrays, "x": x}), numpy.ascontiguousarray(cotangent[m:m + 1])
    elif "roi" in case.op:
        plain = case.op in ("roi_align", "roi_pool")
        if index is not None and name == "output":
            if plain:
                yield _box(case, cotangent, index[0], index[1])
            yield _box(case, cotangent, index[0], None)
        else:
            for k in range(case.arrays["boxes"].shape[0]):
                yield _box(case, cotangent, k, None)


def shrink(imports: str, mapping: Mapping, case: Case, cotangent, outcome: Outcome, seed: int, index: int):
    """The smallest candidate of :func:`shrink_candidates` that still fails: ``(case, cotangent, outcome)``."""
    for small, small_cotangent in shrink_candidates(case, cotangent, outcome.location()):
        small_outcome, _ = evaluate(imports, mapping, small, seed, index, small_cotangent)
        if small_outcome.error.startswith("poolref raised"):  # not a valid smaller case: keep looking
            continue
        if not small_outcome.ok:
            return small, small_cotangent, small_outcome
    return case, cotangent, outcome


# --------------------------------------------------------------------------------------------------
# The reproducer
# --------------------------------------------------------------------------------------------------
def poolref_source(case: Case) -> str:
    """``poolref.<op>(...)`` as source, reading the case's arrays by name."""
    arguments = list(case.positional)
    arguments += [f"{name}={name}" for name in case.arrays if name not in case.positional]
    keywords = format_kwargs(case.kwargs)
    return f"poolref.{case.op}({', '.join(arguments + ([keywords] if keywords else []))})"


def reproducer(framework: str, imports: str, mapping: Mapping, case: Case, cotangent, outcome: Outcome) -> str:
    """A Python script that recomputes both sides of ``case`` and asserts they agree."""
    lines = [f"# poolref check {framework}: {mapping.call} vs poolref.{mapping.label}"]
    lines += [f"# {problem}" for problem in outcome.problems]
    lines += ["import numpy as np", "import poolref", "from poolref.testing import assert_matches"]
    lines += [imports.strip(), ""]
    for name, a in case.arrays.items():
        if name in case.views:  # a non-contiguous view: its base, then the view
            kind, base = case.views[name]
            lines.append(f"{name}_base = {array_literal(base)}")
            lines.append(f"{name} = {name}_base{VIEWS[kind].numpy}  # {VIEWS[kind].what}")
        else:
            lines.append(f"{name} = {array_literal(a)}")
    gradients = mapping.gradients and bool(case.grad_inputs)
    if gradients:
        lines.append(f"cotangent = {array_literal(cotangent)}")
    lines += ["", f"# {framework}", mapping.code(case).strip(), "", "# poolref, with the keywords that model it"]
    call = poolref_source(case)
    expected = "(expected, expected_indices)" if with_indices(case) else "expected"
    if gradients:
        params = ", ".join(case.grad_inputs)
        lines.append(f"{expected}, pullback = poolref.vjp(lambda {params}: {call}, {params})")
        lines.append("expected_grads = pullback(cotangent)")
    else:
        lines.append(f"{expected} = {call}")
    tolerances = {name: c for name, c in outcome.comparisons}

    def tol(name):
        c = tolerances.get(name)
        return f", rtol={c.rtol:g}, atol={c.atol:.3g}" if c is not None and c.rtol else ""

    zero_sign = ", zero_sign=True" if case.op in MAX_TYPE_OPS else ""

    # a windowed op's first mismatch is shown with the input window that produced it
    window = f", x=x, window=dict({format_kwargs(case.kwargs)})" if case.op.startswith(("max_pool", "avg_pool", "lp_pool")) else ""
    lines.append(f'assert_matches(y, expected{tol("output")}, what="output"{zero_sign}{window})')
    if with_indices(case) and mapping.indices:
        lines.append('assert_matches(y_indices, expected_indices, what="indices")')
    if gradients:
        for position, name in enumerate(case.grad_inputs):
            lines.append(f'assert_matches(grad_{name}, expected_grads[{position}]{tol("grad_" + name)}, what="gradient to {name}")')
    lines.append(f'print("{framework} and poolref agree on this case")')
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# One mapping, all its cases
# --------------------------------------------------------------------------------------------------
def plan_cases(mapping: Mapping, count: int, seed: int, isolated: bool = False) -> Plan:
    """The worked examples the mapping can check, then ``count`` seeded random cases going round the
    input classes that the framework can express and poolref takes.

    Unless ``isolated`` (a worker process of :mod:`poolref.oracle.runner`), a case on which a known
    defect aborts the framework's process is not drawn: the calling process would end with it.
    """
    worked = []
    if mapping.worked:
        for example in worked_examples(mapping.op):
            case = mapping.adapt(example)
            if mapping.refusal(case) is None and poolref_refusal(case) is None:
                worked.append(case)

    aborts = [d for d in mapping.defects if "abort" in d.affects] if not isolated else []

    def accept(case):
        for defect in aborts:
            if defect.applies(case):
                return f"not run in the calling process (poolref check runs it in a worker): {defect.text}"
        return mapping.refusal(case) or poolref_refusal(case)

    plan = generate_plan(mapping.op, count, seed, mapping.generation_space(), accept=accept)
    counts = ({"worked": len(worked)} if worked else {}) | plan.counts
    return Plan(worked + plan.cases, counts, plan.refused)


def known_defects(mapping: Mapping, case: Case, outcome: Outcome, cotangent) -> list:
    """The known defects that explain every mismatch of ``outcome`` (empty when they do not).

    Where each defect that applies to the case models the framework's wrong answer
    (``KnownDefect.model``), the framework must give *exactly* that answer: a defect then excuses
    nothing else. Otherwise the defects' ``affects`` must cover every mismatching comparison.
    """
    applicable = [d for d in mapping.defects if d.applies(case)]
    if outcome.error:  # the framework raised: known only where a defect says it raises on such cases
        return [d for d in applicable if "raises" in d.affects and outcome.error.startswith(mapping.call)]
    failing = {name for name, c in outcome.comparisons if not c.ok}
    if not failing or not applicable:
        return []
    if all(d.model is not None for d in applicable):
        expected = outcome.ours
        for defect in applicable:
            expected = defect.model(case, expected, cotangent)
        return applicable if all(c.ok for _, c in compare_case(mapping, case, expected, outcome.theirs)) else []
    covered = set().union(*(d.affects for d in applicable))
    return applicable if failing <= covered else []


def _record_crash(result: OpResult, framework, imports, mapping, case, seed, index, crash) -> None:
    from .runner import CRASH

    code, said = (tuple(crash) + ("",))[:2]
    _, cotangent = run_poolref(case, seed, index, mapping.gradients)
    outcome = Outcome([], CRASH.format(code=code, said=f", saying: {said}" if said else ""))
    defect = next((d for d in mapping.defects if "abort" in d.affects and d.applies(case)), None)
    problems = ([f"known {framework} defect: {defect.text}"] if defect else []) + outcome.problems
    record = Failure(case.describe(), problems, reproducer(framework, imports, mapping, case, cotangent, outcome), case.input_class)
    (result.known if defect else result.failures).append(record)
    result.cases += 1


def check_mapping(framework: str, imports: str, mapping: Mapping, plan, seed: int, progress=None, *, on_case=None,
                  crashed=()) -> OpResult:
    """Check ``mapping`` on the cases of ``plan`` (a :class:`Plan` or a list of cases); the row of the report.

    ``on_case(key)`` is told ``(op, call, index)`` before each case runs; a case whose key is in
    ``crashed`` (as ``key + (exit code,)``: the framework ended the process on it in an earlier
    worker, see :mod:`poolref.oracle.runner`) is not run again but reported as a mismatch.
    """
    if not isinstance(plan, Plan):
        plan = Plan(list(plan), {}, {})
    convention = format_kwargs(mapping.convention) or DEFAULTS
    result = OpResult(framework, mapping.op, mapping.call, convention, kind=mapping.kind, gradients=mapping.gradients,
                      skips=list(mapping.skips), counts=dict(plan.counts), refused=dict(plan.refused),
                      dtypes=sorted({str(c.dtype) for c in plan.cases}))
    crashes = {tuple(key[:3]): tuple(key[3:]) for key in crashed or ()}
    for index, case in enumerate(plan.cases):
        key = (mapping.op, mapping.call, index)
        if key in crashes:
            _record_crash(result, framework, imports, mapping, case, seed, index, crashes[key])
            continue
        if on_case:
            on_case(key)
        outcome, cotangent = evaluate(imports, mapping, case, seed, index)
        forward = [c for name, c in outcome.comparisons if name == "output"]
        backward = [c for name, c in outcome.comparisons if name.startswith("grad_")]
        defects = [] if outcome.ok else known_defects(mapping, case, outcome, cotangent)
        if not defects:  # a known defect's errors are the framework's, not the row's
            result.record(
                (max((c.abs_error for c in forward), default=0.0), max((c.rel_error for c in forward), default=0.0)),
                (max((c.abs_error for c in backward), default=0.0), max((c.rel_error for c in backward), default=0.0)),
            )
        if not outcome.ok:
            small, small_cotangent, small_outcome = shrink(imports, mapping, case, cotangent, outcome, seed, index)
            problems = [f"known {framework} defect: {defect.text}" for defect in defects] + outcome.problems
            record = Failure(small.describe(), problems,
                             reproducer(framework, imports, mapping, small, small_cotangent, small_outcome), case.input_class)
            (result.known if defects else result.failures).append(record)
        result.cases += 1
        if progress:
            progress(f"{framework} {mapping.op}")
    return result
