"""CUDA kernels for CuPy arrays, compiled at first use with ``cupy.RawModule``.

Only DynOPool has kernels of its own (``dynopool.cu``); every other op runs on CuPy through the same
array code as on NumPy. Nothing here imports cupy: the caller hands in the ``cupy`` module that
:func:`poolref._backend.array_module` returned for its arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy

__all__ = ["KERNEL_DTYPES", "dynopool_forward", "dynopool_backward"]

SOURCE = Path(__file__).with_name("dynopool.cu")
KERNEL_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
THREADS = 256
INT32_MAX = 2**31 - 1

# --fmad=false: no fused multiply-adds, so every product and sum rounds as NumPy's do
_COMPILE_OPTIONS = ("--fmad=false", "--std=c++14")
_modules: dict = {}


def _function(cupy, name: str, dtype):
    """The compiled entry point ``dynopool_<name>_<dtype>`` (compiled once per device)."""
    device = cupy.cuda.Device().id
    if device not in _modules:
        _modules[device] = cupy.RawModule(code=SOURCE.read_text(), options=_COMPILE_OPTIONS)
    return _modules[device].get_function(f"dynopool_{name}_{numpy.dtype(dtype).name}")


def _check_launch(x, n_outputs: int, op: str = "dynopool2d"):
    """What the kernels assume: float32/float64, C-contiguous, every element count within int32."""
    if numpy.dtype(x.dtype) not in KERNEL_DTYPES:
        raise TypeError(f"{op}: the CUDA kernels take float32 or float64, got x with dtype {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{op}: the CUDA kernels need a C-contiguous x, got strides {x.strides}")
    for name, count in (("x.size", x.size), ("output size", n_outputs)):
        if count > INT32_MAX:
            raise ValueError(f"{op}: {name} = {count} overflows the kernels' int32 indexing (max {INT32_MAX})")


def _blocks(total: int) -> tuple:
    return ((total + THREADS - 1) // THREADS,)


def dynopool_forward(cupy, x, out_h: int, out_w: int, cell_h: float, cell_w: float, use_max: bool):
    """Launch the fused forward. Returns ``y`` (N, C, Ho, Wo) and ``choice`` (int8, or None for "avg")."""
    *lead, H, W = x.shape
    x = cupy.ascontiguousarray(x)
    y = cupy.empty((*lead, out_h, out_w), dtype=x.dtype)
    _check_launch(x, y.size)
    choice = cupy.empty(y.shape, dtype=numpy.int8) if use_max else cupy.empty((1,), dtype=numpy.int8)
    if y.size:
        _function(cupy, "forward", x.dtype)(
            _blocks(y.size), (THREADS,),
            (x, y, choice, numpy.int32(y.size), numpy.int32(H), numpy.int32(W), numpy.int32(out_h),
             numpy.int32(out_w), numpy.float64(cell_h), numpy.float64(cell_w), numpy.int32(use_max)),
        )
    return y, (choice if use_max else None)


def dynopool_backward(cupy, x, grad_y, choice, cell_h: float, cell_w: float, use_max: bool):
    """Launch the fused backward. Returns ``grad_x`` and the two sums ``sum g * dq/du * phase`` (floats)."""
    *_, H, W = x.shape
    out_h, out_w = grad_y.shape[-2:]
    x = cupy.ascontiguousarray(x)
    grad_y = cupy.ascontiguousarray(grad_y, dtype=x.dtype)
    _check_launch(x, grad_y.size)
    grad_x = cupy.zeros(x.shape, dtype=x.dtype)
    grad_cell = cupy.zeros(2, dtype=numpy.float64)
    if choice is None:
        choice = cupy.empty((1,), dtype=numpy.int8)
    if grad_y.size:
        _function(cupy, "backward", x.dtype)(
            _blocks(grad_y.size), (THREADS,),
            (x, grad_y, choice, grad_x, grad_cell, numpy.int32(grad_y.size), numpy.int32(H), numpy.int32(W),
             numpy.int32(out_h), numpy.int32(out_w), numpy.float64(cell_h), numpy.float64(cell_w),
             numpy.int32(use_max)),
        )
    sum_u, sum_v = (float(v) for v in grad_cell.get())
    return grad_x, (sum_u, sum_v)
