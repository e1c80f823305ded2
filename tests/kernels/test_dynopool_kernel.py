"""DynOPool's CUDA kernels (poolref/kernels/dynopool.cu) against the NumPy array code.

On every machine with a C++20 compiler (CI included) the kernels run on the CPU: the source is
compiled unchanged with the CUDA shim (tests/kernels/emulator.py) and launched by poolref's own
launchers (``poolref.kernels.dynopool_forward`` / ``dynopool_backward``), which are handed a minimal
array module (:func:`numpy_device`: numpy arrays as device memory, the emulator as ``RawModule``). The
forward and the gradient to ``x`` equal the array code bit for bit (NaN, infinities, signed zeros,
ties and float32 subnormals included); the alpha sums, added in another order, agree to rounding.
One run is under AddressSanitizer, one with several blocks at once.

On a GPU the same comparisons run with real CuPy: test_dynopool_gpu.py (``python benchmarks/gpu_check.py``).
"""

import functools
import os
import re
import shutil
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy
import pytest

from poolref import kernels
from poolref.ops.dynopool.arrays import _backward_by_points, _forward_arrays
from poolref.ops.dynopool.geometry import query_axis
from kernels import emulator  # tests/kernels/emulator.py (tests/ is on pytest's pythonpath)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
needs_emulator = pytest.mark.skipif(not emulator.available(), reason=emulator.why_not() or "no C++20 compiler")


# ==================================================================================================
# The kernels on the CPU, launched by poolref's launchers
# ==================================================================================================
def poisoned_empty(shape, dtype=numpy.float64):
    """``empty`` that fills the memory with NaN (or 99 for integers), so that an element a kernel fails
    to write cannot pass for a right one."""
    return numpy.full(shape, numpy.nan if numpy.dtype(dtype).kind == "f" else 99, dtype=dtype)


def numpy_device(concurrent_blocks: int = 1):
    """Just the part of ``cupy`` that poolref.kernels uses, with numpy arrays as device memory and the
    emulator as ``RawModule`` (no ``cuda.nvrtc``, so the launchers compile with ``RawModule``)."""
    return types.SimpleNamespace(
        __name__=f"numpy_device({concurrent_blocks})",
        ascontiguousarray=numpy.ascontiguousarray, empty=poisoned_empty, zeros=numpy.zeros, asarray=numpy.asarray,
        RawModule=functools.partial(emulator.EmulatedModule, concurrent_blocks=concurrent_blocks),
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0)),
    )


SEQUENTIAL = numpy_device(1)
CONCURRENT = numpy_device(4)  # four blocks at a time: the atomics of grad_cell race


def array_code(x, alpha, aggregate, grad_y):
    """The array code's forward and its point-wise backward (the definition): y, choice, grad_x, sums."""
    rows, columns = query_axis(x.shape[-2], alpha[0]), query_axis(x.shape[-1], alpha[1])
    with numpy.errstate(all="ignore"):
        y, choice, query_rows = _forward_arrays(x, rows, columns, aggregate, numpy)
        grad_x, sums = _backward_by_points(x, query_rows, grad_y, choice, rows, columns, aggregate, numpy)
    return rows, columns, y, choice, grad_x, sums


def assert_same_bits(actual, expected, what):
    """Equal bit for bit: same values, the same signed zeros, NaN where NaN (of any sign and payload:
    x86 passes on an operand's NaN, NumPy's vector loops may swap operands, a GPU makes its own)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    nan = numpy.isnan(expected)
    same = numpy.where(nan, numpy.isnan(actual), (actual == expected) & (numpy.signbit(actual) == numpy.signbit(expected)))
    assert same.all(), f"{what}: {numpy.count_nonzero(~same)} of {same.size} differ, first at {numpy.argwhere(~same)[0]}"


def assert_sums_close(actual, expected, terms_scale, rtol):
    """The alpha sums: the same set of terms added in another order, so equal up to rounding (NaN and
    infinities in the same places)."""
    actual, expected = numpy.asarray(actual, dtype=numpy.float64), numpy.asarray(expected, dtype=numpy.float64)
    numpy.testing.assert_array_equal(numpy.isnan(actual), numpy.isnan(expected))
    finite = numpy.isfinite(expected)
    numpy.testing.assert_array_equal(actual[~finite & ~numpy.isnan(expected)], expected[~finite & ~numpy.isnan(expected)])
    numpy.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=rtol * terms_scale)


def check_kernels(device, x, alpha, aggregate, grad_y):
    """Launch the three kernels through poolref's launchers and hold them to the array code."""
    rows, columns, y, choice, grad_x, sums = array_code(x, alpha, aggregate, grad_y)
    use_max = aggregate == "max"
    y_kernel, choice_kernel = kernels.dynopool_forward(device, x, rows, columns, use_max)
    assert_same_bits(y_kernel, y, "forward")
    if use_max:
        numpy.testing.assert_array_equal(choice_kernel, choice)
    else:
        assert choice_kernel is None
    grad_x_kernel, sums_kernel = kernels.dynopool_backward(device, x, grad_y, choice_kernel, rows, columns, use_max)
    assert_same_bits(grad_x_kernel, grad_x, "grad_x")
    scale = float(numpy.nansum(numpy.abs(numpy.where(numpy.isfinite(x), x, 0)))) * max(1.0, float(numpy.nanmax(
        numpy.abs(numpy.where(numpy.isfinite(grad_y), grad_y, 0)), initial=0))) * (2 * max(x.shape[-2:]) + 2)
    rtol = 1e-12 if x.dtype == numpy.float64 else 1e-5
    assert_sums_close(sums_kernel, sums, scale, rtol)


def plant(values, rng, specials, count):
    """Put ``count`` of the ``specials`` at random places of ``values`` (a copy)."""
    values = values.copy()
    flat = values.reshape(-1)
    if flat.size:
        spots = rng.choice(flat.size, size=min(flat.size, count), replace=False)
        flat[spots] = rng.choice(numpy.array(specials, dtype=values.dtype), size=spots.size)
    return values


SPECIALS = [numpy.nan, numpy.inf, -numpy.inf, -0.0, 0.0]


def make_case(rng, shape, alpha, dtype, kind):
    """x and grad_y for one case. kind: "normal", "ties" (a few values, many equal), "special"
    (ties plus NaN, +-inf and signed zeros, in x and in grad_y), "subnormal" (float32 subnormals)."""
    out_shape = (*shape[:-2], kernels_out(shape[-2], alpha[0]), kernels_out(shape[-1], alpha[1]))
    if kind == "normal":
        x, g = rng.standard_normal(shape), rng.standard_normal(out_shape)
    elif kind == "subnormal":
        tiny = numpy.finfo(dtype).smallest_subnormal
        x = rng.integers(-2000, 2000, shape) * tiny
        g = rng.integers(-3, 4, out_shape) * dtype(0.25)
        return x.astype(dtype), g.astype(dtype)
    else:
        x, g = rng.integers(-3, 4, shape) * 0.5, rng.integers(-3, 4, out_shape) * 0.5
    x, g = x.astype(dtype), g.astype(dtype)
    if kind == "special":
        x = plant(x, rng, SPECIALS, max(1, x.size // 8))
        g = plant(g, rng, SPECIALS, max(1, g.size // 10))
    return x, g


def kernels_out(length, alpha):
    return query_axis(length, alpha).out_length


# The edge cases: alpha = 2 (max_pool2d), alpha < 1 (enlarging: pixels read by many lines), H or W = 1,
# output size 1, totals not multiples of 32 or 256, unbatched, lines read by nobody, lines on pixels
EDGE_CASES = [
    ((2, 3, 8, 8), (2.0, 2.0)),  # every point on a pixel: max_pool2d
    ((2, 2, 6, 10), (2.0, 2.0)),
    ((1, 3, 9, 7), (1.7, 2.6)),
    ((1, 2, 5, 11), (0.6, 0.8)),  # enlarges
    ((2, 1, 4, 3), (0.3, 0.45)),  # enlarges a lot: up to 8 lines read a pixel
    ((3, 2, 16, 12), (3.3, 1.2)),
    ((1, 1, 5, 3), (3.75, 1.0)),  # row 2 of 5 is read by no query point
    ((2, 3, 1, 9), (1.0, 2.0)),  # H = 1
    ((2, 3, 9, 1), (2.0, 0.5)),  # W = 1, enlarged to 2
    ((1, 1, 1, 1), (1.0, 1.0)),  # one pixel
    ((3, 5, 7, 6), (9.0, 9.0)),  # output 1 x 1
    ((1, 1, 33, 2), (1.0, 2.0)),  # 33 outputs: one lane past the first warp
    ((1, 257, 1, 1), (1.0, 1.0)),  # 257 outputs: one thread past the first block
    ((4, 5, 6), (1.5, 2.5)),  # unbatched
]


@needs_emulator
@pytest.mark.parametrize("shape, alpha", EDGE_CASES)
@pytest.mark.parametrize("aggregate", ["max", "avg"])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("kind", ["normal", "special"])
def test_kernels_match_the_array_code_on_edge_cases(shape, alpha, aggregate, dtype, kind):
    rng = numpy.random.default_rng(zlib.crc32(repr((shape, alpha, kind)).encode()))
    x, grad_y = make_case(rng, shape, alpha, dtype, kind)
    check_kernels(SEQUENTIAL, x, alpha, aggregate, grad_y)


def random_cases(count, seed):
    rng = numpy.random.default_rng(seed)
    for _ in range(count):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 24)), int(rng.integers(1, 24)))
        alpha = tuple(float(a) for a in rng.choice([rng.uniform(0.3, 1.0), rng.uniform(1.0, 5.0), 2.0], size=2))
        yield shape, alpha, rng.choice(["max", "avg"]), rng.choice([numpy.float32, numpy.float64]), \
            rng.choice(["normal", "ties", "special"]), rng


@needs_emulator
def test_kernels_match_the_array_code_on_random_cases():
    for shape, alpha, aggregate, dtype, kind, rng in random_cases(60, seed=11):
        x, grad_y = make_case(rng, shape, alpha, dtype, kind)
        try:
            check_kernels(SEQUENTIAL, x, alpha, aggregate, grad_y)
        except AssertionError as error:
            raise AssertionError(f"shape {shape}, alpha {alpha}, {aggregate}, {dtype.__name__}, {kind}: {error}") from None


@needs_emulator
@pytest.mark.parametrize("aggregate", ["max", "avg"])
def test_float32_kernels_keep_subnormals_like_numpy(aggregate):
    # products and sums of subnormals round as NumPy's (the GPU does the same only because the kernels
    # are compiled with -ftz=false: see test_the_compiled_kernels_flush_no_subnormal)
    rng = numpy.random.default_rng(5)
    x, grad_y = make_case(rng, (2, 3, 9, 7), (1.7, 2.6), numpy.float32, "subnormal")
    assert numpy.count_nonzero((x != 0) & (numpy.abs(x) < numpy.finfo(numpy.float32).tiny)) > 100
    rows, columns, y, *_ = array_code(x, (1.7, 2.6), aggregate, grad_y)
    assert numpy.count_nonzero((y != 0) & (numpy.abs(y) < numpy.finfo(numpy.float32).tiny)) > 10
    check_kernels(SEQUENTIAL, x, (1.7, 2.6), aggregate, grad_y)


@needs_emulator
@pytest.mark.parametrize("aggregate", ["max", "avg"])
def test_kernels_with_several_blocks_at_once(aggregate):
    # four blocks run at the same time (each block's 8 warps always do): the grad_cell atomics of
    # different blocks race, and grad_x (a gather) has nothing to race for
    rng = numpy.random.default_rng(2)
    for shape, alpha, kind in [((3, 8, 21, 19), (1.7, 2.6), "normal"), ((2, 4, 13, 17), (0.7, 1.3), "special"),
                               ((4, 6, 16, 16), (2.0, 2.0), "ties")]:
        x, grad_y = make_case(rng, shape, alpha, numpy.float64, kind)
        check_kernels(CONCURRENT, x, alpha, aggregate, grad_y)


@needs_emulator
def test_grad_cell_covers_every_output_when_the_grid_is_smaller(monkeypatch):
    # grad_cell runs at most GRAD_CELL_MAX_BLOCKS blocks and loops over the rest (grid-stride)
    monkeypatch.setattr(kernels, "GRAD_CELL_MAX_BLOCKS", 2)
    rng = numpy.random.default_rng(4)
    x, grad_y = make_case(rng, (3, 7, 20, 18), (1.3, 1.1), numpy.float64, "normal")  # 3 * 7 * 15 * 16 outputs
    assert grad_y.size > 4 * 2 * kernels.THREADS
    check_kernels(SEQUENTIAL, x, (1.3, 1.1), "avg", grad_y)


@needs_emulator
def test_a_grad_cell_whose_threads_past_the_end_return_is_caught():
    # plant the classic bug: threads without an output leave before the warp's shuffles. On a GPU the
    # result is undefined (often right); the emulator stops it with an error naming the shuffle
    source = kernels.SOURCE.read_text()
    anchor = "    // per warp (shuffles), then per block"
    assert anchor in source
    planted = source.replace(anchor, "    if (blockIdx.x * blockDim.x + threadIdx.x >= total) return;\n" + anchor)
    module = emulator.EmulatedModule(code=planted, options=kernels.COMPILE_OPTIONS)
    rows, columns = query_axis(5, 1.0), query_axis(7, 1.0)  # 35 outputs: lanes 3-31 of warp 1 have none
    t = kernels.axis_tables(rows, numpy.float64), kernels.axis_tables(columns, numpy.float64)
    x, g = numpy.ones((1, 1, 5, 7)), numpy.ones((1, 1, 5, 7))
    args = (x, g, numpy.zeros(35, dtype=numpy.int8), numpy.zeros(2), t[0].low, t[0].high, t[0].t, t[0].inside, t[0].phase,
            t[1].low, t[1].high, t[1].t, t[1].inside, t[1].phase, numpy.int32(35), numpy.int32(5), numpy.int32(7),
            numpy.int32(5), numpy.int32(7), numpy.int32(0))
    # whichever the returned threads skip first stops it: the warp's shuffle or the block's barrier (the
    # OS threads' order decides; under load CI once saw the barrier first)
    with pytest.raises(emulator.EmulatorError, match=r"(?=.*returned from the kernel)(?=.*(__shfl_down_sync|__syncthreads\(\)))"):
        module.get_function("dynopool_grad_cell_float64")((1,), (kernels.THREADS,), args)
    # the shipped kernel, same launch: fine
    emulator.module_for(kernels.SOURCE).get_function("dynopool_grad_cell_float64")((1,), (kernels.THREADS,), args)


@needs_emulator
def test_empty_inputs_launch_nothing():
    x = numpy.zeros((0, 3, 6, 6))
    rows, columns = query_axis(6, 2.0), query_axis(6, 2.0)
    y, choice = kernels.dynopool_forward(SEQUENTIAL, x, rows, columns, True)
    assert y.shape == (0, 3, 3, 3) and choice.shape == y.shape
    grad_x, sums = kernels.dynopool_backward(SEQUENTIAL, x, numpy.zeros(y.shape), choice, rows, columns, True)
    assert grad_x.shape == x.shape and sums.tolist() == [0.0, 0.0]


def test_launches_refuse_what_the_kernels_cannot_index():
    x = numpy.zeros((1, 1, 4, 4), dtype=numpy.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels._check_launch(x[:, :, ::2, :], 4)
    with pytest.raises(ValueError, match="overflows"):
        kernels._check_launch(x, 2**31)
    with pytest.raises(TypeError, match="float32 or float64"):
        kernels._check_launch(x.astype(numpy.float16), 4)


def test_device_tables_are_made_once_per_lengths_and_dtype():
    calls = []
    device = types.SimpleNamespace(asarray=lambda a: calls.append(a) or a,
                                   cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0)))
    first = kernels.device_tables(device, query_axis(9, 1.7), numpy.float32)
    again = kernels.device_tables(device, query_axis(9, 1.75), numpy.float32)  # same output length 5
    assert again is first and len(calls) == 8
    assert kernels.device_tables(device, query_axis(9, 1.7), numpy.float64) is not first


# ==================================================================================================
# Compiling for the GPU: NVRTC with poolref's options (no -ftz=true), functions looked up once
# ==================================================================================================
class RecordingNvrtc:
    """Stands for ``cupy.cuda.nvrtc``: records what it is asked, returns a marked binary."""

    def __init__(self, archs=(75, 80, 86, 89, 90, 100)):
        self.archs, self.calls = archs, []

    def getSupportedArchs(self):
        return self.archs

    def createProgram(self, source, name, headers, include_names):
        self.calls.append(("create", name))
        return 7

    def compileProgram(self, program, options):
        self.calls.append(("compile", tuple(options)))

    def getCUBIN(self, program):
        return b"cubin"

    def getPTX(self, program):
        return b"ptx"

    def getProgramLog(self, program):
        return ""

    def destroyProgram(self, program):
        self.calls.append(("destroy", program))


def test_nvrtc_is_called_with_ftz_false_and_nothing_after_it():
    nvrtc = RecordingNvrtc()
    assert kernels.compile_with_nvrtc(nvrtc, "source", "90") == b"cubin"
    options = dict((kind, value) for kind, value in nvrtc.calls if kind == "compile")["compile"]
    assert options[:len(kernels.COMPILE_OPTIONS)] == kernels.COMPILE_OPTIONS
    assert "-ftz=false" in options and "--fmad=false" in options and options[-1] == "--gpu-architecture=sm_90"
    assert not any(o.startswith(("-ftz=true", "--ftz=true", "-use_fast_math", "--use_fast_math")) for o in options)
    assert nvrtc.calls[-1] == ("destroy", 7)
    # a device newer than NVRTC knows: PTX for the newest architecture it knows, compiled by the driver
    nvrtc = RecordingNvrtc()
    assert kernels.compile_with_nvrtc(nvrtc, "source", "120") == b"ptx"
    assert nvrtc.calls[1][1][-1] == "--gpu-architecture=compute_100"


def test_a_real_cupy_loads_the_nvrtc_result_and_functions_are_looked_up_once(monkeypatch):
    loaded, looked_up = [], []

    class Module:
        def load(self, binary):
            loaded.append(binary)

        def get_function(self, name):
            looked_up.append(name)
            return name

    def refuse(**kwargs):
        raise AssertionError("RawModule would append -ftz=true")

    cupy = types.SimpleNamespace(RawModule=refuse, cuda=types.SimpleNamespace(
        nvrtc=RecordingNvrtc(), function=types.SimpleNamespace(Module=Module),
        Device=lambda: types.SimpleNamespace(id=3, compute_capability="90")))
    for _ in range(3):
        assert kernels._function(cupy, "forward", numpy.float32) == "dynopool_forward_float32"
    assert loaded == [b"cubin"] and looked_up == ["dynopool_forward_float32"]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed (the CI machine has none)")
def test_the_compiled_kernels_flush_no_subnormal(tmp_path):
    # nvcc's front end takes the options NVRTC does. With poolref's options the PTX has no flushing
    # instruction (.ftz) and no float32 atomic (the GPU's flushes whatever the options); with CuPy's
    # RawModule, which appends -ftz=true (the last one wins), float32 arithmetic flushes
    def ptx(*extra):
        target = tmp_path / f"dynopool{len(extra)}.ptx"
        result = subprocess.run(["nvcc", "-ptx", *kernels.COMPILE_OPTIONS, *extra, "-arch=sm_90", "-o", str(target),
                                 str(kernels.SOURCE)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return target.read_text()

    ours = ptx()
    entries = {}
    for name in ("forward", "grad_x", "grad_cell"):
        for dtype in ("float32", "float64"):
            start = ours.index(f".entry dynopool_{name}_{dtype}(")
            entries[name, dtype] = ours[start:ours.find(".entry", start + 1) % (len(ours) + 1)]
    assert ".ftz" not in ours
    assert not any(op in ours for op in ("atom.global.add.f32", "red.global.add.f32", "atom.add.f32", "red.add.f32"))
    assert "local" not in ours  # no array spilled to local memory
    # the float32 forward and grad_x compute no coordinate: no double arithmetic, no conversion
    # (they recomputed the query coordinates in double per output: 33 fp64 ops and 17 conversions)
    for name in ("forward", "grad_x"):
        body = entries[name, "float32"]
        assert ".f64" not in body, name
        assert not re.search(r"\bcvt\.[\w.]*f(16|32|64)\b", body), name  # integer conversions (indices) are fine
    # atomics: none in forward and grad_x (no scatter, no clearing); grad_cell's two, one per axis
    for (name, dtype), body in entries.items():
        assert len(re.findall(r"\b(?:atom|red)\.", body)) == (2 if name == "grad_cell" else 0), (name, dtype)
    assert ptx("-ftz=true").count(".ftz") > 100  # what RawModule(code=..., options=...) would have made


# ==================================================================================================
# The whole emulated suite under AddressSanitizer (in a subprocess: ASan must be loaded first)
# ==================================================================================================
def asan_runtime():
    compiler = emulator.compiler()
    if compiler is None:
        return None
    result = subprocess.run([compiler, "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = result.stdout.strip()
    return path if result.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


WRITES_PAST_THE_END = 'extern "C" __global__ void writes_past_the_end(double* out, int n) { if (threadIdx.x == 0) out[n] = 1.0; }'


def asan_main():
    """Run in the subprocess: edge and random cases, then a planted out-of-bounds write, which ASan
    must stop (so that a clean run above means something)."""
    for shape, alpha in EDGE_CASES[:8]:
        for aggregate in ("max", "avg"):
            rng = numpy.random.default_rng(1)
            x, grad_y = make_case(rng, shape, alpha, numpy.float32, "special")
            check_kernels(SEQUENTIAL, x, alpha, aggregate, grad_y)
    for shape, alpha, aggregate, dtype, kind, rng in random_cases(12, seed=3):
        x, grad_y = make_case(rng, shape, alpha, dtype, kind)
        check_kernels(SEQUENTIAL, x, alpha, aggregate, grad_y)
    print("dynopool kernels clean under AddressSanitizer", flush=True)
    out = numpy.zeros(4)
    emulator.EmulatedModule(code=WRITES_PAST_THE_END).get_function("writes_past_the_end")((1,), (32,), (out, numpy.int32(4)))
    print("the planted out-of-bounds write was not caught", flush=True)


@needs_emulator
@pytest.mark.skipif(asan_runtime() is None, reason="the C++ compiler has no AddressSanitizer runtime")
def test_kernels_under_address_sanitizer():
    env = dict(os.environ, LD_PRELOAD=asan_runtime(), ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(HERE)]))
    result = subprocess.run([sys.executable, "-c", "import test_dynopool_kernel as t; t.asan_main()"], cwd=str(HERE),
                            env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert "dynopool kernels clean under AddressSanitizer" in result.stdout, output[-4000:]
    assert "heap-buffer-overflow" in result.stderr and "writes_past_the_end" in result.stderr, output[-4000:]
    assert "was not caught" not in result.stdout and result.returncode != 0
