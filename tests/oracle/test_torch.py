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


# --------------------------------------------------------------------------------------------------
# The adapter's reasons and the known defects' texts, each held to torch 2.13 (CPU) as it states them
# --------------------------------------------------------------------------------------------------
def _raises(call, error=Exception, match=None):
    """The exception ``call()`` raises (the test fails if it returns)."""
    with pytest.raises(error, match=match) as caught:
        call()
    return caught.value


def test_pooling_takes_symmetric_int_padding_at_most_half_the_kernel_and_dilation_for_max_only():
    # _window_express's reasons: no SAME/VALID, no (begin, end) pairs, no dilation or padding where
    # PyTorch has none, no divisor_override in 1-D, padding at most half the (dilated) kernel
    x = torch.zeros(1, 1, 4, 4)
    _raises(lambda: F.max_pool2d(x, 3, 1, "same"), TypeError, "must be tuple of ints, not str")
    _raises(lambda: F.avg_pool2d(x, 3, 1, "valid"), TypeError, "must be tuple of ints, not str")
    _raises(lambda: F.max_pool2d(x, 3, 1, ((1, 0), (1, 0))), TypeError, "found element of type tuple")
    _raises(lambda: F.avg_pool2d(x, 3, 1, 0, dilation=2), TypeError, "unexpected keyword argument 'dilation'")
    _raises(lambda: F.lp_pool2d(x, 2.0, 3, 1, dilation=2), TypeError, "unexpected keyword argument 'dilation'")
    _raises(lambda: F.lp_pool2d(x, 2.0, 3, 1, padding=1), TypeError, "unexpected keyword argument 'padding'")
    _raises(lambda: F.avg_pool1d(x[0], 2, divisor_override=3), TypeError, "unexpected keyword argument 'divisor_override'")
    _raises(lambda: F.max_pool2d(x, 3, 1, 2), RuntimeError, "pad should be at most half of effective kernel size")
    # half the kernel itself, not the dilated one (whose half, 2.5, the first check allows)
    _raises(lambda: F.max_pool2d(x, 3, 1, 2, dilation=2), RuntimeError, "pad should be smaller than or equal to half of kernel size")
    assert F.max_pool2d(x, 3, 1, 1, dilation=2).shape == (1, 1, 2, 2)
    assert F.avg_pool2d(x, 3, 1, 1, divisor_override=3).shape == (1, 1, 4, 4)


def test_avg_pool3d_alone_refuses_inputs_smaller_than_the_kernel():
    # avg_pool3d's (and lp_pool3d's) skip: kernel 3 on a 2-long axis is refused even with padding 1,
    # which makes room for it; avg_pool1d/2d and max_pool3d take the same input
    for shape in ((2, 2, 2), (2, 4, 4)):
        x = torch.zeros((1, 1) + shape)
        _raises(lambda: F.avg_pool3d(x, 3, 1, 1), RuntimeError, "smaller than kernel size")
        _raises(lambda: F.lp_pool3d(x, 2.0, 3, 1), RuntimeError, "smaller than kernel size")
        assert F.max_pool3d(x, 3, 1, 1).shape == (1, 1) + shape
    assert F.avg_pool1d(torch.zeros(1, 1, 2), 3, 1, 1).shape == (1, 1, 2)
    assert F.avg_pool2d(torch.zeros(1, 1, 2, 2), 3, 1, 1).shape == (1, 1, 2, 2)


def test_lp_pool_formula_has_no_absolute_value():
    # the Lp skip "negative random inputs": x^p with no |x|, so odd and fractional p go signed or NaN
    x = torch.tensor([[[-1.0, -2.0, 3.0, -4.0]]], dtype=torch.float64)
    assert F.lp_pool1d(x, 1.0, 2, 2).tolist() == [[[-3.0, -1.0]]]
    assert F.lp_pool1d(x, 2.0, 2, 2).tolist() == [[[math.sqrt(5.0), 5.0]]]
    assert torch.isnan(F.lp_pool1d(x, 3.0, 2, 2)).all() and torch.isnan(F.lp_pool1d(x, 1.5, 2, 2)).all()


def test_max_unpool_declares_repeated_indices_nondeterministic():
    # max_unpool's skip "the order of writes is unspecified": torch says so itself (MaxUnpool's note;
    # under torch.use_deterministic_algorithms its CPU kernel raises)
    values, indices = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]), torch.tensor([[[0, 0, 1, 0]]])
    assert "nondeterministically when the input indices has repeat values" in torch.nn.MaxUnpool1d.__doc__
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        _raises(lambda: F.max_unpool1d(values, indices, 2), RuntimeError, "does not have a deterministic implementation")
    finally:
        torch.use_deterministic_algorithms(before)


def test_cpu_kernels_take_the_dtypes_and_layouts_the_adapter_declares():
    # the comment above POOLING: float16 everywhere but avg_pool3d/lp_pool3d; integers in max_pool2d/3d,
    # in max_pool1d with indices only, never in adaptive pooling; unbatched input not in interpolate or grid_sample
    def x(n, dtype):
        return torch.ones((1, 1) + (4,) * n, dtype=dtype)

    for n in (1, 2, 3):
        for name in (f"max_pool{n}d", f"adaptive_max_pool{n}d", f"adaptive_avg_pool{n}d") + ((f"avg_pool{n}d",) if n < 3 else ()):
            assert getattr(F, name)(x(n, torch.float16), 2).dtype == torch.float16
        for dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            assert F.max_pool1d(x(1, dtype), 2, return_indices=True)[0].dtype == dtype
            if n > 1:
                assert getattr(F, f"max_pool{n}d")(x(n, dtype), 2).dtype == dtype
            _raises(lambda: getattr(F, f"adaptive_max_pool{n}d")(x(n, dtype), 2), NotImplementedError)
    _raises(lambda: F.avg_pool3d(x(3, torch.float16), 2), NotImplementedError, "'Half'")
    _raises(lambda: F.lp_pool3d(x(3, torch.float16), 2.0, 2), NotImplementedError, "'Half'")
    _raises(lambda: F.max_pool1d(x(1, torch.int64), 2), NotImplementedError, "max_pool1d_impl")
    assert F.max_pool2d(torch.ones(1, 4, 4), 2).shape == (1, 2, 2) and F.conv2d(torch.ones(1, 4, 4), torch.ones(1, 1, 2, 2)).shape == (1, 3, 3)
    _raises(lambda: F.interpolate(torch.ones(1, 4, 4), size=(2, 2), mode="bilinear"), ValueError)
    _raises(lambda: F.grid_sample(torch.ones(1, 4, 4), torch.zeros(2, 2, 2), align_corners=False), RuntimeError)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_antialiased_interpolate_has_no_float16_kernel(mode):
    # ANTIALIAS_FLOAT16: the forward raises where a size changes, the backward always
    x = torch.rand(1, 1, 4, 4, dtype=torch.float16, requires_grad=True)
    _raises(lambda: F.interpolate(x, size=(3, 3), mode=mode, antialias=True), NotImplementedError,
            "compute_index_ranges_weights\" not implemented for 'Half'")
    y = F.interpolate(x, size=(4, 4), mode=mode, antialias=True)  # no size changes: the forward runs
    _raises(lambda: y.backward(torch.ones_like(y)), NotImplementedError, f"upsample_{mode}2d_aa_backward_cpu\" not implemented for 'Half'")


@pytest.mark.filterwarnings("ignore::UserWarning")  # grid_sample's note on align_corners
def test_grid_sample_computes_float16_coordinates_in_float16():
    # GRID_SAMPLE_FLOAT16: with align_corners the coordinate of grid g on 3 columns is g + 1, and
    # 1.250732421875 rounds to 1.2509765625 in float16, moving the output by a quarter of a unit
    from poolref.cases import draw_case
    from poolref.oracle import torch_adapter

    x, grid = torch.tensor([[[[0.0, 0.0, 1000.0]]]]), torch.tensor([[[[0.25 + 3 * 2.0**-12, 0.0]]]])
    got = {dtype: F.grid_sample(x.to(dtype), grid.to(dtype), align_corners=True).item() for dtype in (torch.float16, torch.float32)}
    assert got == {torch.float16: 251.0, torch.float32: 250.732421875}
    # over the oracle's own float16 draws: 1.8e-2 from float64 on the same inputs, float32 within 9.3e-4
    mapping = next(m for m in torch_adapter.MAPPINGS if m.op == "grid_sample")
    rng = numpy.random.default_rng(0)
    worst = {torch.float16: 0.0, torch.float32: 0.0}
    for _ in range(300):
        case = draw_case(rng, "grid_sample", mapping.space, "float16")
        if case.kwargs["mode"] == "nearest" or not case.x.size:
            continue
        x, grid = torch.from_numpy(case.x), torch.from_numpy(case.arrays["grid"])
        exact = F.grid_sample(x.double(), grid.double(), **case.kwargs)
        for dtype in worst:
            y = F.grid_sample(x.to(dtype), grid.to(dtype), **case.kwargs).half().double()
            worst[dtype] = max(worst[dtype], (y - exact).abs().max().item())
    assert 1.7e-2 < worst[torch.float16] < 1.9e-2 and 9e-4 < worst[torch.float32] < 9.5e-4, worst


def test_grid_sample_multiplies_a_neighbour_of_weight_zero():
    # DYNOPOOL_READS: at an exact pixel coordinate bilinear grid_sample still reads the next pixel, with
    # weight 0: an infinity there gives NaN, and an infinite upstream gradient sends it 0 * inf = NaN
    for value in (math.inf, math.nan):
        x = torch.tensor([[[[1.0, value, 3.0]]]], dtype=torch.float64, requires_grad=True)
        grid = torch.tensor([[[[-1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)  # columns 0 and 1 exactly
        y = F.grid_sample(x, grid, align_corners=True, padding_mode="border")
        y.backward(torch.tensor([[[[math.inf, 1.0]]]], dtype=torch.float64))
        assert math.isnan(y[0, 0, 0, 0].item())  # 1 * 1 + 0 * value
        assert math.isinf(x.grad[0, 0, 0, 0].item()) and math.isnan(x.grad[0, 0, 0, 1].item()) and x.grad[0, 0, 0, 2].item() == 0.0


def _float16_draws(op, seed, count):
    """The oracle's first ``count`` float16 cases of a composition, drawn as ``poolref check`` draws them."""
    from poolref.cases import draw_case
    from poolref.oracle import torch_adapter

    mapping = next(m for m in torch_adapter.MAPPINGS if m.op == op)
    rng = numpy.random.default_rng(seed)
    return [draw_case(rng, op, mapping.space, "float16") for _ in range(count)]


def _both_outputs(case):
    """poolref's output of a float16 case and its torch composition's."""
    from poolref.oracle.engine import run_poolref
    from poolref.testing import torch_compositions

    function = getattr(torch_compositions, _COMPOSITIONS[case.op])
    return run_poolref(case, gradients=False)[0].values, function(torch, torch.from_numpy(case.x), **case.kwargs).numpy()


_COMPOSITIONS = {"mixed_pool2d": "mixed_by_max_and_avg_pool", "lse_pool": "lse_by_expm1_log1p"}


def test_mixed_pool_composition_rounds_each_term_to_float16():
    # MIXED_FLOAT16: the composition is, bit for bit, round(round(lam * max) + round((1 - lam) * avg)),
    # each product taken in float32 from torch's own float16 max and average; poolref rounds once
    from poolref.testing.torch_compositions import mixed_by_max_and_avg_pool

    rng = numpy.random.default_rng(5)
    for _ in range(40):
        x = torch.from_numpy((rng.standard_normal((1, 2, 6, 5)) * 8).astype(numpy.float16))
        lam = float(rng.uniform(0.05, 0.95))
        got = mixed_by_max_and_avg_pool(torch, x, 3, 2, 1, lam=lam).numpy()
        biggest, mean = F.max_pool2d(x, 3, 2, 1).float().numpy(), F.avg_pool2d(x, 3, 2, 1).float().numpy()
        terms = (numpy.float32(lam) * biggest).astype(numpy.float16), (numpy.float32(1 - lam) * mean).astype(numpy.float16)
        numpy.testing.assert_array_equal(got, (terms[0].astype(numpy.float32) + terms[1]).astype(numpy.float16))
    # the numbers the reason gives, from the oracle's draws (seed 2): 1 ulp of 33.2, and where the terms cancel
    draws = _float16_draws("mixed_pool2d", 2, 342)
    ours, theirs = _both_outputs(draws[232])
    gap = numpy.abs(ours.astype(numpy.float64) - theirs)
    spot = numpy.unravel_index(numpy.argmax(gap), gap.shape)
    assert (ours[spot], theirs[spot], gap[spot]) == (numpy.float16(33.2), numpy.float16(33.16), 2.0**-5)  # 1 ulp
    ours, theirs = _both_outputs(draws[341])
    assert numpy.float16(0.00293) in theirs[ours == numpy.float16(0.0025)]  # 17 % apart


def test_lse_pool_composition_in_float16_is_up_to_2e3_from_poolref():
    # LSE_FLOAT16: over 432 draws of seed 0, 0.2725 against poolref's 0.2705 (8 ulps) at most
    worst = (0.0,)
    for case in _float16_draws("lse_pool", 0, 432):
        ours, theirs = _both_outputs(case)
        if ours.size:
            gap = numpy.abs(ours.astype(numpy.float64) - theirs)
            spot = numpy.unravel_index(numpy.argmax(gap), gap.shape)
            worst = max(worst, (gap[spot], ours[spot], theirs[spot]))
    assert worst == (0.001953125, numpy.float16(0.2705), numpy.float16(0.2725)), worst


def test_kornia_blur_pools_refuse_unbatched_input_unless_channels_equal_height():
    # KORNIA_UNBATCHED: max_blur_pool2d checks the shape; blur_pool2d reads (B, C, H, W) from it and
    # runs F.conv2d with C groups, which fails unless the unbatched input's C equals its H
    kornia_filters = pytest.importorskip("kornia.filters")
    x = torch.rand(2, 6, 6, dtype=torch.float64)
    _raises(lambda: kornia_filters.max_blur_pool2d(x, 3), Exception, "expected 4 dimensions, got 3")
    _raises(lambda: kornia_filters.blur_pool2d(x, 3), RuntimeError, "expected input.* to have 6 channels, but got 2")
    square = torch.rand(6, 6, 6, dtype=torch.float64)
    assert torch.equal(kornia_filters.blur_pool2d(square, 3), kornia_filters.blur_pool2d(square[None], 3)[0])
    _raises(lambda: kornia_filters.max_blur_pool2d(square, 3), Exception, "expected 4 dimensions, got 3")


def test_compositions_chain_rules_make_nan_where_the_reasons_say():
    # the chain-rule reasons (poolref.oracle.artefacts) as torch's autograd runs the compositions
    from poolref.testing import torch_compositions as composed

    def pullback(y, *inputs, upstream=math.inf):
        y.backward(torch.full_like(y, upstream))
        return [t.grad for t in inputs]

    def leaf(values):
        return torch.tensor(values, dtype=torch.float64, requires_grad=True)

    x = leaf([[[[0.0, 1.0], [2.0, 3.0]]]])  # SOFTMAX_CHAIN_RULE: NaN for every tap
    assert torch.isnan(pullback(composed.soft_pool_by_unfold(torch, x, 2), x)[0]).all()
    for value in (math.inf, -math.inf):  # SOFTPOOL_LIMITS: inf - inf, 0 * -inf
        assert torch.isnan(composed.soft_pool_by_unfold(torch, torch.tensor([[[[0.0, 1.0], [2.0, value]]]]), 2)).all()
    x, p = leaf([[[1.0, 2.0, 3.0]]]), leaf(3.0)  # GEM_CHAIN_RULE: d/dp is NaN, x's gradient is not
    grad_x, grad_p = pullback(composed.gem_by_pow_mean(torch, x, p), x, p)
    assert torch.isnan(grad_p) and torch.isinf(grad_x).all()
    for dtype, zero_below, positive_at in ((torch.float32, -16.7, -16.6), (torch.float64, -36.8, -36.7)):  # EXPM1_CHAIN_RULE
        derivative = {}
        for t in (zero_below, positive_at):
            a = torch.tensor(t, dtype=dtype, requires_grad=True)
            torch.expm1(a).backward()
            derivative[t] = a.grad.item()
        assert derivative[zero_below] == 0.0 and derivative[positive_at] > 0.0, derivative
    x = leaf([[[0.0, -40.0]]])
    assert math.isnan(pullback(composed.lse_by_expm1_log1p(torch, x), x)[0][0, 0, 1].item())
    x = leaf([[[[1.0, 2.0], [3.0, 4.0]]]])  # STOCHASTIC_CHAIN_RULE: inf - inf
    assert torch.isnan(pullback(composed.stochastic_expectation_by_unfold(torch, x, 2), x)[0]).all()
    # DEFORM_CONV_CHAIN_RULE: the offset's gradient is NaN where the slopes (1 along w, 3 along h) are finite
    x, offset = leaf(numpy.arange(9.0).reshape(1, 1, 3, 3).tolist()), leaf(numpy.full((1, 2, 3, 3), 0.3).tolist())
    y = composed.deform_conv2d_by_gather(torch, x, offset, torch.ones(1, 1, 1, 1, dtype=torch.float64))
    upstream = torch.ones_like(y)
    upstream[0, 0, 1, 1] = math.inf
    y.backward(upstream)
    assert torch.isnan(offset.grad[0, :, 1, 1]).all() and torch.isfinite(offset.grad[0, :, 0, 0]).all()


def test_lp_pool_at_p_one_sends_zero_from_a_nan_window_as_sign_of_nan_is_zero():
    # TORCH_LP_POOL[0]: relu's backward at NaN passes the gradient; sign(NaN) = 0 is what stops it
    x = torch.tensor([[[1.0, math.nan, 2.0, 3.0]]], dtype=torch.float64, requires_grad=True)
    y = F.lp_pool1d(x, 1.0, 2, 2)
    y.backward(torch.ones_like(y))
    assert x.grad.tolist() == [[[0.0, 0.0, 1.0, 1.0]]]
    assert torch.sign(torch.tensor(math.nan)).item() == 0.0
    a = torch.tensor([math.nan], requires_grad=True)
    torch.relu(a).backward(torch.ones(1))
    assert a.grad.item() == 1.0
    x.grad = None
    F.lp_pool1d(x, 1.0, 2, 2).backward(torch.tensor([[[math.inf, 1.0]]], dtype=torch.float64))
    assert torch.isnan(x.grad[..., :2]).all()  # 0 * inf: the model's 0 holds for finite upstream gradients only


def test_lp_pool_gives_an_unread_nonfinite_cell_a_nan_gradient_above_p_one():
    # TORCH_LP_POOL[1]: kernel 2, stride 2 on 5 cells leaves the last unread; its true gradient is 0
    def unread_gradient(p, value):
        x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, value]]], dtype=torch.float64, requires_grad=True)
        y = F.lp_pool1d(x, p, 2, 2)
        y.backward(torch.ones_like(y))
        return x.grad[0, 0, 4].item()

    for value in (math.nan, math.inf, -math.inf):
        assert unread_gradient(1.0, value) == 0.0
        assert all(math.isnan(unread_gradient(p, value)) for p in (1.5, 2.0, 3.0))
    assert unread_gradient(0.5, math.inf) == 0.0 and math.isnan(unread_gradient(0.5, -math.inf))  # p < 1: not drawn


@pytest.mark.parametrize("mode, copied", [("bilinear", 0.98514851), ("bicubic", 0.98973816)])
def test_antialiased_interpolate_copies_an_axis_but_resamples_its_gradient(mode, copied):
    # TORCH_ANTIALIAS_COPIED_AXIS: the sizes stay (1, 2), the forward copies, the backward does not
    x = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64, requires_grad=True)
    y = F.interpolate(x, scale_factor=(1.0, 1.01), mode=mode, antialias=True)
    y.backward(torch.ones_like(y))
    assert y.tolist() == [[[[1.0, 2.0]]]]
    assert x.grad[0, 0, 0, 1].item() == pytest.approx(copied, abs=1e-8)


def test_bicubic_backward_copies_the_gradient_when_no_size_changes():
    # TORCH_BICUBIC_COPIED_GRADIENT: scale 1.1 on 4 columns keeps the size but resamples
    x = torch.arange(4.0, dtype=torch.float64).reshape(1, 1, 1, 4).requires_grad_()
    y = F.interpolate(x, scale_factor=(1.0, 1.1), mode="bicubic")
    y.backward(torch.tensor([[[[0.0, 1.0, 0.0, 0.0]]]], dtype=torch.float64))
    numpy.testing.assert_allclose(y.detach().numpy().ravel(), [-0.031, 0.809, 1.725, 2.753], atol=5e-4)
    assert x.grad.tolist() == [[[[0.0, 1.0, 0.0, 0.0]]]]


def test_antialiased_resize_to_width_one_writes_its_first_row_everywhere():
    # TORCH_ANTIALIAS_WIDTH_ONE, bilinear and bicubic alike; with width 2 each row is its own
    from poolref.cases.case import Case
    from poolref.oracle.defects import TORCH_ANTIALIAS_WIDTH_ONE
    from poolref.oracle.engine import run_poolref

    column = torch.arange(6.0, dtype=torch.float64).reshape(1, 1, 6, 1)
    for mode, rows in (("bilinear", [1.25, 3.75]), ("bicubic", [1.1315789, 3.8684211])):
        width_one = F.interpolate(column, size=(2, 1), mode=mode, antialias=True).numpy().ravel()
        width_two = F.interpolate(column.repeat(1, 1, 1, 2), size=(2, 2), mode=mode, antialias=True).numpy()[0, 0, :, 0]
        numpy.testing.assert_allclose(width_one, [rows[0], rows[0]], rtol=1e-7)
        numpy.testing.assert_allclose(width_two, rows, rtol=1e-7)
    # the model (first row everywhere, the gradient poolref's) is torch's answer on random cases of both modes
    rng = numpy.random.default_rng(0)
    checked = 0
    for trial in range(24):
        height, out_height = (int(v) for v in rng.integers(2, 9, 2))
        if height == out_height:
            continue
        x = rng.standard_normal((1, 2, height, int(rng.integers(1, 5))))
        case = Case("interpolate", {"x": x}, dict(size=(out_height, 1), mode=("bilinear", "bicubic")[trial % 2],
                                                   antialias=True, align_corners=bool(trial // 2 % 2)))
        assert TORCH_ANTIALIAS_WIDTH_ONE.applies(case)
        ours, g = run_poolref(case)
        model = TORCH_ANTIALIAS_WIDTH_ONE.model(case, ours, g)
        t = torch.from_numpy(x).requires_grad_()
        y = F.interpolate(t, **case.kwargs)
        y.backward(torch.from_numpy(g))
        numpy.testing.assert_allclose(y.detach().numpy(), model.values, rtol=1e-10, atol=1e-12)
        numpy.testing.assert_allclose(t.grad.numpy(), ours.grads["x"], rtol=1e-10, atol=1e-12)
        checked += 1
    assert checked > 15


def test_adaptive_max_pool_float16_gradient_rounds_after_each_upstream_entry():
    # TORCH_HALF_ADAPTIVE_MAX_GRADIENT's example: four outputs share the one input; 2048 + 1 is 2048 in float16
    from poolref.cases.case import Case
    from poolref.oracle.engine import run_poolref

    upstream = numpy.array([[[2048.0, 1.0, 1.0, 1.0]]], dtype=numpy.float16)
    x = torch.ones(1, 1, 1, dtype=torch.float16, requires_grad=True)
    F.adaptive_max_pool1d(x, 4).backward(torch.from_numpy(upstream))
    ours, _ = run_poolref(Case("adaptive_max_pool1d", {"x": numpy.ones((1, 1, 1), numpy.float16)}, dict(output_size=4)),
                          cotangent=upstream)
    assert (x.grad.item(), ours.grads["x"].item()) == (2048.0, 2052.0)


def test_float32_conv2d_weight_gradient_example_leaves_out_the_padding():
    # TORCH_CONV_FLOAT32_PADDING_GRADIENT's example (this machine's oneDNN kernel): the weight's columns 0
    # and 2 read only padding (dilation 2 on 3 columns), so float64 multiplies an infinite upstream by the
    # padding's 0 there (NaN), float32 leaves those six taps at 0.0
    rng = numpy.random.default_rng(0)
    x, weight = rng.standard_normal((2, 1, 8, 3)), rng.standard_normal((1, 1, 3, 3))
    grads = {}
    for dtype in (torch.float32, torch.float64):
        t_x, t_w = torch.tensor(x, dtype=dtype, requires_grad=True), torch.tensor(weight, dtype=dtype, requires_grad=True)
        y = F.conv2d(t_x, t_w, None, stride=(1, 2), padding=1, dilation=2)
        upstream = torch.ones_like(y)
        upstream[0, 0, 2, 0] = math.inf
        y.backward(upstream)
        grads[dtype] = t_w.grad[0, 0]
    assert grads[torch.float32][:, 0::2].tolist() == [[0.0, 0.0]] * 3 and torch.isnan(grads[torch.float64][:, 0::2]).all()
    assert grads[torch.float32][:, 1].tolist() == grads[torch.float64][:, 1].tolist() == [-math.inf] * 3


def test_nearest_backward_takes_the_shortcuts_its_1d_and_3d_forward_does_not():
    # TORCH_NEAREST_SHORTCUT_GRADIENT: PyTorch's 1-D and 3-D nearest forward reads by the scale (as
    # poolref does), its backward by the shortcuts (a copy at O = L, o // 2 at O = 2L); the model must
    # be PyTorch's gradient to the bit, NaN and infinities included, and apply only where they differ
    from poolref.cases.case import Case
    from poolref.oracle.compare import compare_arrays
    from poolref.oracle.defects import TORCH_NEAREST_SHORTCUT_GRADIENT as defect
    from poolref.oracle.engine import run_poolref

    rng = numpy.random.default_rng(8)
    modelled = 0
    for trial in range(60):
        n = (1, 3)[trial % 2]
        shape = (1, 2) + tuple(int(v) for v in rng.integers(2, 6, n))
        factors = tuple(float(rng.choice([1.1, 1.3, 2.2, 2.4, 1.7])) for _ in range(n))
        x = rng.standard_normal(shape)
        case = Case("interpolate", {"x": x}, dict(scale_factor=factors, mode="nearest"), input_class="nonfinite_gradient")
        ours, g = run_poolref(case)
        g = g.copy()
        g.reshape(-1)[rng.choice(g.size, 2, replace=False)] = [numpy.inf, numpy.nan]
        ours, _ = run_poolref(case, cotangent=g)
        t = torch.from_numpy(x).requires_grad_()
        y = torch.nn.functional.interpolate(t, scale_factor=factors, mode="nearest")
        numpy.testing.assert_array_equal(y.detach().numpy(), ours.values)  # the forwards agree
        y.backward(torch.from_numpy(g))
        got = t.grad.numpy()
        expected = defect.model(case, ours, g).grads["x"] if defect.applies(case) else ours.grads["x"]
        modelled += defect.applies(case)
        assert compare_arrays(got, expected, "gradient", gradient=True).ok  # NaN, inf exactly; 1e-10 relative
    assert modelled > 10
    two_d = Case("interpolate", {"x": numpy.zeros((1, 1, 4, 4))}, dict(scale_factor=(2.2, 1.1), mode="nearest"))
    assert not defect.applies(two_d)  # the 2-D forward takes the shortcuts too


def test_float16_adaptive_avg_pool_gradient_accumulates_in_float16():
    # TORCH_HALF_ADAPTIVE_AVG_GRADIENT (seed 28: interpolate area, (1, 1, 2, 4, 1) -> (5, 6, 8), 0.0066
    # apart; seed 37: adaptive_avg_pool2d, (1, 1, 1, 4) -> (9, 9)): the model must be PyTorch's float16
    # gradient to the bit, in 1-D, 2-D and 3-D, batched and unbatched, through adaptive_avg_pool and
    # interpolate's area mode
    from poolref.cases.case import Case
    from poolref.oracle.defects import TORCH_HALF_ADAPTIVE_AVG_GRADIENT as defect
    from poolref.oracle.engine import run_poolref

    functional = torch.nn.functional
    rng = numpy.random.default_rng(28)
    differs = 0
    for trial in range(60):
        n = 1 + trial % 3
        lead = ((1, 1), (2, 3), (3,))[(trial // 3) % 3]
        x = rng.standard_normal(lead + tuple(int(v) for v in rng.integers(1, 5, n))).astype(numpy.float16)
        out = tuple(int(v) for v in rng.integers(1, 9, n))
        area = trial % 2 == 0 and len(lead) == 2
        case = (Case("interpolate", {"x": x}, dict(size=out, mode="area")) if area
                else Case(f"adaptive_avg_pool{n}d", {"x": x}, dict(output_size=out)))
        assert defect.applies(case)
        ours, g = run_poolref(case)
        t = torch.from_numpy(x).requires_grad_()
        y = functional.interpolate(t, size=out, mode="area") if area else getattr(functional, f"adaptive_avg_pool{n}d")(t, out)
        y.backward(torch.from_numpy(g))
        numpy.testing.assert_array_equal(defect.model(case, ours, g).grads["x"], t.grad.numpy())
        differs += not numpy.array_equal(ours.grads["x"], t.grad.numpy())
    assert differs > 20  # the cases show the float16 accumulation
    assert not defect.applies(Case("adaptive_avg_pool2d", {"x": numpy.zeros((1, 1, 2, 2))}, dict(output_size=3)))  # float64
    assert oracle.check("torch", ops=["interpolate"], cases=40, seed=28).passed  # failed before the model
    assert oracle.check("torch", ops=["adaptive_avg_pool2d"], cases=40, seed=37).passed


def test_the_scatter_models_take_an_empty_batch():
    # reshape(planes, -1) cannot resolve a batch of 0: the models spell their read counts out
    from poolref.cases.case import Case
    from poolref.oracle import defects
    from poolref.oracle.engine import run_poolref

    half = numpy.zeros((0, 2, 3, 3, 3), numpy.float16)
    for defect, case in ((defects.TORCH_HALF_ADAPTIVE_AVG_GRADIENT, Case("adaptive_avg_pool3d", {"x": half}, dict(output_size=4))),
                         (defects.TORCH_HALF_ADAPTIVE_MAX_GRADIENT, Case("adaptive_max_pool3d", {"x": half}, dict(output_size=4))),
                         (defects.TORCH_NEAREST_SHORTCUT_GRADIENT,
                          Case("interpolate", {"x": numpy.zeros((0, 2, 4))}, dict(scale_factor=2.2, mode="nearest")))):
        ours, g = run_poolref(case)
        assert defect.model(case, ours, g).grads["x"].shape == case.x.shape
