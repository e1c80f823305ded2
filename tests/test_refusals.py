"""Refusals of absurd input across the public API (issue 15): boolean flags that are not bools, and
sizes that would exhaust memory or run for minutes, each refused at once with the argument named."""

import re
import time

import numpy
import pytest

import poolref
import poolref.nn as nn
from poolref._checks import MAX_ELEMENTS
from poolref.testing import assert_matches

RNG = numpy.random.default_rng(0)
X1 = RNG.random((1, 2, 6))
X2 = RNG.random((1, 4, 6, 6))
X3 = RNG.random((1, 2, 4, 4, 4))
BOX = numpy.array([[0, 1, 1, 3, 3.0]])


# ==================================================================================================
# Boolean flags: only bools (Python or NumPy), as ceil_mode always did
# ==================================================================================================
# (name, call with the flag's value, whether the API takes None for it). Every boolean flag of the
# public ops, layers, optimizers, Tensor and testing helpers.
FLAGS = [
    *[(f"max_pool{n}d.{flag}", (lambda n, x, flag: lambda v: getattr(poolref, f"max_pool{n}d")(x, 2, **{flag: v}))(n, x, flag), False)
      for n, x in ((1, X1), (2, X2), (3, X3)) for flag in ("ceil_mode", "return_indices")],
    *[(f"avg_pool{n}d.{flag}", (lambda n, x, flag: lambda v: getattr(poolref, f"avg_pool{n}d")(x, 2, **{flag: v}))(n, x, flag), False)
      for n, x in ((1, X1), (2, X2), (3, X3)) for flag in ("ceil_mode", "count_include_pad")],
    *[(f"lp_pool{n}d.ceil_mode", (lambda n, x: lambda v: getattr(poolref, f"lp_pool{n}d")(x, 2, 2, ceil_mode=v))(n, x), False)
      for n, x in ((1, X1), (2, X2), (3, X3))],
    *[(f"adaptive_max_pool{n}d.return_indices",
       (lambda n, x: lambda v: getattr(poolref, f"adaptive_max_pool{n}d")(x, 2, return_indices=v))(n, x), False)
      for n, x in ((1, X1), (2, X2), (3, X3))],
    ("fractional_max_pool2d.return_indices", lambda v: poolref.fractional_max_pool2d(X2, 2, output_size=3, return_indices=v, rng=0), False),
    ("fractional_max_pool3d.return_indices", lambda v: poolref.fractional_max_pool3d(X3, 2, output_size=2, return_indices=v, rng=0), False),
    ("stochastic_pool2d.training", lambda v: poolref.stochastic_pool2d(X2, 2, training=v, rng=0), False),
    ("bilinear_pool.signed_sqrt", lambda v: poolref.bilinear_pool(X2, signed_sqrt=v), False),
    ("bilinear_pool.l2_normalize", lambda v: poolref.bilinear_pool(X2, l2_normalize=v), False),
    ("roi_align.aligned", lambda v: poolref.roi_align(X2, BOX, 2, aligned=v), False),
    ("max_blur_pool2d.ceil_mode", lambda v: poolref.max_blur_pool2d(X2, 3, ceil_mode=v), True),
    ("dynopool2d.return_size", lambda v: poolref.dynopool2d(X2, numpy.array([2.0, 2.0]), return_size=v), False),
    ("grid_sample.align_corners", lambda v: poolref.grid_sample(X2, numpy.zeros((1, 2, 2, 2)), align_corners=v), True),
    ("interpolate.align_corners", lambda v: poolref.interpolate(X2, size=3, mode="bilinear", align_corners=v), True),
    ("interpolate.antialias", lambda v: poolref.interpolate(X2, size=3, mode="bilinear", antialias=v), True),
    ("interpolate.recompute_scale_factor", lambda v: poolref.interpolate(X2, scale_factor=0.5, recompute_scale_factor=v), True),
    ("MaxPool2d.ceil_mode", lambda v: nn.MaxPool2d(2, ceil_mode=v), False),
    ("MaxPool2d.return_indices", lambda v: nn.MaxPool2d(2, return_indices=v), False),
    ("AvgPool2d.ceil_mode", lambda v: nn.AvgPool2d(2, ceil_mode=v), False),
    ("AvgPool2d.count_include_pad", lambda v: nn.AvgPool2d(2, count_include_pad=v), False),
    ("Conv2d.bias", lambda v: nn.Conv2d(2, 2, 3, bias=v, rng=0), False),
    ("DeformConv2d.bias", lambda v: nn.DeformConv2d(2, 2, 3, bias=v, rng=0), False),
    ("DeformConv2d.modulated", lambda v: nn.DeformConv2d(2, 2, 3, modulated=v, rng=0), False),
    ("Linear.bias", lambda v: nn.Linear(2, 2, bias=v, rng=0), False),
    ("ShapeAdaptor.residual", lambda v: nn.ShapeAdaptor(residual=v), False),  # was bool(residual): "no" was True
    ("BatchNorm2d.affine", lambda v: nn.BatchNorm2d(2, affine=v), False),
    ("BatchNorm2d.track_running_stats", lambda v: nn.BatchNorm2d(2, track_running_stats=v), False),
    ("Linear.train.mode", lambda v: nn.Linear(2, 2, rng=0).train(v), False),
    ("SGD.nesterov", lambda v: nn.SGD(nn.Linear(2, 2, rng=0).parameters(), 0.1, momentum=0.9, nesterov=v), False),
    ("Tensor.requires_grad", lambda v: poolref.Tensor(numpy.ones(2), requires_grad=v), False),
    ("Tensor.sum.keepdims", lambda v: poolref.Tensor(numpy.ones(2)).sum(keepdims=v), False),
    ("Tensor.mean.keepdims", lambda v: poolref.Tensor(numpy.ones(2)).mean(keepdims=v), False),
    ("assert_matches.equal_nan", lambda v: assert_matches(numpy.ones(2), numpy.ones(2), equal_nan=v), False),
    ("assert_matches.zero_sign", lambda v: assert_matches(numpy.ones(2), numpy.ones(2), zero_sign=v), False),
]
FLAG_IDS = [name for name, _, _ in FLAGS]


@pytest.mark.parametrize("name, call, none_ok", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("value", ["no", 1, 0, 1.0, None, numpy.int64(1)])
def test_a_boolean_flag_refuses_anything_but_a_bool(name, call, none_ok, value):
    # was: avg_pool2d(count_include_pad="no") counted padding ("no" is truthy), max_pool2d(return_indices="no")
    # returned indices, and likewise every flag but ceil_mode, aligned, training, align_corners
    if value is None and none_ok:
        call(value)  # None is the API's "the convention's default" here
        return
    flag = name.rsplit(".", 1)[1]
    with pytest.raises(TypeError, match=rf"{flag} must be a bool(?: or None)?, got {flag}={re.escape(repr(value))}$"):
        call(value)


@pytest.mark.parametrize("name, call, none_ok", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("value", [True, False, numpy.bool_(True), numpy.bool_(False)])
def test_a_boolean_flag_takes_python_and_numpy_bools(name, call, none_ok, value):
    call(value)


def test_every_boolean_parameter_of_the_public_api_is_in_the_flag_table():
    # A new op with a flag that is not checked would slip through: find the parameters whose default
    # is True or False (or that the API documents as bools defaulting to None) and ask for a row.
    import inspect

    names = {name.split(".")[-1] for name in FLAG_IDS}
    missing = []
    callables = [(public, getattr(poolref, public)) for public in poolref.__all__]
    callables += [(public, getattr(nn, public)) for public in nn.__all__ if inspect.isclass(getattr(nn, public))]  # layers
    for public, function in callables:
        if not (inspect.isfunction(function) or inspect.isclass(function)):
            continue
        for parameter in inspect.signature(function).parameters.values():
            if isinstance(parameter.default, bool) and not any(row.startswith(f"{public}.{parameter.name}") for row in FLAG_IDS):
                missing.append(f"{public}.{parameter.name}")
    assert not missing, f"boolean flags without a row in FLAGS: {missing}"
    assert {"ceil_mode", "return_indices", "count_include_pad", "align_corners", "antialias"} <= names


# ==================================================================================================
# Absurd sizes: refused before anything is allocated, at once, naming the argument and the size
# ==================================================================================================
X8 = RNG.random((1, 2, 8, 8))
PS = RNG.random((1, 4, 8, 8))


def _box(side):
    return numpy.array([[0, 0, 0, side, side]], dtype=float)


def _unpool(**kwargs):
    y, i = poolref.max_pool2d(X8, 2, return_indices=True)
    return poolref.max_unpool2d(y, i, 2, **kwargs)


# (id, call, the argument the message must name). What each did before issue 15's fix is in the id's
# comment: MemoryError after trying to allocate, or minutes of work.
ABSURD = [
    ("roi_align box 1e5", lambda: poolref.roi_align(X8, _box(1e5), 7), r"boxes\[0\]"),  # MemoryError, 298 GiB
    ("roi_align box 3e9", lambda: poolref.roi_align(X8, _box(3e9), 7), r"boxes\[0\]"),  # ran for minutes
    ("roi_align box 1e300", lambda: poolref.roi_align(X8, _box(1e300), 7), r"boxes\[0\]"),  # int64 overflow: an empty grid, zeros
    ("roi_align box overflowing float32", lambda: poolref.roi_align(X8.astype(numpy.float32), _box(1e300), 7), r"boxes\[0\]"),
    ("roi_align sampling_ratio 1e6", lambda: poolref.roi_align(X8, _box(4), 7, sampling_ratio=10**6), "sampling_ratio=1000000"),  # 116 TiB
    ("roi_align output_size 1e6", lambda: poolref.roi_align(X8, _box(4), 10**6, sampling_ratio=1), "output_size=1000000"),
    ("roi_align onnx max box 1e5", lambda: poolref.roi_align(X8, _box(1e5), 7, mode="max", convention="onnx"), r"boxes\[0\]"),
    ("roi_align list of boxes", lambda: poolref.roi_align(X8, [numpy.array([[0, 0, 1, 1.0], [0, 0, 1e5, 1e5]])], 7), r"boxes\[1\]"),
    ("ps_roi_align box 1e5", lambda: poolref.ps_roi_align(PS, _box(1e5), 2), r"boxes\[0\]"),
    ("ps_roi_align sampling_ratio 1e6", lambda: poolref.ps_roi_align(PS, _box(4), 2, sampling_ratio=10**6), "sampling_ratio=1000000"),
    ("ps_roi_pool output_size 1e5", lambda: poolref.ps_roi_pool(PS, _box(4), 10**5), "output_size=100000"),
    ("roi_pool output_size 1e6", lambda: poolref.roi_pool(X8, _box(4), 10**6), "output_size=1000000"),  # MemoryError
    ("deform_roi_pool box 1e5", lambda: poolref.deform_roi_pool(X8, _box(1e5), None, 7), r"boxes\[0\]"),
    ("deform_roi_pool sampling_ratio 1e6", lambda: poolref.deform_roi_pool(X8, _box(4), None, 7, sampling_ratio=10**6), "sampling_ratio=1000000"),
    ("interpolate scale_factor 1e8", lambda: poolref.interpolate(X8, scale_factor=1e8), r"scale_factor=100000000\.0"),  # ran for > 20 s
    ("interpolate scale_factor 1e8 bilinear", lambda: poolref.interpolate(X8, scale_factor=1e8, mode="bilinear"), "scale_factor="),
    ("interpolate scale_factor 1e300", lambda: poolref.interpolate(X8, scale_factor=1e300), r"scale_factor=1e\+300"),
    ("interpolate scale_factor per axis", lambda: poolref.interpolate(X8, scale_factor=(1.0, 1e12)), r"scale_factor=\(1\.0, 1000000000000\.0\)"),
    ("interpolate size 1e9", lambda: poolref.interpolate(X8, size=10**9), "size=1000000000"),
    ("interpolate area size 1e6", lambda: poolref.interpolate(X8, size=10**6, mode="area"), "size=1000000"),
    ("interpolate tensorflow size 1e6", lambda: poolref.interpolate(X8, size=10**6, mode="bilinear", convention="tensorflow"), "size=1000000"),
    ("adaptive_avg_pool2d 1e6", lambda: poolref.adaptive_avg_pool2d(X8, 10**6), "output_size=1000000"),
    ("adaptive_max_pool2d 1e6", lambda: poolref.adaptive_max_pool2d(X8, 10**6), "output_size=1000000"),
    ("adaptive_avg_pool1d 1e11", lambda: poolref.adaptive_avg_pool1d(X1, 10**11), "output_size=100000000000"),
    ("adaptive_max_pool3d one axis", lambda: poolref.adaptive_max_pool3d(X3, (1, 1, 10**10)), r"output_size=\(1, 1, 10000000000\)"),
    ("spatial_pyramid_pool2d level 1e5", lambda: poolref.spatial_pyramid_pool2d(X8, levels=(1, 10**5)), r"levels=\(1, 100000\)"),
    ("grid_sample grid of 1e5 points, 1e5 channels", lambda: poolref.grid_sample(numpy.zeros((1, 10**5, 2, 2)), numpy.zeros((1, 1, 10**5, 2))), r"grid\.shape=\(1, 1, 100000, 2\)"),
    ("max_unpool2d stride 1e6", lambda: _unpool(stride=10**6), "stride=1000000"),  # MemoryError, 131 TiB
    ("max_unpool2d kernel 1e6", lambda: poolref.max_unpool2d(*poolref.max_pool2d(X8, 2, return_indices=True), 10**6), "kernel_size=1000000"),
    ("max_pool2d kernel and padding 1e6", lambda: poolref.max_pool2d(X8, 10**6, padding=5 * 10**5), "padding=500000"),  # MemoryError, 7 TiB
    ("avg_pool2d kernel and padding 1e6", lambda: poolref.avg_pool2d(X8, 10**6, padding=5 * 10**5), "padding=500000"),
    ("lp_pool2d ceil-mode overhang 1e6", lambda: poolref.lp_pool2d(X8, 2, 10**6, ceil_mode=True), "kernel_size=1000000"),
    ("avg_pool2d same padding, kernel 1e6", lambda: poolref.avg_pool2d(X8, 10**6, stride=1, padding="same", convention="onnx"), "padding='same'"),
    ("max_pool1d kernel 1e10", lambda: poolref.max_pool1d(X1, 10**10, padding=5 * 10**9), "padding=5000000000"),  # the window table itself
    ("max_pool2d jax pads 1e6", lambda: poolref.max_pool2d(X8, 2, stride=1, padding=((10**6, 10**6), (10**6, 10**6)), convention="jax"), "padding="),
    ("mixed_pool2d kernel and padding 1e6", lambda: poolref.mixed_pool2d(X8, 10**6, padding=5 * 10**5), "padding=500000"),
    ("blur_pool2d kernel 1e6", lambda: poolref.blur_pool2d(X8, 10**6), "kernel_size=1000000"),  # ran for minutes
    ("bilinear_pool of 10**5 channels", lambda: poolref.bilinear_pool(numpy.zeros((1, 10**5, 1))), r"x\.shape=\(1, 100000, 1\)"),  # 80 GB
    ("dynopool2d alpha 1e-300", lambda: poolref.dynopool2d(X8, numpy.array([1e-300, 2.0])), r"alpha=\(1e-300, 2\.0\)"),
    ("conv2d padding 1e5", lambda: poolref.conv2d(X8, numpy.ones((1, X8.shape[1], 3, 3)), padding=10**5), "padding=100000"),  # MemoryError, 596 GiB
    ("conv2d padding 1e9", lambda: poolref.conv2d(X8, numpy.ones((1, X8.shape[1], 3, 3)), padding=10**9), "padding=1000000000"),
    # the dilated span is what grows: named dilation (was: kernel_size=2, which is not to blame)
    ("max_pool2d dilation 1e12", lambda: poolref.max_pool2d(X8, 2, dilation=10**12), r"dilation=\(1000000000000, 1000000000000\)"),
    ("conv2d dilation 1e12", lambda: poolref.conv2d(X8, numpy.ones((1, X8.shape[1], 3, 3)), dilation=10**12), "dilation="),
]


@pytest.mark.parametrize("call, argument", [row[1:] for row in ABSURD], ids=[row[0] for row in ABSURD])
def test_an_absurd_size_is_refused_at_once_naming_the_argument_and_the_size(call, argument):
    # A hang guard, not a timing: each of these allocated hundreds of GiB or ran for minutes
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{argument}.* asks for (?:about )?\S+ elements in .*more than poolref allocates for one array \({MAX_ELEMENTS}\)"):
        call()
    assert time.perf_counter() - start < 0.5


# Layers whose parameters would be absurd (each raised MemoryError while drawing the weights, or
# numpy's "array is too big"): (id, construction, the arguments the message must name)
ABSURD_LAYERS = [
    ("Conv2d out_channels 1e12", lambda: nn.Conv2d(2, 10**12, 3, rng=0), "in_channels=2, out_channels=1000000000000, kernel_size=3"),
    ("Conv2d in_channels 1e12", lambda: nn.Conv2d(10**12, 3, 3, rng=0), "in_channels=1000000000000"),
    ("Conv2d kernel_size 1e12", lambda: nn.Conv2d(2, 3, 10**12, rng=0), "kernel_size=1000000000000"),
    ("DeformConv2d out_channels 1e12", lambda: nn.DeformConv2d(2, 10**12, 3, rng=0), "out_channels=1000000000000"),
    ("Linear in_features 1e12", lambda: nn.Linear(10**12, 2, rng=0), "in_features=1000000000000, out_features=2"),
    ("ASPP in_channels 1e12", lambda: nn.ASPP(10**12, 3, rng=0), "in_channels=1000000000000"),
    ("BatchNorm2d num_features 1e12", lambda: nn.BatchNorm2d(10**12), "num_features=1000000000000"),
]


@pytest.mark.parametrize("call, arguments", [row[1:] for row in ABSURD_LAYERS], ids=[row[0] for row in ABSURD_LAYERS])
def test_an_absurd_layer_is_refused_before_its_weights_are_drawn(call, arguments):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{re.escape(arguments)}.* ask for \d+ elements in a weight of shape .*more than "
                                         rf"poolref allocates for one array \({MAX_ELEMENTS}\)"):
        call()
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("call, error, words", [
    # Flatten's axes: checked when it is built (a float axis failed in a slice, None in a modulo), and
    # an axis beyond x's is refused (5 % 4 flattened axis 1 without a word)
    (lambda: nn.Flatten(1.5), TypeError, "Flatten: start_dim must be an int (an axis), got start_dim=1.5"),
    (lambda: nn.Flatten(1, None), TypeError, "end_dim must be an int (an axis), got end_dim=None"),
    (lambda: nn.Flatten(5)(numpy.zeros((2, 3, 4, 5))), ValueError, "Flatten: start_dim=5 is not an axis of x with 4 axes"),
    # DynOPool: float('a') leaked "could not convert string to float"
    (lambda: nn.DynOPool("ab"), ValueError, "DynOPool: init_alpha must be two finite numbers > 0, got init_alpha='ab'"),
    (lambda: nn.DynOPool((1j, 2)), ValueError, "init_alpha=(1j, 2)"),
    # ShapeAdaptor: a branch that is not callable failed at the first forward ("'int' object is not
    # callable"); True passed as a scale or an alpha
    (lambda: nn.ShapeAdaptor(low=3, r1=0.25), TypeError, "ShapeAdaptor: low must be a callable branch"),
    (lambda: nn.ShapeAdaptor(high="identity", r2=2.0), TypeError, "high='identity'"),
    (lambda: nn.ShapeAdaptor(init_alpha=True), ValueError, "init_alpha must be a finite number, got init_alpha=True"),
    (lambda: nn.ShapeAdaptor(r2=True), ValueError, "got r1=0.5, r2=True"),
], ids=["Flatten float", "Flatten None", "Flatten axis 5 of 4", "DynOPool string", "DynOPool complex",
        "ShapeAdaptor low", "ShapeAdaptor high", "ShapeAdaptor alpha True", "ShapeAdaptor r2 True"])
def test_layer_arguments_are_checked_when_the_layer_is_built(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_a_sampling_grid_at_the_limit_is_allowed_and_one_more_is_refused():
    # the refusal counts the reads the align ops hold, 4 g_h g_w per bin, and nothing else
    from poolref.ops.region.boxes import check_sampling_grid

    rois = numpy.array([[0, 0, 0, 4, 4.0]])
    check_sampling_grid(rois, (2, 1), 1.0, 2**14, 0.0, True, "roi_align")  # 4 * 2 * (2^14)^2 = 2^31 reads
    with pytest.raises(ValueError, match="sampling_ratio=16385 asks for 2147745800 elements"):
        check_sampling_grid(rois, (2, 1), 1.0, 2**14 + 1, 0.0, True, "roi_align")
    # adaptive: ceil(roi / bins) samples per bin side, from the same geometry as the op
    check_sampling_grid(numpy.array([[0, 0, 0, 2**14, 2**15]]), (2, 1), 1.0, -1, 0.0, True, "roi_align")
    with pytest.raises(ValueError, match=r"boxes\[0\]=\[0\.0, 0\.0, 0\.0, 16384\.5, 32768\.0\] asks for 2147614720 elements"):
        check_sampling_grid(numpy.array([[0, 0, 0, 2**14 + 0.5, 2**15]]), (2, 1), 1.0, -1, 0.0, True, "roi_align")


def test_sane_sizes_near_the_refused_ones_still_run():
    y = poolref.roi_align(X8, _box(40.0), 2)  # g = 20 samples per bin side
    assert y.shape == (1, 2, 2, 2) and numpy.isfinite(y).all()
    assert poolref.interpolate(X8, scale_factor=8.0).shape == (1, 2, 64, 64)
    assert poolref.adaptive_avg_pool2d(X8, 100).shape == (1, 2, 100, 100)
    assert poolref.max_pool2d(X8, 9, padding=4, stride=1).shape == (1, 2, 8, 8)
    assert poolref.blur_pool2d(X8, 301).shape == (1, 2, 4, 4)  # a 301-tap binomial kernel, computed quickly


# ==================================================================================================
# interpolate's shape errors say plainly that x is batched
# ==================================================================================================
@pytest.mark.parametrize("kwargs, first_words", [
    (dict(size=3, mode="bilinear"), r"mode='bilinear' needs x of shape \(N, C, H, W\), got x with shape \(3, 6, 6\)"),
    (dict(size=(4, 4)), r"size must have one entry per spatial dimension \(1 for x with shape \(3, 6, 6\)\), got size=\(4, 4\)"),
    (dict(scale_factor=(2.0, 2.0)), r"scale_factor must have one entry per spatial dimension \(1 for x with shape \(3, 6, 6\)\)"),
    (dict(size=(4, 4), mode="nearest-exact"), r"size must have one entry per spatial dimension"),
])
def test_interpolate_of_an_unbatched_image_says_x_is_batched_and_how_to_add_the_axis(kwargs, first_words):
    # was: "size must have one entry per spatial dimension (1 for x with shape (3, 6, 6))", which
    # does not say why a (C, H, W) image has one spatial dimension
    with pytest.raises(ValueError, match=first_words + r".*interpolate's x is always batched, \(N, C, \*spatial\), as in "
                                         r"PyTorch: a 3-D x is \(N, C, L\), so an unbatched \(C, H, W\) image needs a batch axis, x\[None\]$"):
        poolref.interpolate(RNG.random((3, 6, 6)), **kwargs)
    # and the advice works
    assert poolref.interpolate(RNG.random((3, 6, 6))[None], **kwargs).ndim == 4


@pytest.mark.parametrize("x, words", [
    (numpy.ones(5), r"x must have shape \(N, C, L\), \(N, C, H, W\) or \(N, C, D, H, W\), got x with shape \(5,\); interpolate's x is always batched"),
    (numpy.ones((1, 1, 1, 1, 1, 4)), r"got x with shape \(1, 1, 1, 1, 1, 4\); interpolate's x is always batched"),
])
def test_interpolate_names_the_shapes_it_takes(x, words):
    with pytest.raises(ValueError, match=words):
        poolref.interpolate(x, size=3)


@pytest.mark.parametrize("x, words", [(None, "got x=None"), ([[1.0, 2.0], [3.0]], "got x of type list that numpy cannot convert")])
def test_interpolate_refuses_none_and_ragged_lists_with_a_type_error(x, words):
    # was: "x must have shape ... got x with shape ()" for None, numpy's own ValueError for a ragged list
    with pytest.raises(TypeError, match=r"interpolate: x must be an array .*" + re.escape(words)):
        poolref.interpolate(x, size=3)
