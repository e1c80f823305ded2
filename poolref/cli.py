"""The ``poolref`` command: ``poolref check [FRAMEWORK ...] [--ops ...] [--cases N] [--seed S] [--json PATH]``.

Without a framework it checks every installed one (PyTorch when present) and always runs poolref's
self-checks. Exit status: 0 when everything agrees, 1 on a mismatch, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys

from . import oracle


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolref", description="The reference implementation of pooling.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="cross-check frameworks (and poolref itself) against poolref")
    check.add_argument("frameworks", nargs="*", metavar="FRAMEWORK", help=f"any of {', '.join(oracle.FRAMEWORKS)}")
    check.add_argument("--ops", nargs="+", metavar="OP", help="ops to check (default: all)")
    check.add_argument("--cases", type=int, default=20, help="random cases per op (default 20)")
    check.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    check.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    installed = oracle.available_frameworks()
    frameworks = args.frameworks or installed
    for name in frameworks:
        if name not in oracle.FRAMEWORKS:
            parser.error(f"unknown framework {name!r}; choose from {', '.join(oracle.FRAMEWORKS)}")
        if name not in installed:
            parser.error(f"framework {name!r} is not installed (pip install 'poolref[{name}]')")
    for op in args.ops or ():
        if op not in oracle.OPS:
            parser.error(f"unknown op {op!r}; choose from {', '.join(oracle.OPS)}")
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")
    report = oracle.Report()
    for name in frameworks:
        print(f"checking {name} ...", flush=True)
        report.extend(oracle.check(name, ops=args.ops, cases=args.cases, seed=args.seed))
    print(report.table())
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(report.to_json())
    print("all checks passed" if report.passed else "MISMATCHES FOUND")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
