"""The oracle's report: one row per (framework, op), with the worst errors seen and any failures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["OpResult", "Report"]


@dataclass
class OpResult:
    framework: str
    op: str
    cases: int = 0
    max_abs_error: float = 0.0
    max_grad_abs_error: float = 0.0
    failures: list = field(default_factory=list)  # human-readable descriptions of failing cases

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Report:
    results: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def extend(self, other: "Report") -> None:
        self.results.extend(other.results)

    def table(self) -> str:
        header = ("framework", "op", "cases", "max |err| fwd", "max |err| grad", "result")
        rows = [
            (r.framework, r.op, str(r.cases), f"{r.max_abs_error:.2e}", f"{r.max_grad_abs_error:.2e}",
             "pass" if r.passed else f"FAIL ({len(r.failures)})")
            for r in self.results
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        line = lambda row: "  ".join(cell.ljust(w) for cell, w in zip(row, widths))  # noqa: E731
        out = [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]
        for r in self.results:
            for failure in r.failures:
                out.append(f"\n{r.framework} {r.op}: {failure}")
        return "\n".join(out)

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "results": [asdict(r) for r in self.results]}, indent=2)
