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
    for public in poolref.__all__:
        function = getattr(poolref, public)
        if not inspect.isfunction(function):
            continue
        for parameter in inspect.signature(function).parameters.values():
            if isinstance(parameter.default, bool) and not any(row.startswith(f"{public}.{parameter.name}") for row in FLAG_IDS):
                missing.append(f"{public}.{parameter.name}")
    assert not missing, f"boolean flags without a row in FLAGS: {missing}"
    assert {"ceil_mode", "return_indices", "count_include_pad", "align_corners", "antialias"} <= names
