"""DynOPool's kernels on a real GPU with real CuPy, against the array code (skipped without both).

Run by ``python benchmarks/gpu_check.py`` on a GPU machine. The cases and comparisons are those of
test_dynopool_kernel.py, where the same kernels run on the CPU in the emulator on every machine.
"""

import numpy
import pytest

import poolref
from poolref import kernels
from poolref.autograd import vjp
from poolref.ops.dynopool import query_axis
from test_dynopool_kernel import array_code, assert_same_bits, assert_sums_close, make_case


def _real_cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "no GPU"
    except Exception as error:  # not installed, no driver or no device
        return None, f"no CuPy with a GPU here ({type(error).__name__}: {error})"
    return cupy, ""


cupy, why = _real_cupy()
if cupy is None or not hasattr(cupy.cuda, "nvrtc"):  # the test stand-in has no NVRTC: this file is for real CuPy
    pytest.skip(why or "cupy here is not real CuPy", allow_module_level=True)

GPU_CASES = [
    ((2, 3, 8, 8), (2.0, 2.0)),
    ((2, 3, 9, 7), (1.7, 2.6)),
    ((1, 4, 5, 11), (0.6, 0.8)),
    ((3, 2, 16, 12), (3.3, 1.2)),
    ((2, 5, 6), (1.5, 2.5)),
    ((0, 3, 6, 6), (2.0, 2.0)),
    ((4, 64, 33, 31), (1.7, 2.6)),
]


@pytest.mark.parametrize("shape, alpha", GPU_CASES)
@pytest.mark.parametrize("aggregate", ["max", "avg"])
# float64 subnormals are left out: nothing flushes them on either side
@pytest.mark.parametrize("dtype, kind", [(numpy.float64, "normal"), (numpy.float64, "special"),
                                         (numpy.float32, "normal"), (numpy.float32, "special"),
                                         (numpy.float32, "subnormal")])
def test_gpu_kernels_match_the_array_code(shape, alpha, aggregate, dtype, kind):
    rng = numpy.random.default_rng(0)
    x, grad_y = make_case(rng, shape, alpha, dtype, kind)
    y_gpu, choice_gpu = kernels.dynopool_forward(cupy, cupy.asarray(x), query_axis(x.shape[-2], alpha[0]),
                                                 query_axis(x.shape[-1], alpha[1]), aggregate == "max")
    rows, columns, y, choice, grad_x, sums = array_code(x, alpha, aggregate, grad_y)
    assert_same_bits(cupy.asnumpy(y_gpu), y, "forward on the GPU")
    grad_x_gpu, sums_gpu = kernels.dynopool_backward(cupy, cupy.asarray(x), cupy.asarray(grad_y), choice_gpu, rows,
                                                     columns, aggregate == "max")
    assert_same_bits(cupy.asnumpy(grad_x_gpu), grad_x, "grad_x on the GPU")
    rtol = 1e-12 if dtype == numpy.float64 else 1e-5
    scale = float(numpy.abs(numpy.nan_to_num(x, posinf=0, neginf=0)).sum()) * (2 * max(x.shape[-2:]) + 2) * 2
    assert_sums_close(cupy.asnumpy(sums_gpu), sums, scale, rtol)


@pytest.mark.parametrize("alpha_on_gpu", [False, True])
def test_gpu_dynopool2d_matches_numpy_through_the_tape(alpha_on_gpu):
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 7))
    a = numpy.array([1.7, 2.6])
    fn = lambda t, b: poolref.dynopool2d(t, b, return_size=True)  # noqa: E731
    (y, size), pull = vjp(fn, x, a)
    (y_gpu, size_gpu), pull_gpu = vjp(fn, cupy.asarray(x), cupy.asarray(a) if alpha_on_gpu else a)
    assert isinstance(y_gpu, cupy.ndarray) and isinstance(size_gpu, cupy.ndarray) == alpha_on_gpu
    g = rng.standard_normal(y.shape)
    grad_x, grad_alpha = pull((g, numpy.array([0.5, -2.0])))
    grad_x_gpu, grad_alpha_gpu = pull_gpu((cupy.asarray(g), (cupy.asarray if alpha_on_gpu else numpy.asarray)([0.5, -2.0])))
    assert isinstance(grad_x_gpu, cupy.ndarray) and isinstance(grad_alpha_gpu, cupy.ndarray) == alpha_on_gpu
    numpy.testing.assert_allclose(cupy.asnumpy(grad_x_gpu), grad_x, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(cupy.asnumpy(grad_alpha_gpu), grad_alpha, rtol=1e-9)


def test_gpu_float16_computes_in_float32_like_numpy():
    x = numpy.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(numpy.float16)
    y = poolref.dynopool2d(cupy.asarray(x), numpy.array([1.5, 2.0]))
    numpy.testing.assert_array_equal(cupy.asnumpy(y), poolref.dynopool2d(x, numpy.array([1.5, 2.0])))


def test_what_still_flushes_on_the_gpu():
    # the kernels keep float32 subnormals (test_gpu_kernels_match_the_array_code, kind "subnormal");
    # CuPy's own kernels are compiled with -ftz=true: an elementwise float32 product or a cast to
    # float32 flushes a subnormal to zero (docs/dynopool.rst, "What flushes")
    tiny = numpy.float32(1e-40)
    assert float((cupy.asarray(numpy.array([tiny])) * numpy.float32(1)).get()[0]) == 0.0
    assert float(cupy.asarray(numpy.array([1e-40])).astype(numpy.float32).get()[0]) == 0.0
    assert numpy.array([tiny])[0] * numpy.float32(1) == tiny  # NumPy keeps it
