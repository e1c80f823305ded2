"""Run every tutorial script (tutorials/plot_N_*.py) from top to bottom, as the docs build does.

The tutorials check their own claims with ``assert`` (a bug the oracle must catch, a network that
must learn, two RoI Align conventions that must agree up to half a pixel), so running them is a test.
``POOLREF_TUTORIAL_QUICK=1`` shrinks their training budgets and hypothesis example counts: each runs
in a few seconds here. The docs build (sphinx-gallery) runs them with the full budgets.
"""

import runpy
import time
import warnings
from pathlib import Path

import pytest

from figure_legends import legends_over_data

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("plot_*.py"))


def test_the_tutorials_are_found():
    # the parametrized test below would silently run nothing if the folder moved
    assert len(TUTORIALS) >= 5, TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_runs(path, monkeypatch, tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")  # no display: plt.show() draws nothing, the figures are closed below
    import matplotlib.pyplot as plt

    monkeypatch.setenv("POOLREF_TUTORIAL_QUICK", "1")
    monkeypatch.chdir(tmp_path)  # anything a tutorial writes lands in a temporary folder
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # plt.show() on the Agg backend warns that it cannot show anything: expected here
            warnings.filterwarnings("ignore", message=".*non-interactive.*", category=UserWarning)
            runpy.run_path(str(path), run_name="__main__")
        # the figures the docs show: their legends keep off the data (tests/figure_legends.py)
        legends = [f"figure {n}: {problem}" for n in plt.get_fignums() for problem in legends_over_data(plt.figure(n))]
    finally:
        plt.close("all")
    assert not legends, f"{path.name}:\n" + "\n".join(legends)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{path.name}: {seconds:.1f} s (quick mode)")

