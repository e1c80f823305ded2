"""The figures of the docs keep their legends off the data.

Each ``.. plot:: FILE FUNCTION`` directive of the pages (docs/**/*.rst) runs a function of
docs/figures/FILE at build time; here each is run the same way (working directory docs/figures, the
plot directive's rcParams) and every legend of the figures it draws must cover no bar, point, line,
image or label (tests/figure_legends.py). A legend inside the axes over the last bar, or over the
label of a target line, is what this catches.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from figure_legends import legends_over_data

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
PLOT_DIRECTIVE = re.compile(r"^\.\. plot:: (\S+\.py) (\w+)\s*$", re.MULTILINE)
PAGES = [p for p in DOCS.rglob("*.rst")
         if not {"_build", "generated", "tutorials"} & set(p.relative_to(DOCS).parts)]
FIGURE_CALLS = sorted({match.groups() for page in PAGES for match in PLOT_DIRECTIVE.finditer(page.read_text(encoding="utf-8"))})


def test_the_figure_directives_are_found():
    # the parametrized test below would silently check nothing if the directive's form changed
    assert len(FIGURE_CALLS) >= 5, FIGURE_CALLS
    assert ("benchmarks.py", "benchmark_ratios") in FIGURE_CALLS


@pytest.mark.parametrize("script, function", FIGURE_CALLS, ids=[f"{s[:-3]}.{f}" for s, f in FIGURE_CALLS])
def test_figure_legends_keep_off_the_data(script, function, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.syspath_prepend(str(ROOT))  # the figure scripts import poolref from this checkout
    monkeypatch.chdir(FIGURES)  # as the plot directive runs them
    plt.close("all")
    rcparams = {"figure.dpi": 110, "font.size": 9, "savefig.bbox": "tight"}  # docs/conf.py: plot_rcparams
    try:
        with matplotlib.rc_context(rcparams):
            namespace = runpy.run_path(str(FIGURES / script), run_name="figure")
            namespace[function]()
            problems = [f"figure {number}: {problem}" for number in plt.get_fignums()
                        for problem in legends_over_data(plt.figure(number))]
    finally:
        plt.close("all")
    assert not problems, f"{script} {function}:\n" + "\n".join(problems)


def test_a_legend_over_a_bar_is_caught():
    # the check must be able to fail: a legend placed over the data, as the benchmarks figure had it
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2))
    try:
        ax.barh([0, 1, 2], [3.5, 3.7, 3.9], label="ratio")
        ax.text(2.0, 2.2, " target: at most 2", va="top")
        ax.set_xlim(0, 4)
        ax.legend(loc="lower right")
        problems = legends_over_data(fig)
        assert any("bar/patch" in p for p in problems), problems
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside the axes
        assert legends_over_data(fig) == []
        ax.get_legend().remove()
        ax.plot([0, 4], [1.0, 1.0], label="a line under the legend, no vertex inside it")
        ax.legend(loc="center")
        assert any(" covers line " in p for p in legends_over_data(fig)), legends_over_data(fig)
    finally:
        plt.close(fig)
