"""The fused CUDA kernels of DynOPool against the NumPy array code: values and both gradients.

The GPU tests are skipped where cupy or a GPU is missing (CI has neither); run them on a GPU machine
with ``pytest tests/kernels``. Everywhere else the same source is compiled to PTX with nvcc (where nvcc
is on the PATH) and, unchanged, as C++ against a shim of the CUDA built-ins (``cuda_shim.hpp``), so
that the kernels run on the CPU and are held to the array code, NaN, infinities and signed zeros
included.
"""

import shutil
import subprocess

import numpy
import pytest

import poolref
from poolref import kernels
from poolref.autograd import vjp
from poolref.ops.dynopool import _backward_arrays, _forward_arrays, query_axis


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


# --------------------------------------------------------------------------------------------------
# The kernels on the CPU: dynopool.cu compiled unchanged as C++ against tests/kernels/cuda_shim.hpp
# (every CUDA thread a std::thread, warp shuffles behind a barrier, real atomics), so that the
# kernels are run and held to the array code on every machine with a C++20 compiler, GPU or not.
# --------------------------------------------------------------------------------------------------
from kernels import emulator  # noqa: E402  (tests/ is on pytest's pythonpath)


@pytest.fixture(scope="module")
def cpu_kernels():
    if not emulator.available():
        pytest.skip(emulator.why_not())
    module = emulator.module_for(kernels.SOURCE)

    def run(mode, x, out_h, out_w, cell_h, cell_w, use_max, grad_y=None, choice=None):
        total = x.shape[0] * x.shape[1] * out_h * out_w
        sizes = (numpy.int32(total), numpy.int32(x.shape[2]), numpy.int32(x.shape[3]), numpy.int32(out_h),
                 numpy.int32(out_w), numpy.float64(cell_h), numpy.float64(cell_w), numpy.int32(use_max))
        blocks = ((total + 255) // 256,)
        if mode == "forward":
            y = numpy.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
            chosen = numpy.empty(y.shape, dtype=numpy.int8)
            module.get_function(f"dynopool_forward_{x.dtype.name}")(blocks, (256,), (x, y, chosen, *sizes))
            return y, chosen
        grad_x = numpy.zeros_like(x)
        grad_cell = numpy.zeros(2)
        module.get_function(f"dynopool_backward_{x.dtype.name}")(
            blocks, (256,), (x, numpy.ascontiguousarray(grad_y, dtype=x.dtype), numpy.ascontiguousarray(choice, dtype=numpy.int8),
                             grad_x, grad_cell, *sizes))
        return grad_x, tuple(grad_cell.tolist())

    return run


def _array_code(x, alpha, aggregate, grad_y):
    rows, columns = query_axis(x.shape[2], alpha[0]), query_axis(x.shape[3], alpha[1])
    y, choice, query_rows = _forward_arrays(x, rows, columns, aggregate, numpy)
    g = grad_y(y.shape)
    grad_x, sums = _backward_arrays(x, query_rows, g, choice, rows, columns, aggregate, numpy)
    return rows, columns, y, choice, g, grad_x, sums


def _special_values(shape, dtype, seed):
    """Random values with NaN, +-inf, ties and signed zeros planted, some of them where no point reads."""
    rng = numpy.random.default_rng(seed)
    x = rng.integers(-3, 4, shape).astype(dtype) * dtype(0.5)  # many ties
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
    for spot, value in zip(spots, [numpy.nan, numpy.inf, -numpy.inf, -0.0, 0.0, numpy.nan]):
        flat[spot] = value
    return x


KERNEL_CASES = CASES[:4] + [
    ((1, 1, 5, 3), (3.75, 1.0)),  # rows 2 of 5 is never read
    ((2, 2, 6, 8), (2.0, 2.0)),  # every point lies on a pixel: max_pool2d
]


@pytest.mark.parametrize("shape, alpha", KERNEL_CASES)
@pytest.mark.parametrize("aggregate", ["max", "avg"])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("special", [False, True])
def test_kernels_on_the_cpu_match_the_array_code(cpu_kernels, shape, alpha, aggregate, dtype, special):
    rng = numpy.random.default_rng(1)
    x = _special_values(shape, dtype, 3) if special else rng.standard_normal(shape).astype(dtype)

    def grad_y(out_shape):
        g = rng.standard_normal(out_shape).astype(dtype)
        if special:
            g.reshape(-1)[:2] = [numpy.inf, numpy.nan]  # upstream inf / NaN stay with their point
            g.reshape(-1)[-1] = 0.0
        return g

    rows, columns, y, choice, g, grad_x, sums = _array_code(x, alpha, aggregate, grad_y)
    use_max = aggregate == "max"
    cell_h, cell_w = rows.length / rows.out_length, columns.length / columns.out_length
    y_cpu, choice_cpu = cpu_kernels("forward", x, rows.out_length, columns.out_length, cell_h, cell_w, use_max)
    # the forward rounds as NumPy's does: equal bit for bit, NaN where NaN, signed zeros included
    numpy.testing.assert_array_equal(y_cpu, y)
    numpy.testing.assert_array_equal(numpy.signbit(y_cpu), numpy.signbit(y))
    if use_max:
        numpy.testing.assert_array_equal(choice_cpu, choice)
    grad_x_cpu, sums_cpu = cpu_kernels("backward", x, rows.out_length, columns.out_length, cell_h, cell_w, use_max,
                                       grad_y=g, choice=choice_cpu)
    rtol = 1e-12 if dtype == numpy.float64 else 1e-5
    numpy.testing.assert_allclose(grad_x_cpu, grad_x, rtol=rtol, atol=rtol)  # NaN and inf where they are
    numpy.testing.assert_allclose(sums_cpu, sums, rtol=max(rtol, 1e-9) * 100, atol=rtol * 100)


def test_kernels_on_the_cpu_read_no_pixel_twice_and_no_unread_nan(cpu_kernels):
    # the review's case: row 2 of a 5-row map is read by no query point; its NaN must not reach the
    # alpha gradient (NumPy gave [nan, 1.5156], the loop reference and the kernel [-0.2987, 1.5156])
    x = numpy.random.default_rng(0).standard_normal((1, 1, 5, 3))
    x[0, 0, 2, 1] = numpy.nan
    rows, columns, y, choice, g, grad_x, sums = _array_code(x, (3.75, 1.0), "max", numpy.ones)
    _, sums_cpu = cpu_kernels("backward", x, rows.out_length, columns.out_length, 5.0, 1.0, True,
                              grad_y=g, choice=choice)
    numpy.testing.assert_allclose(sums_cpu, sums, rtol=1e-12)
    assert numpy.isfinite(sums).all()
