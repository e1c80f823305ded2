"""The CUDA emulator itself (emulator.py, cuda_shim.hpp): it runs CUDA's rules, and catches a kernel
that breaks them (a lane that skips a shuffle, a thread that skips a barrier, a deadlock, a launch
beyond CUDA's limits) with an error instead of a hang. The probe kernels are emulator_probes.cu."""

import numpy
import pytest

from kernels import emulator

pytestmark = pytest.mark.skipif(not emulator.available(), reason=emulator.why_not() or "no C++20 compiler")

PROBES = emulator.HERE / "emulator_probes.cu"


@pytest.fixture(scope="module")
def probes():
    return emulator.module_for(PROBES)


def test_threads_know_where_they_are(probes):
    grid, block = (3, 2, 2), (4, 3, 2)
    threads, blocks = 4 * 3 * 2, 3 * 2 * 2
    out = numpy.full((blocks, threads, 12), 9999, dtype=numpy.uint32)
    probes.get_function("where_am_i")(grid, block, (out,))
    for b in range(blocks):
        bx, by, bz = b % 3, b // 3 % 2, b // 6
        for t in range(threads):
            tx, ty, tz = t % 4, t // 4 % 3, t // 12
            assert out[b, t].tolist() == [tx, ty, tz, bx, by, bz, 4, 3, 2, 3, 2, 2]


@pytest.mark.parametrize("kind, argument, expected", [
    (0, 5, lambda lane: numpy.full(32, 5)),  # __shfl_sync: everyone reads lane 5
    (1, 3, lambda lane: numpy.where(lane >= 3, lane - 3, lane)),  # up: lanes below 3 keep their own
    (2, 7, lambda lane: numpy.where(lane + 7 < 32, lane + 7, lane)),  # down: the last 7 keep their own
    (3, 6, lambda lane: lane ^ 6),  # xor
])
def test_shuffles_read_the_lane_cuda_says(probes, kind, argument, expected):
    values = numpy.arange(64, dtype=numpy.float64) * 10  # two warps
    out = numpy.zeros(64)
    probes.get_function("shuffles")((1,), (64,), (values, out, numpy.int32(kind), numpy.int32(argument)))
    lane = numpy.arange(32)
    for warp in range(2):
        numpy.testing.assert_array_equal(out[32 * warp:32 * warp + 32], values[32 * warp + expected(lane)])


def test_a_warp_sum_with_every_lane_is_right(probes):
    values = numpy.random.default_rng(0).standard_normal(256)
    out = numpy.zeros(8)
    probes.get_function("lane_skips_shuffle")((2,), (128,), (values, out, numpy.int32(-1)))
    numpy.testing.assert_allclose(out, values.reshape(8, 32).sum(axis=1), rtol=1e-13)


@pytest.mark.parametrize("lane", [0, 5, 31])
def test_a_lane_that_skips_a_shuffle_is_an_error_not_a_hang(probes, lane):
    out = numpy.zeros(8)
    with pytest.raises(emulator.EmulatorError, match=r"__shfl_down_sync.*every lane named in the mask must execute it"):
        probes.get_function("lane_skips_shuffle")((2,), (128,), (numpy.ones(256), out, numpy.int32(lane)))


def test_a_thread_that_skips_syncthreads_is_an_error(probes):
    out = numpy.zeros(64, dtype=numpy.int32)
    probes.get_function("thread_skips_syncthreads")((1,), (64,), (out, numpy.int32(-1)))
    assert (out == 1).all()  # the barrier makes every thread's write visible to its neighbour
    with pytest.raises(emulator.EmulatorError, match=r"__syncthreads\(\)"):
        probes.get_function("thread_skips_syncthreads")((1,), (64,), (out, numpy.int32(40)))


def test_lanes_in_different_shuffles_are_an_error(probes):
    with pytest.raises(emulator.EmulatorError, match="must meet in the same intrinsic"):
        probes.get_function("lanes_in_different_shuffles")((1,), (32,), (numpy.zeros(32),))


def test_a_deadlock_is_reported(probes):
    with pytest.raises(emulator.EmulatorError, match="deadlock"):
        probes.get_function("deadlock")((1,), (64,), (numpy.zeros(64),))


def test_only_full_warps_shuffle(probes):
    with pytest.raises(emulator.EmulatorError, match="full-warp"):
        probes.get_function("partial_mask")((1,), (32,), (numpy.zeros(32),))
    # a block of 48 threads: its second warp has 16 lanes, and the full mask names 32
    with pytest.raises(emulator.EmulatorError, match="warp 1 has only 16 threads"):
        probes.get_function("lane_skips_shuffle")((1,), (48,), (numpy.ones(48), numpy.zeros(2), numpy.int32(-1)))


@pytest.mark.parametrize("grid, block, message", [
    ((1,), (1025,), "at most 1024"),
    ((1,), (32, 32, 2), "2048 threads per block"),
    ((1,), (1, 1, 65), "1024 x 1024 x 64"),
    ((0,), (32,), "at least 1"),
    ((1,), (0,), "at least 1"),
    ((1, 65536), (32,), "65535"),
])
def test_launches_beyond_cudas_limits_are_refused(probes, grid, block, message):
    out = numpy.zeros(12 * 4096, dtype=numpy.uint32)
    with pytest.raises(emulator.EmulatorError, match=message):
        probes.get_function("where_am_i")(grid, block, (out,))


@pytest.mark.parametrize("concurrent_blocks", [1, 4])
def test_atomics_from_racing_threads_lose_nothing(concurrent_blocks):
    module = emulator.module_for(PROBES, concurrent_blocks=concurrent_blocks)
    total, total32 = numpy.zeros(1), numpy.zeros(1, dtype=numpy.float32)
    count, icount = numpy.zeros(1, dtype=numpy.uint64), numpy.zeros(1, dtype=numpy.int32)
    module.get_function("count_atomically")((6,), (256,), (total, total32, count, icount))
    assert total[0] == total32[0] == count[0] == icount[0] == 6 * 256 * 8


def test_the_float32_atomic_add_flushes_subnormals_as_the_gpu_does(probes):
    tiny = numpy.float32(1e-40)  # subnormal in float32
    target = numpy.array([tiny], dtype=numpy.float32)
    probes.get_function("add_float_atomically")((1,), (32,), (target, numpy.array([tiny], dtype=numpy.float32)))
    assert target[0] == 0  # 2e-40 on the CPU; the GPU flushes operands and result
    target = numpy.array([1.0], dtype=numpy.float32)
    probes.get_function("add_float_atomically")((1,), (32,), (target, numpy.array([-tiny], dtype=numpy.float32)))
    assert target[0] == 1.0


@pytest.mark.parametrize("concurrent_blocks", [1, 3])
def test_block_sums_in_shared_memory_with_one_atomic_per_block(concurrent_blocks):
    module = emulator.module_for(PROBES, concurrent_blocks=concurrent_blocks)
    values = numpy.random.default_rng(1).standard_normal(1000)
    out = numpy.zeros(1)
    module.get_function("block_sum")((4,), (256,), (values, out, numpy.int32(values.size)))
    numpy.testing.assert_allclose(out[0], values.sum(), rtol=1e-12)


def test_arguments_are_passed_with_their_exact_types(probes):
    out = numpy.zeros(9)
    args = (out, numpy.array([1.5], dtype=numpy.float32), numpy.float32(-2.25), numpy.float64(1e300), numpy.int32(-7),
            numpy.uint32(2**32 - 1), numpy.int64(-(2**40)), numpy.int8(-100), numpy.uint8(200), numpy.uint64(2**53))
    probes.get_function("every_type")((1,), (32,), args)
    assert out.tolist() == [1.5, -2.25, 1e300, -7, 2**32 - 1, -(2**40), -100, 200, 2**53]


def test_arguments_of_the_wrong_kind_are_refused(probes):
    kernel = probes.get_function("shuffles")
    values, out = numpy.zeros(32), numpy.zeros(32)
    with pytest.raises(emulator.EmulatorError, match="Python int"):
        kernel((1,), (32,), (values, out, 0, numpy.int32(1)))
    with pytest.raises(emulator.EmulatorError, match="int64 scalar"):
        kernel((1,), (32,), (values, out, numpy.int64(0), numpy.int32(1)))
    with pytest.raises(emulator.EmulatorError, match="dtype float32"):
        kernel((1,), (32,), (values.astype(numpy.float32), out, numpy.int32(0), numpy.int32(1)))
    with pytest.raises(emulator.EmulatorError, match="non-contiguous"):
        kernel((1,), (32,), (numpy.zeros(64)[::2], out, numpy.int32(0), numpy.int32(1)))
    read_only = numpy.zeros(32)
    read_only.flags.writeable = False
    kernel((1,), (32,), (read_only, out, numpy.int32(0), numpy.int32(1)))  # fine for a const pointer
    with pytest.raises(emulator.EmulatorError, match="read-only"):
        kernel((1,), (32,), (values, read_only, numpy.int32(0), numpy.int32(1)))
    with pytest.raises(emulator.EmulatorError, match="takes 4 arguments"):
        kernel((1,), (32,), (values, out, numpy.int32(0)))
    with pytest.raises(emulator.EmulatorError, match="no extern"):
        probes.get_function("no_such_kernel")


class DeviceBuffer:
    """What the CuPy stand-in hands over: an object with a __cuda_array_interface__ on host memory."""

    def __init__(self, array):
        self.array = array
        self.__cuda_array_interface__ = {"data": (array.ctypes.data, False), "typestr": array.dtype.str,
                                         "shape": array.shape, "strides": None, "version": 3}


def test_arrays_with_a_cuda_array_interface_are_accepted(probes):
    values, out = numpy.arange(32.0), numpy.zeros(32)
    probes.get_function("shuffles")((1,), (32,), (DeviceBuffer(values), DeviceBuffer(out), numpy.int32(3), numpy.int32(1)))
    numpy.testing.assert_array_equal(out, values.astype(int) ^ 1)


def test_unknown_compile_options_are_refused():
    with pytest.raises(emulator.EmulatorError, match="not emulated"):
        emulator.EmulatedModule(path=str(PROBES), options=("--use_fast_math",))


def test_without_a_cpp20_compiler_the_kernel_tests_skip_and_say_why(tmp_path):
    # CXX names the compiler to use; one that does not exist leaves none
    import os
    import subprocess
    import sys

    env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"))
    root = emulator.HERE.parent.parent
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                             str(emulator.HERE / "test_emulator.py"), "-k", "shuffles or atomics"],
                            cwd=str(root), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" not in result.stdout and "skipped" in result.stdout
    assert "no C++20 compiler to emulate CUDA kernels with" in result.stdout and "no-such-c++: not found" in result.stdout
