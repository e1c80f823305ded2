"""Sphinx configuration for poolref's documentation.

Build (warnings are errors)::

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs docs/_build/html

What the build generates (all git-ignored, see ``docs/.gitignore``):

* autosummary writes one page per public name into ``docs/generated/``;
* sphinx-gallery **runs** every ``tutorials/plot_N_*.py`` script and writes the rendered tutorials,
  with their printed output and figures, into ``docs/tutorials/``; a tutorial that raises fails the
  build. ``POOLREF_TUTORIAL_QUICK=1`` in the environment shrinks their training budgets;
* the ``.. plot::`` directive (matplotlib) runs the figure scripts of ``docs/figures/`` while the
  pages are read, so every figure is drawn from poolref's own geometry at build time;
* the Benchmarks page reads ``benchmarks/results/*.md``.

Doctests (the ``>>>`` examples of the pages and the docstrings) are run by pytest
(``--doctest-modules --doctest-glob=*.rst``), not by Sphinx; pyproject.toml's ``addopts`` keep pytest
out of the folders the build writes (importing a tutorial would run it) and of the figure scripts.
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
sys.path.insert(0, str(DOCS / "_ext"))  # the build's own helper modules

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
    # MathJax 3.2.2 served from the built site (_static/mathjax/), not from a CDN: the formulas render
    # offline. The extension sets mathjax_path and copies the files when the build has finished.
    "sphinx-mathjax-offline",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]
# No sphinx.ext.intersphinx: the build must not need the network.

# sg_execution_times.rst: left in docs/ by builds from before write_computation_times was turned off
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "figures", "sg_execution_times.rst", "tutorials/sg_execution_times.rst"]
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

# -- Figures: drawn by code at build time -----------------------------------------------------------
# ``.. plot:: window.py windows_over_grid`` runs docs/figures/window.py and calls the function
plot_basedir = str(DOCS / "figures")
plot_formats = [("png", 110)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_include_source = False
plot_rcparams = {"figure.dpi": 110, "font.size": 9, "savefig.bbox": "tight"}
plot_apply_rcparams = True  # also for the figure functions, not only for inline code

# -- Tutorials: sphinx-gallery runs tutorials/plot_N_*.py during the build ---------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "tutorials"),
    "gallery_dirs": "tutorials",  # rendered into docs/tutorials/ (git-ignored)
    "filename_pattern": r"/plot_",  # every plot_N_*.py is executed
    "within_subsection_order": "FileNameSortKey",  # plot_1_ ... plot_6_: the reading order
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "reset_modules": ("matplotlib",),
    "image_scrapers": ("tight_figures",),  # docs/_ext/tight_figures.py: figures saved with bbox_inches="tight"
    "show_signature": False,
    # no sg_execution_times pages: they load jQuery and DataTables from CDNs, and every tutorial page
    # already states its own running time
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
        # every top-level page in the top bar: none hidden under a "More" drop-down (index.rst's
        # toctrees give them short titles so that the ten fit)
        "header_links_before_dropdown": 10,
        "navbar_align": "left",  # the links start next to the title, leaving them the width of the bar
        "navbar_persistent": ["search-button"],  # the search as an icon (Ctrl+K), not a wide field
    }
except ImportError:  # the docs extra installs it; alabaster ships with Sphinx
    html_theme = "alabaster"
html_title = f"poolref {release}"
# the flat pages have no section navigation to show in the left sidebar
html_sidebars = {
    page: []
    for page in ("index", "getting_started", "concepts", "conventions", "oracle", "benchmarks", "atlas", "dynopool")
}
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # long code lines wrap instead of being cut off
html_show_sourcelink = False

# -- Benchmark results ---------------------------------------------------------------------------------
# benchmarks.rst holds comment lines ``.. benchmark-results: NAME.md``; at build time each is replaced by
# the results that the benchmark scripts wrote to benchmarks/results/NAME.md (``--write``), or by a note
# saying that none has been recorded and how to produce it.
RESULTS_DIR = ROOT / "benchmarks" / "results"
BENCHMARK_MARKER = re.compile(r"^\.\. benchmark-results: (\S+)$", re.MULTILINE)
# how to produce each results file, for the note shown while it is missing
BENCHMARK_COMMANDS = {
    "cpu.md": "python benchmarks/bench_window.py --write",
    "cpu_sampling.md": "python benchmarks/bench_sampling.py --write",
    "cpu_batch.md": "python benchmarks/bench_batch.py --write",
    "cpu_region.md": "python benchmarks/bench_region.py --write",
    "cpu_dynopool.md": "python benchmarks/bench_dynopool.py --write",
}


def _markdown_results_to_rst(text: str) -> str | None:
    """Turn a benchmark's Markdown (a paragraph, a bullet list, a pipe table) into reST.

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
    cell_text = lambda cell: "\\-" if cell == "-" else cell  # noqa: E731  (a bare "-" would open a bullet list)
    for row in table:
        out.append(f"   * - {cell_text(row[0])}")
        out.extend(f"     - {cell_text(cell)}" for cell in row[1:])
    return "\n".join(out) + "\n"


def _benchmark_section(name: str) -> str:
    path = RESULTS_DIR / name
    if not path.is_file():
        if name == "gpu.md":
            return (
                ".. note::\n\n"
                "   **No GPU run has been recorded.** ``benchmarks/results/gpu.md`` does not exist in this\n"
                "   checkout: no DynOPool benchmark has been run on a GPU yet, so there are no GPU\n"
                "   timings to show. When that file is written it appears here, with the device named.\n"
            )
        command = BENCHMARK_COMMANDS.get(name, "the benchmark script with ``--write``")
        return (
            ".. note::\n\n"
            f"   No results have been recorded in ``benchmarks/results/{name}`` in this checkout yet. Run\n"
            f"   ``{command}`` to measure them on your machine; they are shown here.\n"
        )
    text = path.read_text()
    rst = _markdown_results_to_rst(text)
    if rst is None:
        return "::\n\n" + "\n".join("   " + line for line in text.splitlines()) + "\n"
    return rst


def _insert_benchmark_results(app, docname, source):
    if docname == "benchmarks":
        source[0] = BENCHMARK_MARKER.sub(lambda match: _benchmark_section(match.group(1)), source[0])


def _always_reread_benchmarks(app, env, added, changed, removed):
    # the results file is not a Sphinx source: re-read the page every build so new numbers show
    # nor are the planted bugs of the oracle page: re-read it too
    return [name for name in ("benchmarks", "oracle") if name in env.found_docs]


# -- The oracle's catch rate ----------------------------------------------------------------------------
# oracle.rst holds the line ``.. mutation-catch-rate::``; at build time it is replaced by a table of the
# planted framework bugs of poolref.oracle.mutants, each hunted with the default check of its op.
CATCH_RATE_MARKER = re.compile(r"^\.\. mutation-catch-rate::$", re.MULTILINE)


def _catch_rate_section() -> str:
    from poolref import oracle
    from poolref.oracle.mutants import MUTANTS, hunt

    installed = set(oracle.available_frameworks())
    rows, caught, hunted = [], 0, 0
    for mutant in MUTANTS:
        if mutant.framework not in installed:
            rows.append((mutant.name, mutant.rule, "not run: " + mutant.framework + " is not installed here"))
            continue
        result = hunt(mutant)
        hunted += 1
        caught += result.caught
        verdict = ("caught by " + ", ".join(result.classes)) if result.caught else "**MISSED**"
        rows.append((mutant.name, mutant.rule, verdict))
    lines = [f"**{caught} of {hunted}** planted bugs caught by the default check "
             f"({len(MUTANTS)} in the suite, over {len({m.op for m in MUTANTS})} ops).", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 45 20 35", "",
             "   * - planted bug", "     - rule", "     - the default check"]
    for name, rule, verdict in rows:
        lines += [f"   * - {name}", f"     - {rule}", f"     - {verdict}"]
    return "\n".join(lines) + "\n"


def _insert_catch_rate(app, docname, source):
    if docname == "oracle" and CATCH_RATE_MARKER.search(source[0]):
        source[0] = CATCH_RATE_MARKER.sub(lambda match: _catch_rate_section(), source[0])


# -- Docstrings: a star in a numpydoc type ------------------------------------------------------------
# poolref's docstrings write shapes as ``x : array, shape (N, C, *spatial)``, which reads well in
# help() but is an unclosed emphasis to reST. Escape such stars in the type part of parameter lines
# (outside ``literals``) before numpydoc parses the docstring.
_PARAMETER_LINE = re.compile(r"^(\s*[\w*][\w, *]* : )(.+)$")
_BARE_STAR = re.compile(r"(?<![\\*\w])\*(?=[A-Za-z_])")


def _escape_stars_in_types(app, what, name, obj, options, lines):
    for k, line in enumerate(lines):
        match = _PARAMETER_LINE.match(line)
        if match:
            parts = match.group(2).split("``")  # odd parts are inside ``literals``: leave them
            parts[::2] = [_BARE_STAR.sub(r"\\*", part) for part in parts[::2]]
            lines[k] = match.group(1) + "``".join(parts)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_stars_in_types, priority=400)  # before numpydoc (500)
    app.connect("source-read", _insert_benchmark_results)
    app.connect("source-read", _insert_catch_rate)
    app.connect("env-get-outdated", _always_reread_benchmarks)
