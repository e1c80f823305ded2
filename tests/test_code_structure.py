"""The code's shape, as a reader meets it: every backward opens with its formulas, no module is too long.

* Every backward function of ``poolref/ops`` (a function named ``*_backward``, or the backward given
  to ``define_function``) has, right above its ``def``, a comment block stating the forward and the
  backward in plain math, a line starting ``# forward`` and a line starting ``# backward``, so that a
  reader sees the formula before the code that computes it (issue 13, item 3).
* No module of ``poolref/`` is much longer than about 600 lines (split by concern instead).

Run as a script to list what is missing::

    python tests/test_code_structure.py

The source is read with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys


PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "poolref"
OPS = PACKAGE / "ops"

#: The most lines a module of poolref/ may have ("about 600": a little room for a docstring line).
MAX_MODULE_LINES = 650

FORWARD_LINE = re.compile(r"#\s*forward\b", re.IGNORECASE)
BACKWARD_LINE = re.compile(r"#\s*backward\b", re.IGNORECASE)


def _backward_names(tree: ast.Module) -> set[str]:
    """Names of the functions passed as the backward (third argument) of ``define_function``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "define_function":
            backward = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "backward"), None)
            if isinstance(backward, ast.Name):
                names.add(backward.id)
    return names


def comment_above(lines: list[str], node: ast.FunctionDef) -> list[str]:
    """The block of comment lines directly above a function's ``def`` (or its first decorator)."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1  # 0-based line of the header
    block = []
    for line in reversed(lines[:first]):
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        block.append(stripped)
    return block[::-1]


def backward_functions() -> list[tuple[pathlib.Path, ast.FunctionDef]]:
    """Every backward function of ``poolref/ops``: named ``*_backward`` or given to ``define_function``."""
    found = []
    for path in sorted(OPS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        by_define = _backward_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (node.name.endswith("_backward") or node.name in by_define):
                found.append((path, node))
    return found


def lacking_formula_comment() -> list[str]:
    """``path:line name`` of every backward function without a ``# forward`` / ``# backward`` comment above it."""
    missing = []
    for path, node in backward_functions():
        block = comment_above(path.read_text().splitlines(), node)
        if not (any(FORWARD_LINE.match(line) for line in block) and any(BACKWARD_LINE.match(line) for line in block)):
            missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return missing


def too_long_modules() -> list[str]:
    """``path: lines`` of every module of poolref/ over the limit (the modules being split aside)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        count = len(path.read_text().splitlines())
        if count > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {count} lines")
    return long


def test_the_search_finds_the_backward_functions():
    # the test below can only fail if the search finds the backwards: the ops it must see
    names = {node.name for _, node in backward_functions()}
    assert {"_max_pool_backward", "_avg_pool_backward", "_grid_sample_backward", "_dynopool_backward",
            "_roi_align_avg_backward", "_conv2d_backward"} <= names
    assert len(names) >= 25


def test_a_backward_without_its_formulas_is_found():
    # plant the defect: a backward whose comment names no formula must be reported
    source = "x = 1\n# speed trick: blocks\ndef _op_backward(saved, g):\n    return g\n"
    node = ast.parse(source).body[1]
    block = comment_above(source.splitlines(), node)
    assert block == ["# speed trick: blocks"]
    assert not any(FORWARD_LINE.match(line) for line in block)


def test_every_backward_opens_with_its_forward_and_backward_formulas():
    missing = lacking_formula_comment()
    assert not missing, "backward functions without a '# forward ...' / '# backward ...' comment right above them:\n" + "\n".join(missing)


def test_no_module_is_much_longer_than_600_lines():
    long = too_long_modules()
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" + "\n".join(long)


if __name__ == "__main__":
    problems = lacking_formula_comment()
    print("\n".join(problems) if problems else "every backward opens with its formulas")
    long = too_long_modules()
    print("\n".join(long) if long else f"no module over {MAX_MODULE_LINES} lines")
    sys.exit(1 if problems or long else 0)


SECTION = re.compile(r"\s*(Parameters|Returns|Yields|Raises|Notes|Examples|See Also|References|Attributes)\s*")


def headings_without_a_blank_line_above() -> list[str]:
    """numpydoc section headings (a name over a dashed line) glued to the paragraph above: numpydoc then
    reads the heading as text, and a doctest's ``|x|`` below it as an undefined substitution (the docs
    build fails)."""
    glued = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().split("\n")
        for i in range(1, len(lines) - 1):
            if SECTION.fullmatch(lines[i]) and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]) and lines[i - 1].strip():
                glued.append(f"{path.relative_to(PACKAGE.parent)}:{i + 1} {lines[i].strip()}")
    return glued


def test_every_docstring_section_heading_has_a_blank_line_above():
    assert not headings_without_a_blank_line_above(), headings_without_a_blank_line_above()
