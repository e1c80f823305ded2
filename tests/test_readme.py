"""README.md as a newcomer meets it: every snippet runs as written, every claim holds, every link resolves.

* Each ```` ```python ```` block runs on its own in a fresh interpreter, from the repository root,
  exactly as written (a reader pastes one block, not the page). A line ``print(...)  # OUTPUT``
  whose comment looks like printed output (it starts with ``[``, ``(``, a digit, a sign, ``True``,
  ``False`` or ``array(``) claims that output: what the line prints must be it.
* A block may be left unrun only if the line right above it, an HTML comment
  ``<!-- not run: REASON -->``, says so and why (say, a placeholder the reader fills in); the test
  reports it as skipped with that reason, it never passes silently. A block that is run must not
  hold ``...`` placeholders.
* A block that imports an optional framework the machine lacks (PyTorch) is skipped, naming it;
  CI installs every framework first (``.ci/run``), so there every block runs.
* The claims checked against the tools: the quick-start commands are the ones CI runs; the
  frameworks CI installs are the ones the README names; every name in the "What is there" table
  is a public name of poolref; the oracle's rows are what the README says they are; the files and
  commands it names exist.
* Every relative link ``[text](path#anchor)`` names a file of the repository and, with an anchor, a
  heading of that file (GitHub's anchors for Markdown, docutils' ids for reST).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
# a comment that states what the line prints, as opposed to one that explains it
OUTPUT_COMMENT = re.compile(r"^print\((?P<expression>.*)\)\s+# (?P<output>(?:[\[(\d+-]|True|False|array\().*)$")
OPTIONAL_FRAMEWORKS = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "tensorflow": "TensorFlow", "jax": "JAX",
                       "kornia": "kornia"}


def _blocks(language: str, text: str = TEXT) -> list[tuple[int, str, str | None]]:
    """(line number, code, reason it is not run or None) of each fenced block in ``language``."""
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) != language:
            continue
        line = text.count("\n", 0, match.start()) + 1
        above = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(above)
        found.append((line, match.group(2), marker.group(1) if marker else None))
    return found


PYTHON_BLOCKS = _blocks("python")


def test_the_readme_has_python_snippets():
    # the parametrized test below would silently check nothing if the fences changed
    assert len(PYTHON_BLOCKS) >= 3, PYTHON_BLOCKS


def _imported_modules(code: str) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _has_ellipsis(code: str) -> bool:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return any(token.type == tokenize.OP and token.string == "..." for token in tokens)


def _with_output_checks(code: str) -> tuple[str, list[str]]:
    """The block with each ``print(...)  # OUTPUT`` line made to assert its output; the outputs claimed."""
    lines, claimed = [], []
    for line in code.splitlines():
        match = OUTPUT_COMMENT.match(line)
        if match:
            claimed.append(match.group("output"))
            lines.append(f"__readme_says__({match.group('expression')}, {match.group('output').strip()!r})")
        else:
            lines.append(line)
    checker = (
        "def __readme_says__(*values_and_claim):\n"
        "    import io\n"
        "    *values, claim = values_and_claim\n"
        "    out = io.StringIO()\n"
        "    print(*values, file=out)\n"
        "    printed = out.getvalue().strip()\n"
        "    print(printed)\n"
        "    assert ' '.join(printed.split()) == ' '.join(claim.split()), "
        "f'the README says this prints {claim!r}, it prints {printed!r}'\n"
    )
    return checker + "\n".join(lines) + "\n", claimed


@pytest.mark.parametrize("line, code, reason", PYTHON_BLOCKS, ids=[f"README.md:{line}" for line, _, _ in PYTHON_BLOCKS])
def test_readme_snippet_runs_as_written(line, code, reason):
    if reason is not None:
        pytest.skip(f"README.md:{line} is marked not run: {reason}")
    assert not _has_ellipsis(code), f"README.md:{line} holds a `...` placeholder but is not marked <!-- not run: why -->"
    missing = sorted(OPTIONAL_FRAMEWORKS[name] for name in _imported_modules(code) & set(OPTIONAL_FRAMEWORKS)
                     if importlib.util.find_spec(name) is None)
    if missing:
        pytest.skip(f"README.md:{line} needs {', '.join(missing)}, not installed here (CI installs it)")
    program, _ = _with_output_checks(code)
    run = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=_environment())
    assert run.returncode == 0, f"README.md:{line} fails as written:\n{run.stderr[-3000:]}"


def _environment():
    import os

    # this checkout's poolref, whatever the installed one is; no display for matplotlib
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                MPLBACKEND="Agg")


def test_a_placeholder_block_is_run_unless_marked_with_a_reason():
    text = ("Check your kernel:\n\n```python\ncheck(my_kernel, ...)\n```\n\n"
            "<!-- not run: my_kernel stands for your own kernel -->\n```python\ncheck(my_kernel, ...)\n```\n")
    (_, first, first_reason), (_, second, second_reason) = _blocks("python", text)
    assert first_reason is None and _has_ellipsis(first)  # would fail the test: unmarked placeholder
    assert second_reason == "my_kernel stands for your own kernel"  # reported as skipped, with the reason


def test_the_output_check_can_fail():
    # a snippet whose comment claims a wrong output must fail, and a right one pass
    for claim, passes in (("[[ 3.  7. 10.]]", True), ("[[3. 7. 5.]]", False)):
        code = ("import numpy as np, poolref\n"
                "x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])\n"
                f"print(poolref.lp_pool1d(x, 1, 2, 2, ceil_mode=True))  # {claim}\n")
        program, claimed = _with_output_checks(code)
        assert claimed == [claim]
        run = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=_environment())
        assert (run.returncode == 0) == passes, run.stderr


def test_every_output_comment_is_checked():
    # a print whose comment is prose (what it shows) is not a claim; one that reads as output is
    claims = [claim for _, code, reason in PYTHON_BLOCKS if reason is None for claim in _with_output_checks(code)[1]]
    assert len(claims) >= 2, claims


# -- The claims --------------------------------------------------------------------------------------

def _section(title: str) -> str:
    start = TEXT.index(f"\n## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end if end >= 0 else None]


def test_the_quick_start_commands_are_the_ones_ci_runs():
    quick_start = [code for _, code, _ in _blocks("bash") if "poolref check" in code][0]
    commands = [line.strip() for line in quick_start.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    for command in commands:
        assert command in CI, f"the README's quick start {command!r} is not what .ci/run runs"


def test_the_docs_build_command_is_the_one_ci_runs():
    docs = [code for _, code, _ in _blocks("bash") if "sphinx" in code]
    assert docs, "the README shows no docs build command"
    sphinx = re.search(r"python -m sphinx .*", docs[0]).group(0).strip()
    ci_sphinx = re.search(r"python -m sphinx .*", CI).group(0).replace(" -q", "").strip()
    assert sphinx == ci_sphinx, (sphinx, ci_sphinx)


# what .ci/run installs (pip names) -> how the README's CI paragraph names it
CI_FRAMEWORKS = {"torch==2.13.0": "PyTorch 2.13 CPU", "kornia": "kornia", "onnxruntime": "ONNX Runtime",
                 "onnx": "ONNX", "tensorflow-cpu": "TensorFlow CPU", "jax": "JAX", "flax": "Flax"}


def _ci_installs() -> set[str]:
    installed = set()
    for line in CI.splitlines():
        line = line.split("#")[0]
        match = re.search(r"pip install (.*)", line)
        if match and " -e " not in f" {match.group(1)} ":
            installed |= {word for word in match.group(1).split() if not word.startswith("-") and word != "pip"}
    return installed


def test_the_frameworks_ci_installs_are_the_ones_the_readme_names():
    assert _ci_installs() == set(CI_FRAMEWORKS), (
        f".ci/run installs {sorted(_ci_installs())}: update the README's CI paragraph and CI_FRAMEWORKS here")
    paragraph = next(p for p in _section("Documentation").split("\n\n") if "CI (`.ci/run`)" in p)
    paragraph = " ".join(paragraph.split())
    missing = [name for name in CI_FRAMEWORKS.values() if name not in paragraph]
    assert not missing, f"the README's CI paragraph does not say that CI installs {missing}"
    # and that it does so before the quick-start commands, as .ci/run does
    assert CI.index("pip install --quiet torch") < CI.index("pip install -e . && poolref check")
    assert paragraph.index("installs the frameworks") < paragraph.index("quick-start commands")


def test_ci_runs_the_rendered_docs_test_after_the_build_as_the_readme_says():
    assert "tests/test_docs_rendered.py" in _section("Documentation")
    build = CI.index("python -m sphinx")
    assert "tests/test_docs_rendered.py" in CI[build:], ".ci/run does not open the built pages in Chromium"


def _table_names() -> list[tuple[str, str]]:
    """(family, name) of every public name in the "What is there" table, braces expanded (max_pool{1,2,3}d)."""
    table = [line for line in _section("What is there").splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = []
    for row in table:
        family, ops = (cell.strip() for cell in row.split("|")[1:3])
        for code in re.findall(r"`([^`]+)`", ops):
            if not re.fullmatch(r"[\w.{},]+", code):
                continue
            braces = re.search(r"\{([\d,]+)\}", code)
            expanded = [code.replace(braces.group(0), n) for n in braces.group(1).split(",")] if braces else [code]
            names += [(family, name) for name in expanded]
    return names


def _resolve(dotted: str):
    """poolref.<dotted>, importing submodules on the way; None where there is no such name."""
    import poolref

    target = poolref
    for part in dotted.split("."):
        if hasattr(target, part):
            target = getattr(target, part)
            continue
        try:
            target = importlib.import_module(f"{target.__name__}.{part}")
        except ImportError:
            return None
    return target


def test_every_name_in_the_readme_table_exists():
    names = _table_names()
    assert len(names) > 50, names
    arguments = {"count_include_pad", "divisor_override"}  # arguments the table mentions in passing
    # a name is poolref.<name>, or in the row "nn", poolref.nn.<name>
    missing = [name for family, name in names if name not in arguments
               and _resolve(name) is None and _resolve(f"{family}.{name}") is None]
    assert not missing, f"names in the README's table that poolref does not have: {missing}"


def test_the_oracle_rows_are_what_the_readme_says():
    # "Each op is either checked natively, checked by composition, or listed as not covered with the
    # reason (e.g. `ps_roi_pool` in PyTorch without torchvision)"
    quick_start = " ".join(_section("Quick start").split())
    assert "checked natively" in quick_start and "checked by composition" in quick_start
    assert "not covered with the reason (e.g. `ps_roi_pool` in PyTorch without torchvision)" in quick_start
    pytest.importorskip("torch")
    from poolref import oracle

    report = oracle.check("torch", ops=["max_pool2d", "ps_roi_pool"], cases=1)
    kinds = {result.op: result for result in report.results}
    assert kinds["max_pool2d"].kind == "native" and kinds["max_pool2d"].cases > 0
    if importlib.util.find_spec("torchvision") is None:
        assert kinds["ps_roi_pool"].kind == "not covered" and "torchvision" in kinds["ps_roi_pool"].reason
    # "ONNX Runtime runs forward only"
    assert "ONNX Runtime runs forward only" in quick_start


# results files the README names as not yet written, with the words that say so
NOT_YET_WRITTEN = {"benchmarks/results/gpu.md": "no GPU run has been recorded yet"}


def _said_to_be_missing(path: str) -> bool:
    return path in NOT_YET_WRITTEN and NOT_YET_WRITTEN[path] in " ".join(TEXT.split())


def test_the_narrowed_check_the_readme_shows_runs():
    # `poolref check torch --ops max_pool2d --cases 50`, as a reader types it (the full `poolref check`
    # is CI's first quick-start command)
    command = re.search(r"`(poolref check \w+ --ops .*?)`", TEXT).group(1)
    pytest.importorskip(command.split()[2])
    program = "import sys; from poolref.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", program, *command.split()[1:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=_environment())
    assert run.returncode == 0, f"{command} fails:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    assert "max_pool2d" in run.stdout


# the case generator's input classes (poolref.cases.INPUT_CLASSES) -> how the README names them
INPUT_CLASS_NAMES = {"finite": "finite values", "nan": "NaN", "ties": "ties", "inf": "infinities", "float16": "float16",
                     "unbatched": "unbatched", "strided": "strided views", "signed_zero": "signed zeros",
                     "magnitude": "extreme magnitudes", "empty": "empty batches", "integer": "integer inputs",
                     "nonfinite_gradient": "non-finite upstream gradients", "scale_factor": "scale factors",
                     "recompute_scale_factor": "scale factors"}


def test_the_input_classes_are_the_ones_the_readme_lists():
    from poolref.cases import INPUT_CLASSES

    assert set(INPUT_CLASSES) == set(INPUT_CLASS_NAMES), (
        f"the oracle's input classes are {sorted(INPUT_CLASSES)}: update the README's list and INPUT_CLASS_NAMES here")
    quick_start = " ".join(_section("Quick start").split())
    listed = quick_start[quick_start.index("going round the input classes"):]
    listed = listed[:listed.index(")")]
    missing = [name for name in INPUT_CLASS_NAMES.values() if name not in listed]
    assert not missing, f"the README's list of input classes leaves out {missing}"


def test_every_file_the_readme_names_in_code_exists():
    # `tests/test_readme.py`, `benchmarks/bench_window.py`, ...: paths written as code
    paths = {p for p in re.findall(r"`([\w./-]+\.(?:py|md|rst|cu|toml|json))`", TEXT) if "/" in p}
    folders = {p for p in re.findall(r"`([\w.-]+(?:/[\w.-]+)*/)`", TEXT)}
    assert paths, "no file named"
    missing = [p for p in sorted(paths) if not (ROOT / p).exists() and not (ROOT / "benchmarks" / "results" / p).exists()
               and not _said_to_be_missing(p)]
    missing += [p for p in sorted(folders) if not (ROOT / p).is_dir()]
    assert not missing, f"files the README names that the repository does not have: {missing}"


# -- Links --------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    if path.suffix == ".rst":
        from docutils.nodes import make_id

        lines = text.splitlines()
        titles = [lines[k] for k in range(len(lines) - 1)
                  if lines[k].strip() and re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", lines[k + 1].strip())]
        labels = re.findall(r"^\.\. _([\w-]+):$", text, re.MULTILINE)
        return {make_id(t) for t in titles} | set(labels)
    return set()


def _broken_links(text: str, base: Path) -> list[str]:
    broken = []
    for target in LINK.findall(text):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//") or target.startswith("mailto:"):
            continue  # the network is not checked
        path = (base / unquote(parts.path)).resolve() if parts.path else base / README.name
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif parts.fragment and parts.fragment not in _anchors(path):
            broken.append(f"{target}: {path.name} has no heading #{parts.fragment}")
    return broken


def test_every_link_resolves():
    assert LINK.findall(TEXT), "no link found: the pattern is wrong"
    broken = _broken_links(TEXT, ROOT)
    assert not broken, "links of README.md that do not resolve:\n" + "\n".join(broken)


def test_the_link_check_can_fail():
    assert _broken_links("[x](docs/no_such_page.rst)", ROOT) == ["docs/no_such_page.rst: no such file"]
    assert _broken_links("[x](CONTRIBUTING.md#no-such-heading)", ROOT)
    assert _broken_links("[x](#quick-start) [y](#tests)", ROOT) == []
    assert _broken_links("[x](docs/oracle.rst#no-such-section)", ROOT)
