"""The oracle's report: one row per (framework, framework op), the worst errors seen, and each
mismatch with a runnable reproducer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["Failure", "OpResult", "Report"]


@dataclass
class Failure:
    """One failing case: what differed, the case, and a Python snippet that reproduces it."""

    case: str
    problems: list
    reproducer: str

    def __str__(self) -> str:
        return "; ".join(self.problems) + f": {self.case}"


@dataclass
class OpResult:
    framework: str
    op: str
    call: str = ""  # the framework function (or what the self-check compares with)
    convention: str = ""  # the poolref keywords that model it, e.g. "convention='onnx'"
    cases: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_grad_abs_error: float = 0.0
    max_grad_rel_error: float = 0.0
    gradients: bool = True  # whether gradients were compared (ONNX Runtime has none)
    failures: list = field(default_factory=list)  # Failure records
    skips: list = field(default_factory=list)  # declared configurations not checked, and why

    @property
    def passed(self) -> bool:
        return not self.failures

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


@dataclass
class Report:
    results: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)  # framework -> version string

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list:
        return [f for r in self.results for f in r.failures]

    def extend(self, other: "Report") -> None:
        self.results.extend(other.results)
        self.versions.update(other.versions)

    def table(self, reproducers: bool = True) -> str:
        """A table per framework (one row per op), then every mismatch with its reproducer."""
        header = ("op", "framework op", "cases", "fwd abs", "fwd rel", "grad abs", "grad rel", "result")
        out = []
        frameworks = list(dict.fromkeys(r.framework for r in self.results))
        for framework in frameworks:
            rows = []
            for r in (r for r in self.results if r.framework == framework):
                grad = (f"{r.max_grad_abs_error:.1e}", f"{r.max_grad_rel_error:.1e}") if r.gradients else ("-", "-")
                op = f"{r.op} ({r.convention})" if r.convention else r.op
                rows.append((op, r.call, str(r.cases), f"{r.max_abs_error:.1e}", f"{r.max_rel_error:.1e}", *grad,
                             "pass" if r.passed else f"FAIL ({len(r.failures)})"))
            version = self.versions.get(framework)
            out.append(f"\n{framework}" + (f" {version}" if version else ""))
            out.extend(_table(rows, header))
        total = sum(r.cases for r in self.results)
        failed = len(self.failures)
        out.append(f"\n{total} cases, {failed} mismatches, {len(self.results)} framework ops")
        for r in self.results:
            for number, failure in enumerate(r.failures, 1):
                out.append(f"\nMISMATCH {r.framework} {r.call} vs poolref.{r.op} ({number}/{len(r.failures)}):")
                out.extend(f"  {p}" for p in failure.problems)
                out.append(f"  case: {failure.case}")
                if reproducers and failure.reproducer:
                    out.append("  reproducer (runnable Python):")
                    out.append("\n".join("    " + line if line else "" for line in failure.reproducer.splitlines()))
        return "\n".join(out).lstrip("\n")

    def to_json(self) -> str:
        results = []
        for r in self.results:
            entry = asdict(r)
            entry["passed"] = r.passed
            results.append(entry)
        return json.dumps({"passed": self.passed, "versions": self.versions, "results": results}, indent=2)
