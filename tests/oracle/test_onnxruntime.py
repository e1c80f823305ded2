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
