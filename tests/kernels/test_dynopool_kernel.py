"""The fused CUDA kernels of DynOPool against the NumPy array code: values and both gradients.

Skipped where cupy or a GPU is missing (CI has neither); run on a GPU machine with
``pytest tests/kernels``. The source is also compiled to PTX with nvcc where nvcc is on the PATH,
so that a syntax or type error in the kernel fails here even without a GPU.
"""

import shutil
import subprocess

import numpy
import pytest

import poolref
from poolref import kernels
from poolref.autograd import vjp


def cupy_or_skip():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no GPU")
    except Exception:  # no driver or no device
        pytest.skip("cupy is installed but no GPU is available")
    return cupy


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_kernel_source_compiles_to_ptx(tmp_path):
    result = subprocess.run(
        ["nvcc", "-ptx", "--fmad=false", "--std=c++14", "-o", str(tmp_path / "dynopool.ptx"), str(kernels.SOURCE)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "dynopool.ptx").read_text()
    for name in ("forward", "backward"):
        for dtype in ("float32", "float64"):
            assert f".entry dynopool_{name}_{dtype}" in ptx


CASES = [
    ((2, 3, 8, 8), (2.0, 2.0)),
    ((2, 3, 9, 7), (1.7, 2.6)),
    ((1, 4, 5, 11), (0.6, 0.8)),  # enlarges: outputs share pixels, the atomics add up
    ((3, 2, 16, 12), (3.3, 1.2)),
    ((2, 5, 6), (1.5, 2.5)),  # unbatched
    ((0, 3, 6, 6), (2.0, 2.0)),  # empty batch
]


@pytest.mark.parametrize("shape, alpha", CASES)
@pytest.mark.parametrize("aggregate", ["max", "avg"])
@pytest.mark.parametrize("dtype, rtol", [(numpy.float64, 1e-12), (numpy.float32, 1e-5)])
def test_kernels_match_the_array_code(shape, alpha, aggregate, dtype, rtol):
    cupy = cupy_or_skip()
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    a = numpy.array(alpha)
    fn = lambda t, b: poolref.dynopool2d(t, b, aggregate=aggregate)
    y, pull = vjp(fn, x, a)
    y_gpu, pull_gpu = vjp(fn, cupy.asarray(x), a)
    assert isinstance(y_gpu, cupy.ndarray) and y_gpu.dtype == dtype
    # the forward rounds as NumPy does (no fused multiply-adds): equal, not just close
    numpy.testing.assert_array_equal(cupy.asnumpy(y_gpu), y)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad_x, grad_alpha = pull(g)
    grad_x_gpu, grad_alpha_gpu = pull_gpu(cupy.asarray(g))
    numpy.testing.assert_allclose(cupy.asnumpy(grad_x_gpu), grad_x, rtol=rtol, atol=rtol)
    numpy.testing.assert_allclose(grad_alpha_gpu, grad_alpha, rtol=max(rtol, 1e-9) * 100, atol=rtol * 100)


def test_kernels_refuse_what_they_cannot_index():
    cupy = cupy_or_skip()
    x = cupy.zeros((1, 1, 4, 4), dtype=numpy.float32)[:, :, ::2, :]  # not contiguous
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels._check_launch(x, 4)
    with pytest.raises(ValueError, match="overflows"):
        kernels._check_launch(cupy.zeros((1, 1, 2, 2), dtype=numpy.float32), 2**31)
    with pytest.raises(TypeError, match="float32 or float64"):
        kernels._check_launch(cupy.zeros((1, 1, 2, 2), dtype=numpy.float16), 4)


def test_float16_on_the_gpu_computes_in_float32_like_numpy():
    cupy = cupy_or_skip()
    x = numpy.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(numpy.float16)
    y = poolref.dynopool2d(cupy.asarray(x), numpy.array([1.5, 2.0]))
    numpy.testing.assert_array_equal(cupy.asnumpy(y), poolref.dynopool2d(x, numpy.array([1.5, 2.0])))
