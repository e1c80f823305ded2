"""Sphinx configuration for poolref's documentation.

Build (warnings are errors)::

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs docs/_build/html

autosummary writes one page per public name into ``docs/generated/`` (git-ignored). Doctests are run
by pytest (``--doctest-modules``), not by Sphinx.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# document this checkout even when poolref is not installed
sys.path.insert(0, str(ROOT))

import poolref  # noqa: E402

# -- Project -----------------------------------------------------------------------------------------
project = "poolref"
author = "the poolref authors"
copyright = "the poolref authors"
version = release = poolref.__version__

# -- General -----------------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
# No sphinx.ext.intersphinx: the build must not need the network.

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
root_doc = "index"
default_role = "literal"  # `x` in prose renders as code, as in the docstrings' ``x``

autosummary_generate = True  # pages into docs/generated/, listed by api.rst's :toctree: generated
autosummary_imported_members = False
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # the docstrings say the types; signatures stay as readable as the code

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# numpydoc's docstring validation is off in a normal build; POOLREF_DOCS_VALIDATE=1 turns on the checks
# that find real gaps (no docstring, parameters missing, unknown or misspelt, examples missing) and
# reports them as warnings:
#     POOLREF_DOCS_VALIDATE=1 python -m sphinx --keep-going -b html docs docs/_build/validate
if os.environ.get("POOLREF_DOCS_VALIDATE"):
    numpydoc_validation_checks = {"GL08", "PR01", "PR02", "PR10", "SS01", "EX01"}
    # properties made with property(lambda ...) crash numpydoc 1.11's source-line lookup
    numpydoc_validation_exclude = {r"\.Tensor\.(shape|dtype|ndim|size)$"}

# -- HTML --------------------------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
    }
except ImportError:  # the docs extra installs it; alabaster ships with Sphinx
    html_theme = "alabaster"
html_title = f"poolref {release}"
# the flat pages have no section navigation to show in the left sidebar
html_sidebars = {page: [] for page in ("index", "concepts", "conventions", "benchmarks")}
html_static_path: list[str] = []
html_show_sourcelink = False

# -- Benchmark results ---------------------------------------------------------------------------------
# benchmarks.rst holds the comment line below; at build time it is replaced by the results that
# ``python benchmarks/bench_window.py --write`` wrote, or by a note saying how to produce them.
BENCHMARK_MARKER = ".. benchmark-results"
BENCHMARK_RESULTS = ROOT / "benchmarks" / "results" / "cpu.md"


def _markdown_results_to_rst(text: str) -> str | None:
    """Turn bench_window.py's Markdown (a paragraph, a bullet list, a pipe table) into reST.

    Returns None when the file has no pipe table (then it is shown verbatim).
    """
    out, table = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):  # skip the |---| rule
                table.append(cells)
            continue
        out.append(re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", line))
    if not table:
        return None
    out += ["", ".. list-table::", "   :header-rows: 1", ""]
    for row in table:
        out.append(f"   * - {row[0]}")
        out.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(out) + "\n"


def _benchmark_section() -> str:
    if not BENCHMARK_RESULTS.is_file():
        return (
            ".. note::\n\n"
            "   No results have been recorded in this checkout yet. Run\n"
            "   ``python benchmarks/bench_window.py --write`` to measure them on your machine; they are\n"
            "   written to ``benchmarks/results/cpu.md`` and shown here.\n"
        )
    text = BENCHMARK_RESULTS.read_text()
    rst = _markdown_results_to_rst(text)
    if rst is None:
        return "::\n\n" + "\n".join("   " + line for line in text.splitlines()) + "\n"
    return rst


def _insert_benchmark_results(app, docname, source):
    if docname == "benchmarks":
        source[0] = source[0].replace(BENCHMARK_MARKER + "\n", _benchmark_section())


def _always_reread_benchmarks(app, env, added, changed, removed):
    # the results file is not a Sphinx source: re-read the page every build so new numbers show
    return ["benchmarks"] if "benchmarks" in env.found_docs else []


def setup(app):
    app.connect("source-read", _insert_benchmark_results)
    app.connect("env-get-outdated", _always_reread_benchmarks)
