r"""The oracle: cross-check frameworks' pooling outputs and gradients against poolref.

``check("torch")`` runs seeded random cases of every op PyTorch has, plus the worked examples of
SEMANTICS.md, through PyTorch and through poolref and compares values, indices (exactly) and input
gradients. ``"onnxruntime"``, ``"tensorflow"`` and ``"jax"`` work the same way, each modelled by the
``convention=`` that reproduces it (TensorFlow's SAME averages never count padding, ONNX's LpPool is
the true norm, ...). ``check("self")`` checks poolref against its own plain-loop references, its
gradients by finite differences and the conservation laws, and needs no framework.

Each framework has an adapter module (``torch_adapter``, ``onnxruntime_adapter``,
``tensorflow_adapter``, ``jax_adapter``), imported only when that framework is installed, whose
``MAPPINGS`` declare which framework op corresponds to which poolref op and convention, which
configurations are checked, and which are skipped because poolref cannot model them
(:mod:`poolref.oracle.mapping`). The ``poolref check`` command prints the resulting :class:`Report`.

Every public op is a row for every framework: checked "native" (the framework has the op),
checked as a "composition" of the framework's own ops, or "not covered" with the reason. A run that
checked no case never passes (:attr:`Report.verdict` is ``"nothing checked"``).

>>> from poolref import oracle
>>> report = oracle.check("self", ops=["max_pool1d"], cases=2)  # 2 random cases + 1 worked example
>>> report.passed, report.results[0].cases, report.results[0].counts
(True, 3, {'worked': 1, 'finite': 1, 'nan': 1})
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from ..cases import OPS, PUBLIC_OPS, Case
from .report import Failure, OpResult, Report

__all__ = ["check", "available_frameworks", "load_adapter", "FRAMEWORKS", "ALIASES", "OPS", "PUBLIC_OPS", "Case", "Report",
           "OpResult", "Failure"]

#: framework name -> (adapter module, the packages it needs)
ADAPTERS = {
    "torch": ("poolref.oracle.torch_adapter", ("torch",)),
    "onnxruntime": ("poolref.oracle.onnxruntime_adapter", ("onnxruntime", "onnx")),
    "tensorflow": ("poolref.oracle.tensorflow_adapter", ("tensorflow",)),
    "jax": ("poolref.oracle.jax_adapter", ("jax",)),
}


def _adapters_of_your_own() -> None:
    """Adapters outside poolref: ``POOLREF_ORACLE_ADAPTERS="name=package.module,..."`` adds each
    module as framework ``name``. Such a module declares what the built-in adapters do (``MAPPINGS``,
    ``UNCOVERED``, ``IMPORTS``, ``DEFAULT_CASES``, ``version()``): the way to hold a framework or a
    kernel library of your own to poolref with ``poolref check name``."""
    for item in filter(None, (part.strip() for part in os.environ.get("POOLREF_ORACLE_ADAPTERS", "").split(","))):
        name, _, module = item.partition("=")
        if not name or not module:
            raise ValueError(f"POOLREF_ORACLE_ADAPTERS: expected name=package.module, got {item!r}")
        ADAPTERS[name.strip()] = (module.strip(), ())


_adapters_of_your_own()
FRAMEWORKS = ("self",) + tuple(ADAPTERS)
#: How to install each framework's packages (PyTorch pinned to a CPU build: unpinned, pip pulls GBs
#: of CUDA packages).
INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0, a CPU build; unpinned, pip pulls GBs of CUDA packages",
    "onnxruntime": "pip install 'poolref[onnx]', i.e. onnxruntime and onnx",
    "tensorflow": "pip install 'poolref[tf]', i.e. tensorflow-cpu",
    "jax": "pip install 'poolref[jax]', i.e. jax and flax",
}
#: Other names the command accepts.
ALIASES = {"pytorch": "torch", "onnx": "onnxruntime", "ort": "onnxruntime", "tf": "tensorflow"}


def installed(framework: str) -> bool:
    """Whether the packages ``framework``'s adapter needs can be imported (``self`` always can)."""
    if framework == "self":
        return True
    return all(importlib.util.find_spec(package) is not None for package in ADAPTERS[framework][1])


def available_frameworks() -> list[str]:
    """The frameworks installed here, ``self`` first (it needs none)."""
    return [name for name in FRAMEWORKS if installed(name)]


def load_adapter(framework: str):
    """Import the adapter module of an installed framework (this imports the framework)."""
    framework = ALIASES.get(framework, framework)
    if framework not in ADAPTERS:
        raise ValueError(f"check: framework must be one of {FRAMEWORKS}, got framework={framework!r}")
    if not installed(framework):
        hint = INSTALL_HINTS.get(framework, "pip install " + " ".join(ADAPTERS[framework][1]))
        raise ModuleNotFoundError(f"check: framework={framework!r} is not installed ({hint})",
                                  name=ADAPTERS[framework][1][0])
    return importlib.import_module(ADAPTERS[framework][0])


def check(framework: str, ops=None, cases=None, seed: int = 0, *, progress=None, on_case=None, crashed=(),
          isolated: bool = False) -> Report:
    """Cross-check ``framework`` against poolref on ``cases`` seeded random cases per framework op.

    Parameters
    ----------
    framework : str
        ``"self"`` or an installed framework: ``"torch"``, ``"onnxruntime"``, ``"tensorflow"``,
        ``"jax"`` (aliases ``"onnx"``, ``"ort"``, ``"tf"``, ``"pytorch"``).
    ops : list of str, optional
        poolref op names (see :data:`PUBLIC_OPS`); by default every public op.
    cases : int, optional
        Random cases per framework op, going round the input classes (finite, NaN, ties, +-inf,
        float16, unbatched, strided, signed zeros, magnitudes, empty, integer, non-finite upstream
        gradients, scale factors); the worked examples of SEMANTICS.md come on top. By default the
        adapter's ``DEFAULT_CASES``.
    seed : int
        Seed of the case generator and of the cotangents.
    progress : callable, optional
        ``progress(done, total, label)``, called after each case.
    on_case, crashed
        For :mod:`poolref.oracle.runner`, which runs checks in worker processes: ``on_case(key)``
        hears of each case before it runs, and the cases in ``crashed`` (which ended an earlier
        worker) are reported as mismatches instead of being run again.
    isolated : bool
        True in such a worker. Otherwise the cases on which a known defect aborts the framework's
        process (XLA's check failures) are not drawn, with that reason: they would end the caller.

    Returns
    -------
    Report
        A row per op: checked ("native" or "composition") or "not covered" with the reason.
        ``report.passed`` is True when cases were checked and every one agrees (a known framework
        defect is listed but does not fail the run); each mismatch carries a runnable reproducer.
    """
    for op in ops or ():
        if op not in PUBLIC_OPS:
            raise ValueError(f"check: unknown op {op!r}; choose from {PUBLIC_OPS}")
    if cases is not None and (isinstance(cases, bool) or not isinstance(cases, int) or cases < 0):
        raise ValueError(f"check: cases must be a non-negative int or None, got cases={cases!r}")
    framework = ALIASES.get(framework, framework)
    if framework == "self":
        from .selfcheck import self_check

        from .selfcheck import DEFAULT_CASES

        return self_check(ops, DEFAULT_CASES if cases is None else cases, seed, progress=progress, on_case=on_case)
    adapter = load_adapter(framework)
    from .engine import check_mapping, plan_cases

    def count(mapping):  # an explicit count for every mapping; by default the mapping's own, or the adapter's
        if cases is not None:
            return cases
        return adapter.DEFAULT_CASES if mapping.cases is None else mapping.cases

    rows = []  # (op, plans) or (op, reason) in the order of PUBLIC_OPS
    for op in [op for op in PUBLIC_OPS if ops is None or op in ops]:
        mappings = [m for m in adapter.MAPPINGS if m.op == op]
        if mappings:
            rows.append((op, [(m, plan_cases(m, count(m), seed, isolated)) for m in mappings]))
        else:
            rows.append((op, adapter.UNCOVERED.get(op, f"no {framework} op or composition is declared for it")))
    total = sum(len(p.cases) for _, plans in rows if isinstance(plans, list) for _, p in plans)
    done = 0

    def step(label):
        nonlocal done
        done += 1
        if progress:
            progress(done, total, label)

    report = Report(versions={framework: adapter.version()})
    for op, plans in rows:
        if isinstance(plans, str):
            report.results.append(OpResult(framework, op, kind="not covered", reason=plans))
            continue
        for mapping, plan in plans:
            report.results.append(check_mapping(framework, adapter.IMPORTS, mapping, plan, seed, step, on_case=on_case,
                                                crashed=crashed))
    return report


from . import runner  # noqa: E402 - runs checks in worker processes; needs check() above
