"""CUDA kernels for CuPy arrays: compiled at first use with NVRTC, loaded into CuPy, launched here.

Only DynOPool has kernels of its own (``dynopool.cu``); every other op runs on CuPy through the same
array code as on NumPy. Nothing here imports cupy: the caller hands in the ``cupy`` module that
:func:`poolref._backend.array_module` returned for its arrays.

Compiling. ``cupy.RawModule(code=..., options=...)`` appends ``-ftz=true`` after the caller's options
(``cupy.cuda.compiler._compile_with_cache_cuda``), and NVRTC keeps the last of two contradicting
options, so float32 subnormals would be flushed to zero: the kernels would no longer round as NumPy
does below 1.2e-38. So :func:`load_module` calls NVRTC itself (``cupy.cuda.nvrtc``) with
:data:`COMPILE_OPTIONS`, for the device's own architecture where NVRTC knows it (a cubin; else PTX
for the newest architecture NVRTC knows, which the driver compiles), and loads the result with
``cupy.cuda.function.Module``. Nothing in the compiled kernels flushes: the float32 code has no
``.ftz`` instruction and no float32 atomic (the GPU's float32 atomic add flushes whatever the
options; the kernels' only atomics are on doubles). A CuPy without NVRTC bindings (the test
stand-in) gets ``cupy.RawModule(code=..., options=COMPILE_OPTIONS)`` instead.

Host tables. The kernels compute no coordinate: each axis's query lines (``low``, ``high``, ``t``,
``inside``, ``phase``: the arrays of :class:`poolref.ops.dynopool.QueryAxis`, which the array code
uses) and, for the gradient to ``x``, the lines that read each pixel (:func:`readers`) are copied to
the device once per (device, length, output length, dtype) and kept (:func:`device_tables`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy

__all__ = ["KERNEL_DTYPES", "AxisTables", "axis_tables", "device_tables", "dynopool_backward", "dynopool_forward",
           "load_module", "readers"]

SOURCE = Path(__file__).with_name("dynopool.cu")
KERNEL_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
THREADS = 256  # a multiple of 32: grad_cell sums whole warps
INT32_MAX = 2**31 - 1
# grad_cell loops over the outputs with this many blocks at most: one atomic per block and axis, so
# at most 1024 atomics on each of the two addresses, whatever the size (about one wave of an H100)
GRAD_CELL_MAX_BLOCKS = 1024

# --fmad=false: no fused multiply-adds, so every product and sum rounds as NumPy's do;
# -ftz=false: float32 subnormals are kept (NumPy keeps them); IEEE division and square root
COMPILE_OPTIONS = ("--fmad=false", "-ftz=false", "--prec-div=true", "--prec-sqrt=true", "--std=c++14")

# Caches, keyed by the array module too (id(cupy)): the tests run the same code on stand-ins
_modules: dict = {}  # (module, device id) -> loaded module
_functions: dict = {}  # (module, device id, kernel name) -> launchable function
_tables: dict = {}  # (module, device id, length, out_length, dtype) -> AxisTables on that device


# --------------------------------------------------------------------------------------------------
# Compiling and loading
# --------------------------------------------------------------------------------------------------
def nvrtc_options(nvrtc, compute_capability: str) -> tuple:
    """The options for NVRTC and whether it makes a cubin (the device's architecture is one NVRTC
    knows) or PTX (the newest architecture NVRTC knows below the device's, compiled by the driver)."""
    device = int(compute_capability)
    known = sorted(int(a) for a in nvrtc.getSupportedArchs())
    if device in known:
        return (*COMPILE_OPTIONS, f"--gpu-architecture=sm_{device}"), "cubin"
    below = [a for a in known if a <= device] or known[:1]
    return (*COMPILE_OPTIONS, f"--gpu-architecture=compute_{below[-1]}"), "ptx"


def compile_with_nvrtc(nvrtc, source: str, compute_capability: str) -> bytes:
    """``source`` compiled by NVRTC with :data:`COMPILE_OPTIONS` (and nothing else): a cubin or PTX."""
    options, kind = nvrtc_options(nvrtc, compute_capability)
    program = nvrtc.createProgram(source, SOURCE.name, (), ())
    try:
        try:
            nvrtc.compileProgram(program, list(options))
        except Exception as error:  # nvrtc.NVRTCError: the log says why
            raise RuntimeError(f"NVRTC could not compile {SOURCE.name} with {' '.join(options)}:\n"
                               f"{nvrtc.getProgramLog(program)}") from error
        return nvrtc.getCUBIN(program) if kind == "cubin" else nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)


def load_module(cupy):
    """The compiled ``dynopool.cu`` on the current device (compiled and loaded once per device)."""
    device = cupy.cuda.Device()
    key = (id(cupy), device.id)
    if key not in _modules:
        source = SOURCE.read_text()
        nvrtc = getattr(cupy.cuda, "nvrtc", None)
        if nvrtc is None or not hasattr(nvrtc, "createProgram"):
            _modules[key] = cupy.RawModule(code=source, options=COMPILE_OPTIONS)
        else:
            module = cupy.cuda.function.Module()
            module.load(compile_with_nvrtc(nvrtc, source, device.compute_capability))
            _modules[key] = module
    return _modules[key]


def _function(cupy, name: str, dtype):
    """The entry point ``dynopool_<name>_<dtype>`` on the current device (looked up once)."""
    key = (id(cupy), cupy.cuda.Device().id, f"dynopool_{name}_{numpy.dtype(dtype).name}")
    if key not in _functions:
        _functions[key] = load_module(cupy).get_function(key[2])
    return _functions[key]


# --------------------------------------------------------------------------------------------------
# Host tables
# --------------------------------------------------------------------------------------------------
class AxisTables(NamedTuple):
    """One axis's query lines as the kernels read them (numpy arrays on the host, or their device copies).

    ``q = 2i + a`` numbers the query lines; ``E`` is the number of (line, pixel) reads.
    """

    length: int  # L
    out_length: int  # O
    low: object  # (2O,) int32: first pixel read
    high: object  # (2O,) int32: the next pixel
    t: object  # (2O,) T: weight of `high`, rounded to T as the array code's _gather rounds it
    inside: object  # (2O,) int8: 1 where d value / d u is not zero
    phase: object  # (2O,) float64: i + 1/4 + a/2 = d u / d cell
    readers_start: object  # (L + 1,) int32: pixel k is read by the entries readers_start[k] .. [k + 1] - 1
    reader_line: object  # (E,) int32: the line q of each read
    reader_weight: object  # (E,) T: its weight, 1 - t[q] (as `low`) or t[q] (as `high`)


def readers(axis, dtype):
    """For each pixel, the query lines that read it and with which weight, in the order in which the
    array code's scatter-add (``_gather_adjoint``) adds them: the lines that read it as ``low``, in
    line order, then the lines that read it as ``high`` (only where ``t != 0``), in line order.

    Returns ``(readers_start (L + 1,), reader_line (E,), reader_weight (E,))``. The weights are the
    array code's, in ``dtype``: ``1 - t`` and ``t`` with ``t`` rounded to ``dtype`` first.

    Four pixels, three outputs (``alpha = 1.5``), so six query lines: line 1 lies at ``u = 0.5``
    (``low`` 0, ``high`` 1, ``t = 0.5``), line 5 on pixel 3 (``t = 0``: it reads pixel 3 only).

    >>> from poolref.ops.dynopool import query_axis
    >>> start, line, weight = readers(query_axis(4, 1.5), numpy.float64)
    >>> start.tolist()
    [0, 2, 5, 8, 10]
    >>> line[start[1]:start[2]].tolist()  # pixel 1: lines 2 and 3 read it as `low`, then line 1 as `high`
    [2, 3, 1]
    >>> line[start[3]:start[4]].tolist(), weight[start[3]:start[4]].tolist()  # pixel 3
    ([5, 4], [1.0, 0.5])
    """
    t = axis.t.astype(dtype)
    lines = numpy.arange(t.size, dtype=numpy.int32)
    reads_high = t != 0
    pixel = numpy.concatenate([axis.low, axis.high[reads_high]])
    line = numpy.concatenate([lines, lines[reads_high]])
    weight = numpy.concatenate([1 - t, t[reads_high]]).astype(dtype, copy=False)
    order = numpy.argsort(pixel, kind="stable")  # by pixel; within a pixel, `low` reads first, each in line order
    start = numpy.zeros(axis.length + 1, dtype=numpy.int32)
    numpy.cumsum(numpy.bincount(pixel, minlength=axis.length), out=start[1:])
    return start, line[order].astype(numpy.int32), weight[order]


def axis_tables(axis, dtype) -> AxisTables:
    """The host tables of a :class:`poolref.ops.dynopool.QueryAxis` for kernels of type ``dtype``."""
    start, line, weight = readers(axis, dtype)
    return AxisTables(axis.length, axis.out_length, axis.low.astype(numpy.int32), axis.high.astype(numpy.int32),
                      axis.t.astype(dtype), axis.inside.astype(numpy.int8), axis.phase.astype(numpy.float64),
                      start, line, weight)


def device_tables(cupy, axis, dtype) -> AxisTables:
    """:func:`axis_tables` on the current device, copied there once and kept.

    The tables depend on the axis only through its input and output lengths (the cell size is
    ``L / O``; alpha enters only the host's chain rule), so a learned alpha that keeps the output
    size reuses them.
    """
    key = (id(cupy), cupy.cuda.Device().id, axis.length, axis.out_length, numpy.dtype(dtype).name)
    if key not in _tables:
        host = axis_tables(axis, dtype)
        _tables[key] = AxisTables(host.length, host.out_length,
                                  *(cupy.asarray(array) for array in host[2:]))
    return _tables[key]


# --------------------------------------------------------------------------------------------------
# Launches
# --------------------------------------------------------------------------------------------------
def _check_launch(x, n_outputs: int, op: str = "dynopool2d"):
    """What the kernels assume: float32/float64, C-contiguous, every element count within int32."""
    if numpy.dtype(x.dtype) not in KERNEL_DTYPES:
        raise TypeError(f"{op}: the CUDA kernels take float32 or float64, got x with dtype {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{op}: the CUDA kernels need a C-contiguous x, got strides {x.strides}")
    for name, count in (("x.size", x.size), ("output size", n_outputs)):
        if count > INT32_MAX:
            raise ValueError(f"{op}: {name} = {count} overflows the kernels' int32 indexing (max {INT32_MAX})")


def _blocks(total: int, most: int = INT32_MAX) -> tuple:
    return (min(most, (total + THREADS - 1) // THREADS),)


def dynopool_forward(cupy, x, rows, columns, use_max: bool):
    """Launch the fused forward on ``x`` (N, C, H, W), with the :class:`QueryAxis` of each axis.

    Returns ``y`` (N, C, Ho, Wo) and ``choice`` (int8, the winning point a*2 + b; None for "avg").
    """
    *lead, H, W = x.shape
    x = cupy.ascontiguousarray(x)
    y = cupy.empty((*lead, rows.out_length, columns.out_length), dtype=x.dtype)
    _check_launch(x, y.size)
    choice = cupy.empty(y.shape if use_max else (1,), dtype=numpy.int8)  # one unread byte for "avg"
    if y.size:
        r, c = device_tables(cupy, rows, x.dtype), device_tables(cupy, columns, x.dtype)
        _function(cupy, "forward", x.dtype)(
            _blocks(y.size), (THREADS,),
            (x, y, choice, r.low, r.high, r.t, c.low, c.high, c.t, numpy.int32(y.size), numpy.int32(H), numpy.int32(W),
             numpy.int32(rows.out_length), numpy.int32(columns.out_length), numpy.int32(use_max)),
        )
    return y, (choice if use_max else None)


def dynopool_backward(cupy, x, grad_y, choice, rows, columns, use_max: bool):
    """Launch the two backward kernels. Returns ``grad_x`` and ``sums``, a float64 (2,) device array
    ``(sum g * dq/du * phase_h, sum g * dq/dv * phase_w)``: nothing is copied back to the host."""
    *_, H, W = x.shape
    out_h, out_w = grad_y.shape[-2:]
    x = cupy.ascontiguousarray(x)
    grad_y = cupy.ascontiguousarray(grad_y, dtype=x.dtype)
    _check_launch(x, grad_y.size)
    grad_x = cupy.empty(x.shape, dtype=x.dtype)  # every element written by the gather: no clearing
    sums = cupy.zeros(2, dtype=numpy.float64)
    if choice is None:
        choice = cupy.empty((1,), dtype=numpy.int8)  # "avg": not read
    sizes = (numpy.int32(H), numpy.int32(W), numpy.int32(out_h), numpy.int32(out_w), numpy.int32(use_max))
    r, c = device_tables(cupy, rows, x.dtype), device_tables(cupy, columns, x.dtype)
    if x.size:
        _function(cupy, "grad_x", x.dtype)(
            _blocks(x.size), (THREADS,),
            (grad_y, choice, grad_x, r.readers_start, r.reader_line, r.reader_weight, c.readers_start, c.reader_line,
             c.reader_weight, numpy.int32(x.size), *sizes),
        )
    if grad_y.size:
        _function(cupy, "grad_cell", x.dtype)(
            _blocks(grad_y.size, GRAD_CELL_MAX_BLOCKS), (THREADS,),
            (x, grad_y, choice, sums, r.low, r.high, r.t, r.inside, r.phase, c.low, c.high, c.t, c.inside, c.phase,
             numpy.int32(grad_y.size), *sizes),
        )
    return grad_x, sums
