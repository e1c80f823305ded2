"""The ONNX Runtime adapter: every mapping passes, a planted bug is caught, and the differences the
adapter declares (and the atlas shows) are what ONNX Runtime really does."""

import math

import numpy
import pytest

import poolref
from poolref import oracle

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402

from poolref.oracle import onnxruntime_adapter  # noqa: E402
from poolref.oracle.onnxruntime_adapter import run_node  # noqa: E402


def _max_pool(x, **attributes):
    node = helper.make_node("MaxPool", ["X"], ["Y", "I"], **attributes)
    return run_node(node, {"X": x}, {"Y": x.dtype, "I": numpy.int64})


def test_every_onnxruntime_mapping_passes():
    report = oracle.check("onnxruntime", cases=4, seed=2)
    assert report.passed, report.table()
    assert {"max_pool3d", "avg_pool1d", "lp_pool2d", "max_unpool3d", "global_lp_pool", "roi_align", "roi_pool",
            "interpolate", "grid_sample", "conv2d"} <= {r.op for r in report.results}
    assert not any(r.gradients for r in report.checked)  # an inference engine: outputs only


def test_a_planted_bug_in_average_pool_is_caught(monkeypatch):
    real = onnxruntime_adapter.run_node

    def divisor_off_at_the_border(node, feeds, outputs, opset=onnxruntime_adapter.OPSET):
        results = real(node, feeds, outputs, opset)
        if node.op_type == "AveragePool":
            results[0] = results[0].copy()
            results[0][..., -1] *= numpy.float32(0.9)
        return results

    monkeypatch.setattr(onnxruntime_adapter, "run_node", divisor_off_at_the_border)
    report = oracle.check("onnxruntime", ops=["avg_pool2d"], cases=4)
    assert not report.passed
    failure = report.failures[0]
    assert failure.problems[0].startswith("output") and "x.shape=(1, 1," in failure.case
    assert "onnx.helper.make_node('AveragePool'" in failure.reproducer
    with pytest.raises(AssertionError, match="output"):
        exec(compile(failure.reproducer, "<reproducer>", "exec"), {})


# --------------------------------------------------------------------------------------------------
# What ONNX Runtime does, as the adapter declares it (ONNX Runtime 1.32)
# --------------------------------------------------------------------------------------------------
def test_max_pool_keeps_a_nan_only_when_it_comes_first():
    later = numpy.array([[[[1.0, numpy.nan, 3.0], [numpy.nan, 2.0, 0.0]]]])
    y, i = _max_pool(later, kernel_shape=[2, 3])
    assert y.item() == 3.0 and i.item() == 2  # the NaNs are skipped
    first = numpy.array([[[[numpy.nan, 1.0, 3.0], [0.0, 2.0, 0.0]]]])
    y, i = _max_pool(first, kernel_shape=[2, 3])
    assert numpy.isnan(y.item()) and i.item() == 0
    # poolref's "onnx" running max is ONNX Runtime's (poolref/_running_max.py): same values and indices
    for x, (value, index) in ((later, (3.0, 2)), (first, (numpy.nan, 0))):
        y, i = poolref.max_pool2d(x, (2, 3), convention="onnx", return_indices=True)
        numpy.testing.assert_array_equal(y.ravel(), [value])
        assert i.item() == index


def test_roi_align_max_folds_each_sampling_point_then_the_points():
    from helpers import NAN_FIRST_CORNER_BOX as boxes, NAN_FIRST_CORNER_X as x

    node = helper.make_node("RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode="max", output_height=2,
                            output_width=2, sampling_ratio=2, spatial_scale=1.0, coordinate_transformation_mode="half_pixel")
    y, = run_node(node, {"X": x, "rois": numpy.ascontiguousarray(boxes[:, 1:]), "batch_indices": boxes[:, 0].astype(numpy.int64)},
                  {"Y": x.dtype})
    assert y[0, 0, 0, 1] == 0.37716615000907855
    numpy.testing.assert_array_equal(y, poolref.roi_align(x, boxes, (2, 2), 1.0, 2, True, mode="max", convention="onnx"))


def _resize_case(rng, trial, x, mode, factors):
    """An interpolate case through ``scale_factor`` (odd trials; None where a factor leaves no output)
    or ``size``, half the time with align_corners, and ONNX Runtime's Resize of it."""
    n = x.ndim - 2
    aligned = trial % 4 >= 2
    if trial % 2:  # through scales, which half_pixel coordinates then use
        scales = tuple(float(f) for f in rng.choice(factors, n))
        if any(int(L * f) < 1 for L, f in zip(x.shape[2:], scales)):
            return None, None
        kwargs, inputs = dict(scale_factor=scales), ["X", "", "scales"]
        feed = {"X": x, "scales": numpy.array([1, 1, *scales], dtype=numpy.float32)}
    else:
        kwargs, inputs = dict(size=tuple(int(v) for v in rng.integers(1, 10, n))), ["X", "", "", "sizes"]
        feed = {"X": x, "sizes": numpy.array(list(x.shape[:2]) + list(kwargs["size"]), dtype=numpy.int64)}
    attributes = dict(mode="linear") if mode != "bicubic" else dict(mode="cubic", cubic_coeff_a=-0.75, exclude_outside=0)
    node = helper.make_node("Resize", inputs, ["Y"], coordinate_transformation_mode=("half_pixel", "align_corners")[aligned],
                            **attributes)
    y, = run_node(node, feed, {"Y": x.dtype})
    return dict(kwargs, mode=mode, align_corners=aligned), y


def test_linear_resize_model_is_onnxruntimes_coordinates_and_corner_sum():
    # ORT_RESIZE_COORDINATES: (o + 0.5) / s - 0.5 (align_corners: o (L - 1) / (O - 1)) in float32 and
    # the 2^n corners weighted by products (3 -> 9 puts output 1 on pixel 0 exactly, weight 0 on pixel 1,
    # where PyTorch's weight is 1.5e-8, so infinities meet other zero weights); ORT_RESIZE_ROWS_SPREAD:
    # (N, C, L) as one volume. The model must be ORT to the bit, NaN included.
    from poolref.cases.case import Case
    from poolref.oracle.defects import ORT_RESIZE_COORDINATES, ORT_RESIZE_ROWS_SPREAD
    from poolref.oracle.engine import Results

    rng = numpy.random.default_rng(5)
    for trial in range(120):
        n = 1 + trial % 3
        shape = tuple(int(v) for v in rng.integers(1, 4, 2)) + tuple(int(v) for v in rng.integers(1, 6, n))
        x = rng.standard_normal(shape).astype(numpy.float32)
        x[rng.random(shape) < 0.3] = numpy.inf
        x[rng.random(shape) < 0.2] = -numpy.inf
        kwargs, y = _resize_case(rng, trial, x, ("linear", "bilinear", "trilinear")[n - 1], [0.5, 0.75, 1.25, 1.5, 2.0, 3.0])
        if kwargs is None:
            continue
        case = Case("interpolate", {"x": x}, kwargs)
        defect = ORT_RESIZE_ROWS_SPREAD if n == 1 else ORT_RESIZE_COORDINATES
        assert defect.applies(case) == (not numpy.isfinite(x).all())
        model = defect.model(case, Results(None, None, {}), None).values
        numpy.testing.assert_array_equal(y, model)
    assert oracle.check("onnxruntime", ops=["interpolate"], cases=40, seed=13).passed  # failed before the model


def test_cubic_resize_model_is_onnxruntimes_coordinates_and_copy():
    # ORT_CUBIC_RESIZE_COORDINATES: (o + 0.5) / s - 0.5 (align_corners: o (L - 1) / (O - 1)) in float32,
    # Keys' coefficients in float32, rows of four pixels then four rows, and a copy
    # where no size changes (7 -> 1 reads taps 1-4 where PyTorch reads 2-5; found at seed 23). The
    # model must be ORT to the bit.
    from poolref.cases.case import Case
    from poolref.oracle.defects import ORT_CUBIC_RESIZE_COORDINATES
    from poolref.oracle.engine import Results

    rng = numpy.random.default_rng(6)
    differs = 0
    for trial in range(160):
        shape = (1, 2) + tuple(int(v) for v in rng.integers(1, 9, 2))
        x = rng.standard_normal(shape).astype(numpy.float32)
        if trial % 3:
            x[rng.random(shape) < 0.15] = (numpy.nan, numpy.inf)[trial % 3 - 1]
            x[rng.random(shape) < 0.1] = -numpy.inf
        # scales of 1.25 on a length of 2 keep the size: ONNX Runtime copies
        kwargs, y = _resize_case(rng, trial, x, "bicubic", [0.5, 1.0, 1.25, 1.5, 2.0, 3.0])
        if kwargs is None:
            continue
        case = Case("interpolate", {"x": x}, kwargs)
        assert ORT_CUBIC_RESIZE_COORDINATES.applies(case) == (not numpy.isfinite(x).all() or y.shape == x.shape)
        model = ORT_CUBIC_RESIZE_COORDINATES.model(case, Results(None, None, {}), None).values
        numpy.testing.assert_array_equal(y, model)
        ours = poolref.interpolate(x, **kwargs)
        differs += not numpy.array_equal(numpy.isnan(ours), numpy.isnan(y))
    assert differs > 0  # the cases show ONNX Runtime's own NaN pattern
    assert oracle.check("onnxruntime", ops=["interpolate"], cases=40, seed=23).passed  # failed before the model


def test_same_padding_goes_negative_when_the_stride_exceeds_the_window():
    x = numpy.array([[[0.0, 1.0, 2.0]]])
    y, i = _max_pool(x, kernel_shape=[1], strides=[3], auto_pad="SAME_UPPER")
    assert y.ravel().tolist() == [1.0]  # total padding (1-1)*3 + 1 - 3 = -2: the window moved into the input
    assert poolref.max_pool1d(x, 1, 3, "same", convention="onnx").ravel().tolist() == [0.0]  # poolref clamps at 0


def test_same_padding_with_dilation_uses_the_undilated_kernel():
    x = numpy.arange(5.0).reshape(1, 1, 5)
    y, _ = _max_pool(x, kernel_shape=[2], strides=[2], dilations=[2], auto_pad="SAME_UPPER")
    assert y.ravel().tolist() == [2.0, 4.0]  # = explicit pads (0, 1), from k = 2 rather than 3
    assert poolref.max_pool1d(x, 2, 2, ((0, 1),), 2, convention="onnx").ravel().tolist() == [2.0, 4.0]
    assert poolref.max_pool1d(x, 2, 2, "same", 2, convention="onnx").ravel().tolist() == [1.0, 3.0, 3.0]  # ONNX's formula


def test_lp_pool_does_not_rescale_a_partial_ceil_mode_window():
    x = numpy.array([[[1.0, 2, 3, 4, 5]]], dtype=numpy.float32)
    node = helper.make_node("LpPool", ["X"], ["Y"], kernel_shape=[2], strides=[2], ceil_mode=1, p=1)
    (y,) = run_node(node, {"X": x}, {"Y": x.dtype})
    assert y.ravel().tolist() == [3.0, 7.0, 5.0]
    assert poolref.lp_pool1d(x, 1, 2, 2, True, convention="onnx").ravel().tolist() == [3.0, 7.0, 5.0]


def test_every_mapping_has_a_reproducer_that_runs(reproducers_run):
    assert reproducers_run("onnxruntime") == len(oracle.load_adapter("onnxruntime").MAPPINGS)


# --------------------------------------------------------------------------------------------------
# The ops ONNX lacks, checked (values) against small graphs of its nodes
# --------------------------------------------------------------------------------------------------
from conftest import assert_agrees_but_for_poolref_defects, assert_every_public_op_is_a_row  # noqa: E402

ORT_COMPOSED = ["stochastic_pool2d", "mixed_pool2d", "gem_pool", "lse_pool", "bilinear_pool", "dynopool2d"]


def test_every_public_op_is_checked_or_says_why():
    assert_every_public_op_is_a_row("onnxruntime")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # poolref's own warnings on non-finite input (conftest)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_compositions_agree_with_poolref_but_for_its_listed_defects(seed):
    report = oracle.check("onnxruntime", ops=ORT_COMPOSED, cases=14, seed=seed)
    assert [r.op for r in report.results] == ORT_COMPOSED and {r.kind for r in report.results} == {"composition"}
    assert not any(r.gradients for r in report.results)
    assert_agrees_but_for_poolref_defects(report)


def test_every_composition_has_a_reproducer_that_runs(reproducers_run):
    composed = [m for m in oracle.load_adapter("onnxruntime").MAPPINGS if m.kind == "composition"]
    assert composed and reproducers_run("onnxruntime", kind="composition") == len(composed)


def _linear_resize(x, length):
    node = helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], mode="linear", coordinate_transformation_mode="half_pixel")
    return run_node(node, {"X": x, "sizes": numpy.array(list(x.shape[:-1]) + [length], dtype=numpy.int64)}, {"Y": x.dtype})[0]


def test_onnxruntime_linear_resize_spreads_a_nan_into_other_rows_a_known_defect():
    # found at `poolref check onnxruntime --ops interpolate --cases 60 --seed 3`: a NaN in the second row
    # poisons the first, which each row resized alone (and poolref, and PyTorch) keep finite; the
    # model (the rows as one volume) reproduces it
    from poolref.cases.case import Case
    from poolref.oracle import defects
    from poolref.oracle.engine import Results

    x = numpy.array([[[0.0, 1, 2, 3], [4, 5, 6, numpy.nan]]], dtype=numpy.float32)
    together = _linear_resize(x, 10)
    alone = _linear_resize(x[:, :1], 10)
    want = poolref.interpolate(x, size=10, mode="linear")
    assert numpy.isfinite(alone).all() and numpy.isfinite(want[0, 0]).all()
    assert numpy.isnan(together[0, 0, 6:]).all()  # ONNX Runtime 1.32: the defect is still there
    case = Case("interpolate", {"x": x}, {"size": (10,), "mode": "linear", "align_corners": False})
    assert defects.ORT_RESIZE_ROWS_SPREAD.applies(case)
    numpy.testing.assert_array_equal(defects.ORT_RESIZE_ROWS_SPREAD.model(case, Results(None, None, {}), None).values, together)
    # a single infinite pixel: ONNX Runtime reads it twice with 0.5 (inf), PyTorch once with 1 and 0 (NaN)
    # (found at --cases 400 --seed 1)
    one = numpy.array([[[numpy.inf]]], dtype=numpy.float32)
    assert numpy.isinf(_linear_resize(one, 8)).all() and numpy.isnan(poolref.interpolate(one, size=8, mode="linear")).any()
    # an unchanged length is a copy (PyTorch reads the next pixel with weight 0: NaN beside an infinity;
    # found at --cases 400 --seed 6)
    same = Case("interpolate", {"x": x}, {"size": (4,), "mode": "linear", "align_corners": False})
    numpy.testing.assert_array_equal(_linear_resize(x, 4), x)
    numpy.testing.assert_array_equal(defects.ORT_RESIZE_ROWS_SPREAD.model(same, Results(None, None, {}), None).values, x)
    # a finite case cannot show it: it stays compared
    assert not defects.ORT_RESIZE_ROWS_SPREAD.applies(Case("interpolate", {"x": numpy.nan_to_num(x)}, {"size": (10,), "mode": "linear"}))


def test_global_max_pool_nan_depends_on_the_simd_lane_as_the_refusal_says():
    # MLAS_MAX, the reason the row draws no NaN or infinities: a NaN is kept or dropped by its place
    # (not "always ignored", as the reason said before it was measured), and -inf planes give -FLT_MAX
    node = helper.make_node("GlobalMaxPool", ["X"], ["Y"])

    def global_max(values):
        x = numpy.array(values, dtype=numpy.float32).reshape(1, 1, -1)
        return float(run_node(node, {"X": x}, {"Y": x.dtype})[0].ravel()[0])

    for length, kept in ((4, 3), (8, 7)):
        for k in range(length):
            ones = [1.0] * length
            ones[k] = numpy.nan
            assert math.isnan(global_max(ones)) == (k == kept), (length, k)
    assert global_max([-numpy.inf] * 8) == -numpy.finfo(numpy.float32).max
    assert global_max([numpy.nan] * 3) == -numpy.finfo(numpy.float32).max
    assert math.isnan(global_max([numpy.nan] * 4))
    assert "SIMD lanes" in onnxruntime_adapter.MLAS_MAX


# --------------------------------------------------------------------------------------------------
# The adapter's stated reasons (what it refuses or excuses, and why), each held to ONNX Runtime 1.32
# --------------------------------------------------------------------------------------------------
def _run_or_error(node, feeds, outputs, opset=onnxruntime_adapter.OPSET):
    """ONNX Runtime's outputs, or the text of the error it raised."""
    try:
        return run_node(node, feeds, outputs, opset)
    except Exception as error:  # onnxruntime's own exception types (Fail, NotImplemented, ...)
        return str(error)


def _window_case(op, x, **kwargs):
    from poolref.cases.case import Case

    return Case(op, {"x": x}, kwargs)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool", "LpPool"])
def test_onnxruntime_refuses_a_pad_as_large_as_the_undilated_kernel(op_type):
    x = numpy.arange(6, dtype=numpy.float32).reshape(1, 1, 6)
    for pads, dilations in (([2, 0], [1]), ([0, 2], [1]), ([2, 2], [2])):  # pad = k = 2 (dilated: 3)
        node = helper.make_node(op_type, ["X"], ["Y"], kernel_shape=[2], pads=pads, dilations=dilations)
        assert "Pad should be smaller than kernel" in _run_or_error(node, {"X": x}, {"Y": x.dtype}), (pads, dilations)
    node = helper.make_node(op_type, ["X"], ["Y"], kernel_shape=[2], pads=[1, 1], dilations=[2])
    assert _run_or_error(node, {"X": x}, {"Y": x.dtype})[0].shape == (1, 1, 6)  # pad k - 1 runs
    refusal = onnxruntime_adapter._window_express
    assert "smaller than the (undilated) kernel" in refusal(_window_case("max_pool1d", x, kernel_size=2, padding=((2, 0),)))
    assert refusal(_window_case("max_pool1d", x, kernel_size=2, padding=1, dilation=2)) is None


def test_onnxruntime_registers_no_float64_average_pool_lp_pool_max_roi_pool_or_resize():
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    nodes = {
        "AveragePool": (helper.make_node("AveragePool", ["X"], ["Y"], kernel_shape=[2, 2]), {}),
        "LpPool": (helper.make_node("LpPool", ["X"], ["Y"], kernel_shape=[2, 2]), {}),
        "MaxRoiPool": (helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=[1, 1]),
                       {"rois": numpy.array([[0, 0, 0, 3, 3.0]])}),
        "Resize": (helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], mode="linear"),
                   {"sizes": numpy.array([1, 1, 2, 2], dtype=numpy.int64)}),
    }
    for op_type, (node, extra) in nodes.items():
        error = _run_or_error(node, {"X": x, **extra}, {"Y": numpy.float64})
        assert isinstance(error, str) and f"Could not find an implementation for {op_type}" in error, op_type
        single = {name: (a.astype(numpy.float32) if a.dtype == numpy.float64 else a) for name, a in extra.items()}
        assert run_node(node, {"X": x.astype(numpy.float32), **single}, {"Y": numpy.float32})[0].size  # float32 runs


def _same_pool(op_type, x, kernel, stride, auto_pad, dilation=1):
    attributes = dict(kernel_shape=[kernel], strides=[stride], auto_pad=auto_pad, dilations=[dilation])
    outputs = {"Y": x.dtype, "I": numpy.int64} if op_type == "MaxPool" else {"Y": x.dtype}
    if op_type == "AveragePool":
        attributes["count_include_pad"] = 0
    return run_node(helper.make_node(op_type, ["X"], list(outputs), **attributes), {"X": x}, outputs)[0]


def _poolref_same(op_type, x, kernel, stride, auto_pad, dilation=1):
    padding = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower"}[auto_pad]
    if op_type == "MaxPool":
        return poolref.max_pool1d(x, kernel, stride, padding, dilation, convention="onnx")
    if op_type == "AveragePool":
        return poolref.avg_pool1d(x, kernel, stride, padding, count_include_pad=False, dilation=dilation, convention="onnx")
    return poolref.lp_pool1d(x, 2, kernel, stride, padding=padding, dilation=dilation, convention="onnx")


def test_same_padding_shifts_the_windows_only_where_half_the_negative_total_rounds_away_from_zero():
    # the refusal's rule, for the three pools: ONNX Runtime puts total/2 (SAME_LOWER (total + 1)/2), as C++
    # divides (toward 0), before the input; where that is 0 (a total of -1, SAME_LOWER also -2) its
    # windows are poolref's and the case is checked, elsewhere they move into the input and it is refused
    rng = numpy.random.default_rng(0)
    seen = {"shifted": 0, "in place": 0}
    for L in range(1, 10):
        for kernel in (1, 2, 3):
            for stride in range(kernel + 1, 7):
                total = (-(-L // stride) - 1) * stride + kernel - L
                if total >= 0:
                    continue
                x = rng.standard_normal((1, 2, L)).astype(numpy.float32)
                for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                    head = int((total + (auto_pad == "SAME_LOWER")) / 2)
                    padding = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower"}[auto_pad]
                    reason = onnxruntime_adapter._window_model(
                        _window_case("max_pool1d", x, kernel_size=kernel, stride=stride, padding=padding))
                    assert (reason is not None) == (head != 0), (L, kernel, stride, auto_pad)
                    for op_type in ("MaxPool", "AveragePool", "LpPool"):
                        theirs, ours = _same_pool(op_type, x, kernel, stride, auto_pad), _poolref_same(op_type, x, kernel, stride, auto_pad)
                        if head == 0:
                            numpy.testing.assert_allclose(theirs, ours, rtol=1e-6, err_msg=str((op_type, L, kernel, stride, auto_pad)))
                        elif op_type == "AveragePool":  # the means of other elements
                            assert theirs.shape == ours.shape and not numpy.allclose(theirs, ours), (L, kernel, stride, auto_pad)
                    seen["in place" if head == 0 else "shifted"] += 1
    assert min(seen.values()) > 20, seen
    atlas = _window_case("max_pool1d", numpy.zeros((1, 1, 3)), kernel_size=1, stride=3, padding="same")  # total -2
    assert "shifts the windows into the input" in onnxruntime_adapter._window_model(atlas)


def test_same_padding_with_dilation_pads_for_the_undilated_kernel_in_every_pool():
    # ONNX Runtime's total padding is (O - 1)*s + k - L, with k undilated; its output is shorter than
    # ONNX's formula's (refused) except for a window of 1, which dilation does not change (checked)
    x = numpy.arange(5.0, dtype=numpy.float32).reshape(1, 1, 5)
    for op_type in ("MaxPool", "AveragePool", "LpPool"):
        theirs = _same_pool(op_type, x, 2, 2, "SAME_UPPER", dilation=2)
        assert theirs.shape == (1, 1, 2) and _poolref_same(op_type, x, 2, 2, "SAME_UPPER", 2).shape == (1, 1, 3), op_type
        numpy.testing.assert_array_equal(_same_pool(op_type, x, 1, 2, "SAME_UPPER", dilation=3),
                                         _poolref_same(op_type, x, 1, 2, "SAME_UPPER", 3))
    model = onnxruntime_adapter._window_model
    assert "undilated" in model(_window_case("avg_pool1d", x, kernel_size=2, stride=2, padding="same", dilation=2))
    assert model(_window_case("avg_pool1d", x, kernel_size=1, stride=2, padding="same", dilation=3)) is None


def test_max_unpool_requires_a_positive_default_length_even_with_output_shape():
    x, indices = numpy.ones((1, 1, 1), numpy.float32), numpy.zeros((1, 1, 1), numpy.int64)
    shape = numpy.array([1, 1, 3], numpy.int64)
    for kernel, default in ((2, 0), (3, 1)):  # (L - 1)*s - 2p + k with L = 1, s = 1, p = 1
        node = helper.make_node("MaxUnpool", ["X", "I", "output_shape"], ["Y"], kernel_shape=[kernel], strides=[1], pads=[1, 1])
        result = _run_or_error(node, {"X": x, "I": indices, "output_shape": shape}, {"Y": numpy.float32})
        if default > 0:
            assert result[0].ravel().tolist() == [1.0, 0.0, 0.0]
        else:
            assert "Computed output dimension is not positive" in result
    from poolref.cases.case import Case

    case = Case("max_unpool1d", {"x": x, "indices": indices}, dict(kernel_size=2, stride=1, padding=1, output_size=(3,)))
    assert "default output length" in onnxruntime_adapter._unpool_express(case)


def _global_max(values):
    node = helper.make_node("GlobalMaxPool", ["X"], ["Y"])
    x = numpy.array(values, dtype=numpy.float32).reshape(1, 1, -1)
    return run_node(node, {"X": x}, {"Y": x.dtype})[0].item()


def test_global_max_pool_keeps_the_tied_zero_of_its_last_simd_lane():
    # ZERO_SIGN_MLAS: of a plane of zeros, the sign at index 4 * (L // 4) - 1 decides (the first where L < 4);
    # PyTorch's rule, poolref's, takes the first
    for length in range(1, 13):
        decides = 4 * (length // 4) - 1 if length >= 4 else 0
        for k in range(length):
            zeros = [0.0] * length
            zeros[k] = -0.0
            assert math.copysign(1, _global_max(zeros)) == (-1 if k == decides else 1), (length, k)
    first = numpy.array([[[-0.0, 0.0, 0.0, 0.0]]], dtype=numpy.float32)
    assert math.copysign(1, _global_max(first.ravel())) == 1 and numpy.signbit(poolref.global_max_pool(first)).all()
    assert "4 * (L // 4) - 1" in onnxruntime_adapter.ZERO_SIGN_MLAS


def _grid_sample(x, point, padding_mode):
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode="bilinear", padding_mode=padding_mode, align_corners=0)
    grid = numpy.array(point, dtype=numpy.float32).reshape(1, 1, 1, 2)
    return run_node(node, {"X": x, "grid": grid}, {"Y": x.dtype})[0].item(), poolref.grid_sample(
        x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False).item()


@pytest.mark.parametrize("padding_mode", ["border", "reflection"])
def test_grid_sample_clamps_each_tap_not_the_coordinate(padding_mode):
    # ORT_GRID_SAMPLE_TAP_PADDING's worked examples: beyond the first pixel ONNX Runtime reads it twice
    # (PyTorch: it, and its neighbour with weight 0); on the last pixel it reads it again as the next
    # tap, with weight 0
    from poolref.oracle.defects import ORT_GRID_SAMPLE_TAP_PADDING

    edge = numpy.array([[[[1.0, numpy.inf], [1.0, numpy.inf]]]], dtype=numpy.float32)
    theirs, ours = _grid_sample(edge, (-1.0, -0.5), padding_mode)  # x = -0.5, y = 0: PyTorch clamps x to 0
    assert theirs == 1.0 and math.isnan(ours)
    single = numpy.array([[[[numpy.inf]]]], dtype=numpy.float32)
    theirs, ours = _grid_sample(single, (0.0, 0.0), padding_mode)
    assert math.isnan(theirs) and ours == numpy.inf
    # with zeros padding both read the same taps (compared)
    assert _grid_sample(single, (0.0, 0.0), "zeros") == (numpy.inf, numpy.inf)
    assert "[[1, inf], [1, inf]] at grid point (-1, -0.5)" in ORT_GRID_SAMPLE_TAP_PADDING.text


def test_grid_sample_reads_a_neighbour_of_weight_zero_that_dynopool_does_not():
    # DYNOPOOL_GRID: alpha = 2 puts DynOPool's query points on the pixels (u = 2i + a); GridSample reads
    # the next pixel with weight 0 there, DynOPool reads only the pixels it weighs
    import onnx

    from poolref.cases.case import Case
    from poolref.oracle import onnx_compositions

    x = numpy.zeros((1, 1, 4, 4), dtype=numpy.float32)
    x[0, 0, 0, 1] = numpy.inf
    alpha = numpy.array([2.0, 2.0])
    scope = {"np": numpy, "onnx": onnx, "run_node": run_node, "x": x, "alpha": alpha}
    exec(onnx_compositions.dynopool(Case("dynopool2d", {"x": x, "alpha": alpha}, {"aggregate": "max"})), scope)
    ours = poolref.dynopool2d(x, alpha)
    assert numpy.isnan(scope["y"][0, 0, 0, 0]) and ours[0, 0, 0, 0] == numpy.inf  # query (0, 0) read (0, 1) with weight 0
    numpy.testing.assert_array_equal(scope["y"][0, 0, 1], ours[0, 0, 1])  # the finite row agrees


def test_resize_antialias_is_not_pytorchs_cubic_or_linear():
    # RESIZE_CUBIC_ANTIALIAS' numbers (poolref's antialias is PyTorch's, held equal in tests/oracle/test_torch.py)
    x = numpy.random.default_rng(0).standard_normal((1, 1, 9, 8)).astype(numpy.float32)
    sizes = numpy.array([1, 1, 4, 3], dtype=numpy.int64)

    def apart(ours, **attributes):
        node = helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], antialias=1, coordinate_transformation_mode="half_pixel", **attributes)
        y, = run_node(node, {"X": x, "sizes": sizes}, {"Y": x.dtype})
        return float(numpy.abs(y - poolref.interpolate(x, size=(4, 3), mode=ours, antialias=True)).max())

    assert apart("bicubic", mode="cubic", cubic_coeff_a=-0.5) == pytest.approx(0.073, abs=5e-4)
    assert apart("bicubic", mode="cubic", cubic_coeff_a=-0.75) == pytest.approx(0.070, abs=5e-4)
    assert apart("bilinear", mode="linear") == pytest.approx(0.131, abs=5e-4)
    assert "0.073" in onnxruntime_adapter.RESIZE_CUBIC_ANTIALIAS and "linear 0.131" in onnxruntime_adapter.RESIZE_CUBIC_ANTIALIAS


def test_resize_divides_by_a_float32_scale_that_moves_a_nearest_pixel():
    # _no_area's reason: 69 / float32(2.3) is 30.0 in float32, where PyTorch's 69 * float32(1 / 2.3) is 29.999998
    x = numpy.arange(31, dtype=numpy.float32).reshape(1, 1, 31)
    node = helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode="nearest", coordinate_transformation_mode="asymmetric",
                            nearest_mode="floor")
    y, = run_node(node, {"X": x, "scales": numpy.array([1, 1, 2.3], dtype=numpy.float32)}, {"Y": x.dtype})
    ours = poolref.interpolate(x, scale_factor=2.3, mode="nearest")
    assert y.shape == ours.shape == (1, 1, 71)
    assert y[0, 0, 69] == 30 and ours[0, 0, 69] == 29
    assert numpy.flatnonzero(y != ours).tolist() == [69]
    case = _window_case("interpolate", x, scale_factor=2.3, mode="nearest")
    assert "output 69" in onnxruntime_adapter._no_area(case)
    assert onnxruntime_adapter._no_area(_window_case("interpolate", x, scale_factor=2.25, mode="nearest")) is None


def test_pad_wrap_refuses_an_input_with_a_zero_length_axis():
    # CONV_WRAP_EMPTY: whatever the pads, on an empty batch or no channels; reflect runs, and wrap on data
    from onnx import helper as make

    def pad(shape, mode, pads):
        nodes = [make.make_node("Constant", [], ["pads"], value_ints=pads), make.make_node("Pad", ["X", "pads"], ["Y"], mode=mode)]
        try:
            return onnxruntime_adapter.run_graph(nodes, {"X": numpy.zeros(shape, numpy.float32)}, {"Y": numpy.float32})[0].shape
        except Exception as error:
            return str(error)

    for shape in ((0, 2, 4, 4), (1, 0, 4, 4)):
        for pads in ([0, 0, 1, 1, 0, 0, 1, 1], [0] * 8):
            assert "Unexpected mode of 3" in pad(shape, "wrap", pads), (shape, pads)
        assert pad(shape, "reflect", [0, 0, 1, 1, 0, 0, 1, 1]) == shape[:2] + (6, 6)
    assert pad((1, 2, 4, 4), "wrap", [0, 0, 1, 1, 0, 0, 1, 1]) == (1, 2, 6, 6)


def _roi_align_ort(x, box, sampling_ratio, aligned, mode="avg"):
    node = helper.make_node("RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode=mode, output_height=2, output_width=2,
                            sampling_ratio=sampling_ratio, spatial_scale=1.0,
                            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
    return _run_or_error(node, {"X": x, "rois": numpy.array([box], numpy.float32), "batch_indices": numpy.zeros(1, numpy.int64)},
                         {"Y": x.dtype})


def test_roi_align_fails_on_an_inverted_box_only_with_the_adaptive_ratio_and_half_pixel():
    # _roi_align_express: sampling_ratio < 0 is refused by ONNX Runtime; an inverted box fails only where the
    # adaptive grid ceil(size / bins) goes negative (half_pixel), and is poolref's otherwise
    from poolref.cases.case import Case

    x = numpy.arange(16, dtype=numpy.float32).reshape(1, 1, 4, 4)
    assert "Sampling ratio should be >=0" in _roi_align_ort(x, [0, 0, 3, 3], -1, True)
    inverted = [3.0, 0.0, 0.5, 3.0]  # x2 < x1 by 2.5 (more than a bin of 2 columns)
    assert "Integer overflow" in _roi_align_ort(x, inverted, 0, True)
    boxes = numpy.array([[0.0] + inverted])
    for ratio, aligned in ((0, False), (1, True), (2, True), (2, False)):
        for mode in ("avg", "max"):
            y, = _roi_align_ort(x, inverted, ratio, aligned, mode)
            numpy.testing.assert_allclose(y, poolref.roi_align(x, boxes, 2, 1.0, ratio, aligned, mode=mode, convention="onnx"),
                                          rtol=1e-6, err_msg=str((ratio, aligned, mode)))
        case = Case("roi_align", {"x": x, "boxes": boxes}, dict(output_size=2, spatial_scale=1.0, sampling_ratio=ratio, aligned=aligned))
        assert onnxruntime_adapter._roi_align_express(case) is None
    case = Case("roi_align", {"x": x, "boxes": boxes}, dict(output_size=2, spatial_scale=1.0, sampling_ratio=0, aligned=True))
    assert "Integer overflow" in onnxruntime_adapter._roi_align_express(case)


def _deform_conv_ort(x, offset, weight):
    node = helper.make_node("DeformConv", ["X", "W", "offset"], ["Y"], kernel_shape=list(weight.shape[2:]))
    return run_node(node, {"X": x, "W": weight, "offset": offset}, {"Y": x.dtype})[0]


def test_deform_conv_reads_pixel_zero_with_weight_zero_outside_the_image():
    # DEFORM_CONV_PIXEL_ZERO's two checks, and a point far outside (four reads of pixel (0, 0))
    weight = numpy.ones((1, 1, 1, 1), numpy.float32)

    def both(x, dy, dx):
        offset = numpy.empty((1, 2) + x.shape[2:], numpy.float32)
        offset[:, 0], offset[:, 1] = dy, dx
        return _deform_conv_ort(x, offset, weight)[0, 0, 0, 0], poolref.deform_conv2d(x, offset, weight)[0, 0, 0, 0]

    theirs, ours = both(numpy.full((1, 1, 1, 1), numpy.inf, numpy.float32), 0.0, 0.0)
    assert numpy.isnan(theirs) and ours == numpy.inf
    corner = numpy.array([[[[numpy.inf, 1.0], [1.0, 1.0]]]], numpy.float32)
    theirs, ours = both(corner, -0.5, 0.0)
    assert numpy.isnan(theirs) and ours == numpy.inf
    theirs, ours = both(corner, -5.0, -5.0)
    assert numpy.isnan(theirs) and ours == 0.0
    assert numpy.isfinite(both(numpy.nan_to_num(corner, posinf=7.0), -5.0, -5.0)).all()


def test_deform_conv_float16_samples_at_float32_points():
    # DEFORM_CONV_FLOAT16: ONNX Runtime's float16 output is poolref's on float32 copies, rounded, bit for bit;
    # poolref's float16 rule (torchvision's) is up to 1.2e-2 from it
    rng = numpy.random.default_rng(0)
    worst = 0.0
    for _ in range(30):
        x = rng.standard_normal((1, 2, 5, 5)).astype(numpy.float16)
        weight = rng.standard_normal((2, 2, 3, 3)).astype(numpy.float16)
        offset = (rng.standard_normal((1, 18, 3, 3)) * 1.3).astype(numpy.float16)
        y = _deform_conv_ort(x, offset, weight)
        wide = poolref.deform_conv2d(*(a.astype(numpy.float32) for a in (x, offset, weight)))
        numpy.testing.assert_array_equal(y, wide.astype(numpy.float16))
        worst = max(worst, float(numpy.abs(y.astype(numpy.float32) - poolref.deform_conv2d(x, offset, weight)).max()))
    assert 5e-3 < worst <= 1.2e-2


def test_squares_overflow_and_go_subnormal_where_the_reason_says():
    # SQUARES: ONNX Runtime's float32 Mul, a * a: inf from 1.85e19, subnormal below 1.08e-19
    from poolref.oracle.onnxruntime_adapter import run_graph

    a = numpy.array([1.84e19, 1.85e19, 1.09e-19, 1.08e-19], numpy.float32)
    squares, = run_graph([helper.make_node("Mul", ["X", "X"], ["Y"])], {"X": a}, {"Y": numpy.float32})
    tiny = numpy.finfo(numpy.float32).tiny
    assert numpy.isfinite(squares[0]) and numpy.isinf(squares[1])
    assert squares[2] >= tiny and 0 < squares[3] < tiny
    assert "1.85e19" in onnxruntime_adapter.SQUARES and "1.08e-19" in onnxruntime_adapter.SQUARES


def test_lse_composition_keeps_no_digit_of_r_x_below_the_ulp_of_log_s():
    # LOG_COUNT: (ReduceLogSumExp(r x) - log S) / r of a 4 x 4 plane of magnitude 1e-9 rounds to
    # log S's ulp (2^-22 for log 16) and loses the whole of r mean(x)
    import onnx

    from poolref.cases.case import Case
    from poolref.oracle import onnx_compositions

    x = (numpy.random.default_rng(0).standard_normal((2, 3, 4, 4)) * 1e-9).astype(numpy.float32)
    scope = {"np": numpy, "onnx": onnx, "run_graph": onnxruntime_adapter.run_graph, "x": x}
    exec(onnx_compositions.lse(Case("lse_pool", {"x": x}, {"r": 1.0})), scope)
    ours = poolref.lse_pool(x, 1.0)  # |values| up to 5e-10, below half of ulp(log 16) = 2^-22
    assert (ours != 0).all() and numpy.abs(ours).max() < 2.0**-23
    assert (scope["y"] == 0).all()  # every digit lost


def test_onnx_has_none_of_the_ops_the_adapter_says_it_lacks():
    # the scope statements of UNCOVERED and of the reasons ("ONNX has no ..."), against onnx's own schemas
    import onnx

    names = {schema.name.lower() for schema in onnx.defs.get_all_schemas()}
    assert {"roialign", "maxroipool", "globallppool", "gridsample", "deformconv"} <= names
    for missing in ("adaptive", "fractional", "psroi", "im2col", "unfold", "expm1", "log1p", "softpool"):
        assert not any(missing in name for name in names), missing
    assert "area" not in onnx.defs.get_schema("Resize").attributes["mode"].description
    assert onnx.defs.get_schema("LpPool").attributes["p"].type == onnx.defs.OpSchema.AttrType.INT
    assert "offset" not in {i.name.lower() for i in onnx.defs.get_schema("RoiAlign").inputs}


def test_roi_align_row_draws_inverted_boxes_except_where_onnxruntime_fails_on_them():
    # the row drew ordered boxes only; ONNX Runtime fails on an inverted box only with the adaptive
    # ratio 0 and half_pixel (the express reason), and gives poolref's values elsewhere
    from poolref.oracle import engine

    mapping = next(m for m in onnxruntime_adapter.MAPPINGS if m.op == "roi_align")
    cases = [case for case in engine.plan_cases(mapping, 200, 1).cases if "boxes" in case.arrays]
    inverted = [case for case in cases
                if ((case.arrays["boxes"][:, 3] < case.arrays["boxes"][:, 1]) | (case.arrays["boxes"][:, 4] < case.arrays["boxes"][:, 2])).any()]
    assert len(inverted) > 10
    assert not any(case.kwargs["sampling_ratio"] == 0 and case.kwargs["aligned"] for case in inverted)
    assert oracle.check("onnxruntime", ops=["roi_align"], cases=200, seed=1).passed


def _ort_grid_sample(x, grid, mode, padding_mode, align_corners):
    """ONNX Runtime's GridSample of 4-D input (opset 19) or 5-D input (opset 20, modes linear, cubic)."""
    volumetric = x.ndim == 5
    if volumetric:
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode=mode, padding_mode=padding_mode,
                            align_corners=int(align_corners))
    return run_node(node, {"X": x, "grid": grid}, {"Y": x.dtype}, opset=20 if volumetric else 19)[0]


def _nonfinite_grid_sample_case(rng, trial):
    """A bilinear grid_sample case with border or reflection padding (trial's bit 0), align_corners
    (bit 1), 2 or 3 spatial axes (bit 2), NaN, +-inf or both in x, and grid points snapped to pixels
    and edges (-1, 0, 1) or past them (+-1.25); None where reflection with align_corners meets an axis
    of length 1 (refused: GRID_REFLECT_ZERO_RANGE)."""
    from poolref.cases.case import Case

    padding_mode, aligned, n = ("border", "reflection")[trial % 2], bool(trial // 2 % 2), 2 + trial // 4 % 2
    shape = tuple(int(v) for v in rng.integers(1, 3, 2)) + tuple(int(v) for v in rng.integers(1, 7 if n == 2 else 4, n))
    if padding_mode == "reflection" and aligned and 1 in shape[2:]:
        return None
    x = rng.standard_normal(shape).astype(numpy.float32)
    for value, share in ((numpy.nan, (0.2, 0.0, 0.1)), (numpy.inf, (0.0, 0.2, 0.1)), (-numpy.inf, (0.0, 0.15, 0.1))):
        x[rng.random(shape) < share[trial // 8 % 3]] = value
    grid = rng.uniform(-1.6, 1.6, (shape[0],) + tuple(int(v) for v in rng.integers(1, 6, n)) + (n,)).astype(numpy.float32)
    snap = rng.random(grid.shape) < 0.3
    grid[snap] = rng.choice(numpy.float32([-1.25, -1, -0.5, 0, 0.5, 1, 1.25]), int(snap.sum()))
    return Case("grid_sample", {"x": x, "grid": grid}, dict(mode="bilinear", padding_mode=padding_mode, align_corners=aligned))


def test_grid_sample_tap_padding_model_is_onnxruntimes_bit_for_bit():
    # ORT_GRID_SAMPLE_TAP_PADDING: taps floor(c) and floor(c) + 1 of the unmoved coordinate, each index
    # clamped or reflected on its own, float32 weights from the unmoved coordinate, and the nested sum
    # dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22) (3-D: dz2 * . + dz1 * .). The model must be
    # ORT to the bit (the zero sign included), where poolref's NaN and infinities differ.
    from poolref.oracle.defects import ORT_GRID_SAMPLE_TAP_PADDING
    from poolref.oracle.engine import Results

    rng = numpy.random.default_rng(11)
    checked, differs = {}, 0
    for trial in range(240):
        case = _nonfinite_grid_sample_case(rng, trial)
        if case is None:
            continue
        kw = case.kwargs
        theirs = _ort_grid_sample(case.x, case.arrays["grid"], **kw)
        assert ORT_GRID_SAMPLE_TAP_PADDING.applies(case) == (not numpy.isfinite(case.x).all())
        model = ORT_GRID_SAMPLE_TAP_PADDING.model(case, Results(None, None, {}), None).values
        assert model.dtype == theirs.dtype
        numpy.testing.assert_array_equal(model, theirs)
        numbers = ~numpy.isnan(theirs)  # (a NaN's sign bit is no part of its value)
        numpy.testing.assert_array_equal(numpy.signbit(model[numbers]), numpy.signbit(theirs[numbers]))
        key = (kw["padding_mode"], kw["align_corners"], case.x.ndim - 2)
        checked[key] = checked.get(key, 0) + 1
        ours = poolref.grid_sample(case.x, case.arrays["grid"], **kw)
        differs += not numpy.array_equal(numpy.isnan(ours), numpy.isnan(theirs))
    assert len(checked) == 8 and min(checked.values()) >= 10, checked  # both paddings, both align_corners, 2-D and 3-D
    assert differs > 0  # the cases show ONNX Runtime's own NaN pattern


def test_grid_sample_tap_padding_applies_to_bilinear_border_and_reflection_with_nonfinite_input_only():
    from poolref.cases.case import Case
    from poolref.oracle.defects import ORT_GRID_SAMPLE_TAP_PADDING

    x = numpy.ones((1, 1, 2, 3), dtype=numpy.float32)
    x[0, 0, 0, 0] = numpy.nan
    grid = numpy.zeros((1, 1, 1, 2), dtype=numpy.float32)

    def applies(x=x, grid=grid, mode="bilinear", padding_mode="border", align_corners=False):
        kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        return ORT_GRID_SAMPLE_TAP_PADDING.applies(Case("grid_sample", {"x": x, "grid": grid}, kwargs))

    assert applies() and applies(padding_mode="reflection") and applies(padding_mode="reflection", align_corners=True)
    assert applies(x=x[:, :, None], grid=numpy.zeros((1, 1, 1, 1, 3), dtype=numpy.float32))  # 3-D
    assert not applies(padding_mode="zeros")  # the same taps as PyTorch: compared
    assert not applies(mode="nearest") and not applies(mode="bicubic")  # PyTorch pads each tap too: compared
    assert not applies(x=numpy.ones_like(x))  # finite: compared, to rounding
    assert not applies(grid=numpy.full_like(grid, numpy.nan))  # floor(NaN) as an index is undefined in C++
    # reflection with align_corners on an axis of length 1 divides by zero in ORT: refused, not modelled
    assert applies(x=x[:, :, :1], padding_mode="border", align_corners=True)
    assert not applies(x=x[:, :, :1], padding_mode="reflection", align_corners=True)
    refused = Case("grid_sample", {"x": x[:, :, :1], "grid": grid}, dict(mode="bilinear", padding_mode="reflection", align_corners=True),
                   input_class="nan")
    assert onnxruntime_adapter._grid_sample_model(refused) == onnxruntime_adapter.GRID_REFLECT_ZERO_RANGE
    nearest = refused.replace(kwargs=dict(refused.kwargs, mode="nearest"))  # nearest never reflects there
    assert onnxruntime_adapter._grid_sample_model(nearest) is None
    assert onnxruntime_adapter._grid_sample_model(refused.replace(input_class="finite")) is None


def test_grid_sample_tap_padding_differs_from_poolref_by_the_modelled_rule():
    # 2-D, x = [0, inf, 2, 3] at c = -0.5: ORT's taps -1 and 0 both read x[0] with weights 0.5 and 0.5,
    # 0; PyTorch clamps the point to 0 and reads 1 * x[0] + 0 * inf = NaN. 3-D, a 1 x 1 x 1 volume
    # holding inf at its centre: ORT's taps 0 and 1 of each axis all read the inf, with weights 1 and 0
    # (0 * inf = NaN); PyTorch's point is on the pixel, inf.
    from poolref.cases.case import Case
    from poolref.oracle.defects import ORT_GRID_SAMPLE_TAP_PADDING
    from poolref.oracle.engine import Results

    row = numpy.array([[[[0.0, numpy.inf, 2.0, 3.0]]]], dtype=numpy.float32)
    volume = numpy.full((1, 1, 1, 1, 1), numpy.inf, dtype=numpy.float32)
    examples = ((row, numpy.array([[[[-1.0, 0.0]]]], dtype=numpy.float32), 0.0, numpy.nan),
                (volume, numpy.zeros((1, 1, 1, 1, 3), dtype=numpy.float32), numpy.nan, numpy.inf))
    for x, grid, ort_value, poolref_value in examples:
        for padding_mode in ("border", "reflection"):
            case = Case("grid_sample", {"x": x, "grid": grid}, dict(mode="bilinear", padding_mode=padding_mode, align_corners=False))
            theirs = _ort_grid_sample(x, grid, **case.kwargs)
            numpy.testing.assert_array_equal(theirs.ravel(), [ort_value])
            numpy.testing.assert_array_equal(poolref.grid_sample(x, grid, **case.kwargs).ravel(), [poolref_value])
            assert ORT_GRID_SAMPLE_TAP_PADDING.applies(case)
            numpy.testing.assert_array_equal(ORT_GRID_SAMPLE_TAP_PADDING.model(case, Results(None, None, {}), None).values, theirs)


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_grid_sample_check_passes_with_the_tap_padding_model(seed):
    # these seeds draw NaN and infinities next to the edge with border and reflection padding (refused
    # before the model); each must be ORT's answer to the bit or the check fails
    from poolref.oracle.defects import ORT_GRID_SAMPLE_TAP_PADDING

    report = oracle.check("onnxruntime", ops=["grid_sample"], cases=40, seed=seed)
    assert report.passed, report.table()
    assert report.known and all(ORT_GRID_SAMPLE_TAP_PADDING.text in k.problems[0] for k in report.known)


@pytest.mark.parametrize("mode", ["nearest", "bicubic"])
def test_grid_sample_nearest_and_bicubic_pad_each_tap_as_pytorch_does(mode):
    # no defect for these modes: ORT pads each tap's index (nearest: of the rounded point), and so do
    # PyTorch's bicubic and, for nearest, rounding the clamped or reflected point reads the same pixel;
    # NaN and infinities land where poolref puts them (2-D and, for nearest, 3-D)
    rng = numpy.random.default_rng(12)
    for trial in range(64):
        case = _nonfinite_grid_sample_case(rng, trial if mode == "nearest" else trial % 4 + trial // 8 * 8)
        if case is None:
            continue
        kw = dict(case.kwargs, mode=mode)
        theirs = _ort_grid_sample(case.x, case.arrays["grid"], **kw)
        ours = poolref.grid_sample(case.x, case.arrays["grid"], **kw)
        numpy.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5)  # NaN and infinities exactly


def test_grid_sample_reflection_of_a_length_one_aligned_axis_is_refused_as_measured(monkeypatch):
    # GRID_REFLECT_ZERO_RANGE's measurements: the reflection divides by L - 1 = 0 (undefined in C++);
    # ONNX Runtime 1.32 then behaves as if that tap (of weight 0) read the axis' only pixel, and its
    # bicubic agrees with poolref. Refused all the same: it is no rule, and another build may differ.
    from poolref.cases.case import Case
    from poolref.oracle import ort_grid_sample
    from poolref.oracle.engine import Results

    def only_pixel(index, length, align_corners, dtype):
        if align_corners and length == 1:
            return numpy.zeros_like(index)
        return ort_grid_sample.reflected_tap(index, length, align_corners, dtype)

    monkeypatch.setitem(ort_grid_sample.TAP_PADDING, "reflection", only_pixel)
    rng = numpy.random.default_rng(4)
    for trial in range(60):
        shape = (2, 3) + ((1, int(rng.integers(1, 6))) if trial % 2 else (int(rng.integers(1, 6)), 1))
        x = rng.standard_normal(shape).astype(numpy.float32)
        x[rng.random(shape) < 0.2] = (numpy.nan, numpy.inf)[trial // 2 % 2]
        grid = rng.uniform(-1.25, 1.25, (2, 3, 4, 2)).astype(numpy.float32)
        kwargs = dict(mode="bilinear", padding_mode="reflection", align_corners=True)
        case = Case("grid_sample", {"x": x, "grid": grid}, kwargs, input_class=("nan", "inf")[trial // 2 % 2])
        assert onnxruntime_adapter._grid_sample_model(case) == onnxruntime_adapter.GRID_REFLECT_ZERO_RANGE
        model = ort_grid_sample.ort_grid_sample(case, Results(None, None, {}), None).values
        numpy.testing.assert_array_equal(model, _ort_grid_sample(x, grid, **kwargs))
        cubic = dict(kwargs, mode="bicubic")
        numpy.testing.assert_allclose(_ort_grid_sample(x, grid, **cubic), poolref.grid_sample(x, grid, **cubic), rtol=1e-4, atol=1e-5)
    assert "int(1 / 0.0), undefined behaviour in C++" in onnxruntime_adapter.GRID_REFLECT_ZERO_RANGE
