"""The PyTorch adapter: every mapping passes, and planted bugs in torch's functions are caught, each
with a minimal reproducer that fails while the bug is in place and passes without it."""

import math
import subprocess
import sys

import numpy
import pytest

from poolref import oracle

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_every_torch_mapping_passes():
    report = oracle.check("torch", cases=3, seed=1)
    assert report.passed, report.table()
    ops = {r.op for r in report.results}
    assert {"max_pool3d", "avg_pool1d", "lp_pool2d", "max_unpool2d", "adaptive_max_pool3d", "global_lp_pool",
            "fractional_max_pool3d", "grid_sample", "interpolate", "conv2d"} <= ops
    assert all(r.cases >= 3 and r.gradients for r in report.checked)


def test_torch_check_covers_the_worked_examples():
    report = oracle.check("torch", ops=["avg_pool2d", "max_pool2d", "lp_pool1d"], cases=0)
    assert report.passed and [r.cases for r in report.results] == [2, 1, 2]  # ties + NaN; ceil avg; two Lp


# --------------------------------------------------------------------------------------------------
# Planted bugs: a wrapped torch function with a deliberate error
# --------------------------------------------------------------------------------------------------
def _divisor_off_at_the_border(real):
    def avg_pool2d(input, *args, **kwargs):
        y = real(input, *args, **kwargs)
        scale = torch.ones_like(y)
        scale[..., -1] = 0.9  # the last column of windows divides by the wrong count
        return y * scale

    return avg_pool2d


def _off_by_one_window(real):
    def max_pool2d(input, *args, **kwargs):
        # every window reads one column further right than it should
        return real(torch.roll(input, shifts=-1, dims=-1), *args, **kwargs)

    return max_pool2d


def _ties_broken_the_other_way(real):
    def max_pool2d(input, *args, **kwargs):
        # nudge later elements up by far less than any tolerance: among equal values the LAST now wins
        ramp = torch.arange(input.numel(), dtype=input.dtype).reshape(input.shape) / input.numel()
        values, indices = real(input.detach() + 1e-13 * ramp, *args, **kwargs)
        flat = input.flatten(2)
        picked = flat.gather(2, indices.flatten(2)).reshape(values.shape)  # exact values, gradient to the new winner
        return (picked, indices) if kwargs.get("return_indices") else picked

    return max_pool2d


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, factor):
        ctx.factor = factor
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def _gradient_scaled_by_the_kernel_size(real):
    def avg_pool2d(input, kernel_size, *args, **kwargs):
        y = real(input, kernel_size, *args, **kwargs)
        k = kernel_size if isinstance(kernel_size, int) else kernel_size
        volume = k * k if isinstance(k, int) else math.prod(k)
        return _ScaleGradient.apply(y, float(volume))

    return avg_pool2d


BUGS = {
    "divisor off at the border": ("avg_pool2d", _divisor_off_at_the_border, "output"),
    "off-by-one window": ("max_pool2d", _off_by_one_window, "output"),
    "tie broken the other way": ("max_pool2d", _ties_broken_the_other_way, "indices"),
    "gradient scaled by the kernel size": ("avg_pool2d", _gradient_scaled_by_the_kernel_size, "gradient to x"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_planted_bug_is_caught_with_a_reproducer(bug, monkeypatch):
    name, plant, problem = BUGS[bug]
    monkeypatch.setattr(F, name, plant(getattr(F, name)))
    report = oracle.check("torch", ops=[name], cases=5)
    assert not report.passed
    failures = report.failures
    assert any(p.startswith(problem) for f in failures for p in f.problems), report.table()
    text = report.table()
    assert "reproducer (runnable Python)" in text and f"F.{name}(x_t" in text
    failure = next(f for f in failures if any(p.startswith(problem) for p in f.problems))
    # minimal: one image, one channel
    assert "x.shape=(1, 1," in failure.case
    # runnable: with the bug in place it fails on the same comparison ...
    with pytest.raises(AssertionError, match=problem):
        exec(compile(failure.reproducer, "<reproducer>", "exec"), {})
    # ... and it exercised the worked tie example for the tie bug (random inputs have no ties)
    if bug == "tie broken the other way":
        assert "ties go to the first" in failure.case


def test_the_reproducer_runs_as_a_script_and_passes_without_the_bug(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "avg_pool2d", _divisor_off_at_the_border(F.avg_pool2d))
    report = oracle.check("torch", ops=["avg_pool2d"], cases=2)
    script = tmp_path / "reproducer.py"
    script.write_text(report.failures[0].reproducer)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # a fresh process has the real torch: both sides agree
    assert "torch and poolref agree on this case" in out.stdout


def test_check_refuses_unknown_ops_and_frameworks():
    with pytest.raises(ValueError, match="unknown op"):
        oracle.check("torch", ops=["fancy_pool"])
    with pytest.raises(ValueError, match="framework must be one of"):
        oracle.check("caffe")
    with pytest.raises(ValueError, match="cases must be"):
        oracle.check("torch", cases=-1)


def test_aliases_name_the_same_adapter():
    assert oracle.load_adapter("pytorch") is oracle.load_adapter("torch")
    assert numpy.all([m.op in oracle.OPS for m in oracle.load_adapter("torch").MAPPINGS])


def test_every_mapping_has_a_reproducer_that_runs(reproducers_run):
    assert reproducers_run("torch") == len(oracle.load_adapter("torch").MAPPINGS)


# --------------------------------------------------------------------------------------------------
# The ops PyTorch lacks, checked against compositions of its own ops
# --------------------------------------------------------------------------------------------------
from conftest import COMPOSED_OPS, assert_agrees_but_for_poolref_defects, assert_every_public_op_is_a_row  # noqa: E402


def test_every_public_op_is_checked_or_says_why():
    assert_every_public_op_is_a_row("torch")


# poolref warns (a RuntimeWarning, an error under pytest) on some non-finite inputs: a defect of its
# own, listed with the others in conftest.POOLREF_DEFECTS
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("seed", [0, 1])
def test_the_compositions_agree_with_poolref_but_for_its_listed_defects(seed):
    report = oracle.check("torch", ops=list(COMPOSED_OPS), cases=14, seed=seed)
    assert [r.op for r in report.results] == list(COMPOSED_OPS) and {r.kind for r in report.results} == {"composition"}
    assert all(r.gradients for r in report.results)
    assert_agrees_but_for_poolref_defects(report)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # poolref's own warnings on non-finite input (conftest)
def test_a_refused_class_of_a_composition_says_why():
    report = oracle.check("torch", ops=["soft_pool2d", "dynopool2d"], cases=14)
    soft, dynopool = report.results
    assert "subtracts the upstream infinity from itself" in soft.refused["nonfinite_gradient"]
    assert "rounding" in dynopool.refused["ties"] and "reads only the pixels it weighs" in dynopool.refused["nan"]


def test_a_planted_bug_in_a_composition_is_caught(monkeypatch):
    real = F.unfold

    def unfold(input, *args, **kwargs):  # SoftPool's windows read one column too far right
        return real(torch.roll(input, shifts=-1, dims=-1), *args, **kwargs)

    monkeypatch.setattr(F, "unfold", unfold)
    report = oracle.check("torch", ops=["soft_pool2d"], cases=4)
    assert not report.passed and any(p.startswith("output") for f in report.failures for p in f.problems)
    with pytest.raises(AssertionError, match="output"):
        exec(compile(report.failures[0].reproducer, "<reproducer>", "exec"), {})


def test_every_composition_has_a_reproducer_that_runs(reproducers_run):
    composed = [m for m in oracle.load_adapter("torch").MAPPINGS if m.kind == "composition"]
    assert composed and reproducers_run("torch", kind="composition") == len(composed)


# --------------------------------------------------------------------------------------------------
# kornia's blur pools: native rows with kornia, compositions of torch's ops without it
# --------------------------------------------------------------------------------------------------
def test_blur_pools_are_kornias_rows_where_kornia_loads():
    from poolref.oracle import torch_adapter

    rows = [m for m in torch_adapter.MAPPINGS if m.op in ("blur_pool2d", "max_blur_pool2d")]
    assert [m.op for m in rows] == ["blur_pool2d", "max_blur_pool2d"]
    if torch_adapter.HAS_KORNIA:
        assert all(m.kind == "native" and "kornia" in m.call and "kornia" in torch_adapter.version() for m in rows)
    else:
        assert all(m.kind == "composition" for m in rows)


def test_blur_pool_compositions_pass_where_kornia_is_missing(monkeypatch):
    from poolref.oracle import engine, torch_adapter

    monkeypatch.setattr(torch_adapter, "HAS_KORNIA", False)
    for mapping in torch_adapter._blur_pools():
        plan = engine.plan_cases(mapping, 14, seed=2)
        assert mapping.kind == "composition" and "import kornia" not in mapping.code(plan.cases[0])
        result = engine.check_mapping("torch", torch_adapter.IMPORTS, mapping, plan, seed=2)
        assert result.passed and "unbatched" in plan.counts, [f.problems for f in result.failures]


# --------------------------------------------------------------------------------------------------
# What PyTorch does, as the adapter's known deviations declare it (torch 2.13, CPU)
# --------------------------------------------------------------------------------------------------
def test_adaptive_max_pool_float16_gradient_is_a_float16_sequential_scatter():
    # TORCH_HALF_ADAPTIVE_MAX_GRADIENT's model must be PyTorch's gradient to the bit, where float32
    # accumulation (poolref's) is not
    from poolref.cases.case import Case
    from poolref.oracle.defects import TORCH_HALF_ADAPTIVE_MAX_GRADIENT
    from poolref.oracle.engine import run_poolref

    rng = numpy.random.default_rng(2)
    differs = 0
    for trial in range(30):
        n = 1 + trial % 3
        x = (rng.standard_normal((1, 2) + (3,) * n) * 4).astype(numpy.float16)
        size = tuple(int(v) for v in rng.integers(4, 8, n))
        case = Case(f"adaptive_max_pool{n}d", {"x": x}, dict(output_size=size))
        ours, g = run_poolref(case)
        t = torch.from_numpy(x).requires_grad_()
        getattr(torch.nn.functional, case.op)(t, size).backward(torch.from_numpy(g))
        model = TORCH_HALF_ADAPTIVE_MAX_GRADIENT.model(case, ours, g).grads["x"]
        numpy.testing.assert_array_equal(model, t.grad.numpy())
        differs += not numpy.array_equal(ours.grads["x"], t.grad.numpy())
    assert differs > 0  # the cases do show the float16 accumulation
    assert oracle.check("torch", ops=["adaptive_max_pool3d"], cases=40, seed=12).passed  # failed before the model


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's own note on a case
def test_float32_conv2d_weight_gradient_leaves_out_the_padding():
    # TORCH_CONV_FLOAT32_PADDING_GRADIENT: PyTorch's float32 weight gradient is, case by case, either
    # poolref's (the padding's zeros multiplied: NaN under an infinite upstream gradient) or exactly the
    # model's (the padding left out), grouped or not; found at seed 17 (one group), seed 50 (two groups)
    from poolref.cases.case import Case
    from poolref.oracle.defects import TORCH_CONV_FLOAT32_PADDING_GRADIENT
    from poolref.oracle.engine import run_poolref

    def same(a, b):
        return (numpy.array_equal(numpy.isnan(a), numpy.isnan(b)) and numpy.array_equal(numpy.isinf(a), numpy.isinf(b))
                and numpy.array_equal(a[numpy.isinf(a)], b[numpy.isinf(b)])
                and numpy.allclose(a[numpy.isfinite(a)], b[numpy.isfinite(b)], rtol=1e-4, atol=1e-4))

    rng = numpy.random.default_rng(3)
    modelled = {False: 0, True: 0}  # cases the model was needed for, ungrouped and grouped
    for trial in range(60):
        groups, per_group = 1 + trial % 3, 1 + (trial // 3) % 2
        x = rng.standard_normal((1 + trial % 2, groups * per_group, 6, 5)).astype(numpy.float32)
        c_out = groups if groups > 1 else 1 + trial % 2  # grouped: one output channel a group (depthwise)
        weight = rng.standard_normal((c_out, per_group, 3, 3)).astype(numpy.float32)
        kwargs = dict(stride=(1 + trial % 2, 1), padding=(1, 1 + (trial // 12) % 2), dilation=(1, 1 + (trial // 6) % 2),
                      groups=groups)
        case = Case("conv2d", {"x": x, "weight": weight}, kwargs, positional=("x", "weight"), grad_inputs=("x", "weight"),
                    input_class="nonfinite_gradient")
        ours, g = run_poolref(case)
        g = g.copy()
        g.reshape(-1)[rng.choice(g.size, 2, replace=False)] = [numpy.inf, -numpy.inf]
        ours, _ = run_poolref(case, cotangent=g)
        t_x, t_w = torch.from_numpy(x).requires_grad_(), torch.from_numpy(weight).requires_grad_()
        torch.nn.functional.conv2d(t_x, t_w, None, **kwargs).backward(torch.from_numpy(g))
        got = t_w.grad.numpy()
        model = TORCH_CONV_FLOAT32_PADDING_GRADIENT.model(case, ours, g).grads["weight"]
        assert same(model, got) or same(ours.grads["weight"], got), kwargs
        modelled[groups > 1] += not same(ours.grads["weight"], got)
    assert modelled[False] > 0 and modelled[True] > 0  # the cases show the defect, grouped and not
    assert oracle.check("torch", ops=["conv2d"], cases=40, seed=17).passed  # failed before the model
    assert oracle.check("torch", ops=["conv2d"], cases=300, seed=50).passed  # failed before groups were modelled
