import sys

import numpy
import pytest

import poolref
from poolref._backend import array_module, to_numpy


def test_numpy_is_chosen_for_numpy_arrays_and_plain_values():
    assert array_module(numpy.zeros(2), None, 3) is numpy


def test_import_poolref_does_not_import_cupy():
    import subprocess

    code = "import sys, poolref; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_same_code_runs_on_cupy(xp):
    x = xp.asarray(numpy.arange(16.0).reshape(1, 1, 4, 4))
    y, i = poolref.max_pool2d(x, 2, return_indices=True)
    assert array_module(y) is xp
    numpy.testing.assert_array_equal(to_numpy(y), [[[[5, 7], [13, 15]]]])
    numpy.testing.assert_array_equal(to_numpy(poolref.avg_pool2d(x, 2)), [[[[2.5, 4.5], [10.5, 12.5]]]])
    numpy.testing.assert_array_equal(to_numpy(poolref.adaptive_max_pool2d(x, 3)), [[[[5, 6, 7], [9, 10, 11], [13, 14, 15]]]])
