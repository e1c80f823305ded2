"""The oracle's report: one row per (framework, op): how it was checked ("native", "composition" or
"not covered: why"), the cases per input class, the worst errors seen, and each mismatch with a
runnable reproducer. Known framework defects are listed apart, with their reproducers too.

The verdict is "pass" only when cases were checked and none disagreed outside a known defect: a run
that checked nothing (or a row of zero cases) never passes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..cases import CLASS_LABELS, INPUT_CLASSES
from .compare import GRADIENT_TOLERANCES, TOLERANCES, describe_tolerances

__all__ = ["Failure", "OpResult", "Report", "plural"]


def plural(count: int, noun: str, plural_noun: str = "") -> str:
    """``1 case``, ``2 cases``, ``1 framework op``, ``3 mismatches``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun or (noun + 'es' if noun.endswith(('s', 'ch', 'sh', 'x')) else noun + 's')}"


@dataclass
class Failure:
    """One failing case: what differed, the case, its input class, and a snippet that reproduces it."""

    case: str
    problems: list
    reproducer: str
    input_class: str = ""

    def __str__(self) -> str:
        return "; ".join(self.problems) + f": {self.case}"


#: What a row's ``convention`` says where poolref's default keywords model the framework (PyTorch's
#: rules are poolref's defaults)
DEFAULTS = "poolref's defaults"


@dataclass
class OpResult:
    framework: str
    op: str
    call: str = ""  # the framework function (or what the self-check compares with)
    convention: str = DEFAULTS  # the poolref keywords that model it, e.g. "convention='onnx'"
    kind: str = "native"  # "native", "composition", "self" or "not covered"
    reason: str = ""  # why an op is not covered
    cases: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_grad_abs_error: float = 0.0
    max_grad_rel_error: float = 0.0
    gradients: bool = True  # whether gradients were compared (ONNX Runtime has none)
    failures: list = field(default_factory=list)  # Failure records
    known: list = field(default_factory=list)  # Failure records explained by a known framework defect
    skips: list = field(default_factory=list)  # declared configurations not checked, and why
    counts: dict = field(default_factory=dict)  # input class -> cases
    refused: dict = field(default_factory=dict)  # input class -> why it has no case
    dtypes: list = field(default_factory=list)  # the dtypes the cases were drawn in

    @property
    def covered(self) -> bool:
        return self.kind != "not covered"

    @property
    def passed(self) -> bool:
        return self.covered and self.cases > 0 and not self.failures

    @property
    def status(self) -> str:
        if not self.covered:
            return "not covered"
        if self.failures:
            return f"FAIL ({len(self.failures)})"
        if self.cases == 0:
            return "NO CASES"
        return f"pass, {plural(len(self.known), 'known defect')}" if self.known else "pass"

    def record(self, forward, gradients) -> None:
        """Fold one case's (abs, rel) errors, forward and gradient, into the row's maxima."""
        self.max_abs_error = max(self.max_abs_error, forward[0])
        self.max_rel_error = max(self.max_rel_error, forward[1])
        self.max_grad_abs_error = max(self.max_grad_abs_error, gradients[0])
        self.max_grad_rel_error = max(self.max_grad_rel_error, gradients[1])


def _table(rows, header) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()  # noqa: E731
    return [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]


def _op_label(r: OpResult) -> str:
    return f"{r.op} ({r.convention})" if r.convention != DEFAULTS else r.op


@dataclass
class Report:
    results: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)  # framework -> version string

    @property
    def checked(self) -> list:
        return [r for r in self.results if r.covered]

    @property
    def cases(self) -> int:
        return sum(r.cases for r in self.results)

    @property
    def failures(self) -> list:
        return [f for r in self.results for f in r.failures]

    @property
    def known(self) -> list:
        return [f for r in self.results for f in r.known]

    @property
    def empty_rows(self) -> list:
        """Rows that were to be checked but had no case: they never pass."""
        return [r for r in self.checked if r.cases == 0]

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"fail"`` (a mismatch) or ``"nothing checked"`` (no case, or a row without one)."""
        if self.failures:
            return "fail"
        if self.cases == 0 or self.empty_rows:
            return "nothing checked"
        return "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def extend(self, other: "Report") -> None:
        self.results.extend(other.results)
        self.versions.update(other.versions)

    def summary(self) -> str:
        """One line: cases, mismatches, known defects, rows by kind."""
        kinds = {}
        for r in self.results:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        rows = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        return (f"{plural(self.cases, 'case')}, {plural(len(self.failures), 'mismatch')}, "
                f"{plural(len(self.known), 'known framework defect')}; {plural(len(self.results), 'row')} ({rows})")

    def verdict_line(self) -> str:
        if self.verdict == "pass":
            return "all checks passed"
        if self.verdict == "fail":
            return f"MISMATCHES FOUND: {len(self.failures)}"
        empty = ", ".join(_op_label(r) for r in self.empty_rows)
        return "NOTHING CHECKED" + (f": no cases for {empty}" if empty else ": no cases")

    def table(self, reproducers: bool = True) -> str:
        """Per framework: a row per op, the cases per input class, the classes not drawn and why;
        then every mismatch and every known defect with its reproducer."""
        out = []
        for framework in dict.fromkeys(r.framework for r in self.results):
            rows = [r for r in self.results if r.framework == framework]
            version = self.versions.get(framework)
            out.append(f"\n{framework}" + (f" {version}" if version else ""))
            out.extend(self._error_table(rows))
            checked = [r for r in rows if r.covered]
            if checked:
                out.append("")
                out.extend(self._class_table(checked))
                out.extend(self._refusals(checked))
        out.append("")
        out.append(f"tolerances: {describe_tolerances()}")
        out.append(self.summary())
        for title, attribute in (("MISMATCH", "failures"), ("KNOWN DEFECT", "known")):
            for r in self.results:
                records = getattr(r, attribute)
                for number, failure in enumerate(records, 1):
                    out.append(f"\n{title} {r.framework} {r.call} vs poolref.{r.op} ({number}/{len(records)}), "
                               f"input class {failure.input_class or 'finite'}:")
                    out.extend(f"  {p}" for p in failure.problems)
                    out.append(f"  case: {failure.case}")
                    if reproducers and failure.reproducer:
                        out.append("  reproducer (runnable Python):")
                        out.append("\n".join("    " + line if line else "" for line in failure.reproducer.splitlines()))
        return "\n".join(out).lstrip("\n")

    @staticmethod
    def _error_table(rows) -> list[str]:
        header = ("op", "kind", "framework op", "cases", "fwd abs", "fwd rel", "grad abs", "grad rel", "result")
        lines = []
        for r in rows:
            if not r.covered:
                lines.append((_op_label(r), "not covered", r.reason, "", "", "", "", "", "-"))
                continue
            grad = (f"{r.max_grad_abs_error:.1e}", f"{r.max_grad_rel_error:.1e}") if r.gradients else ("-", "-")
            lines.append((_op_label(r), r.kind, r.call, str(r.cases), f"{r.max_abs_error:.1e}", f"{r.max_rel_error:.1e}",
                          *grad, r.status))
        return _table(lines, header)

    @staticmethod
    def _class_table(rows) -> list[str]:
        classes = ["worked"] + list(INPUT_CLASSES)
        used = [c for c in classes if any(c in r.counts or c in r.refused for r in rows)]
        header = ("cases per input class", "dtypes") + tuple(CLASS_LABELS[c] for c in used)
        lines = []
        for r in rows:
            cells = tuple(str(r.counts[c]) if c in r.counts else ("-" if c in r.refused else "") for c in used)
            lines.append((_op_label(r) + (f" [{r.call}]" if r.call and len(rows) > 1 else ""), ",".join(r.dtypes)) + cells)
        return _table(lines, header)

    @staticmethod
    def _refusals(rows) -> list[str]:
        """The classes not drawn, grouped by reason: ``f16 (avg_pool3d, lp_pool3d): no float16 kernel``."""
        groups = {}
        for r in rows:
            for input_class, reason in r.refused.items():
                groups.setdefault((input_class, reason), []).append(r.op)
        if not groups:
            return []
        lines = ["classes not drawn (-), and why:"]
        for (input_class, reason), ops in sorted(groups.items(), key=lambda item: list(INPUT_CLASSES).index(item[0][0])):
            names = ", ".join(dict.fromkeys(ops))
            lines.append(f"  {CLASS_LABELS[input_class]} ({names}): {reason}")
        return lines

    def to_json(self) -> str:
        results = []
        for r in self.results:
            entry = asdict(r)
            entry["passed"] = r.passed
            entry["status"] = r.status
            results.append(entry)
        tolerances = {d.name: {"rtol": t.rtol, "atol": t.atol} for d, t in TOLERANCES.items()}
        gradient_tolerances = {d.name: {"rtol": t.rtol, "atol": t.atol} for d, t in GRADIENT_TOLERANCES.items()}
        return json.dumps({
            "verdict": self.verdict, "passed": self.passed, "summary": self.summary(), "versions": self.versions,
            "tolerances": tolerances, "gradient_tolerances": gradient_tolerances, "comparison": describe_tolerances(),
            "input_classes": INPUT_CLASSES,
            "results": results,
        }, indent=2)
