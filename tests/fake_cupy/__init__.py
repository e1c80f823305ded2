r"""A test-only stand-in for ``cupy``: CuPy's interface and strictness, run by NumPy on the CPU.

No GPU is there in CI, so every CuPy path of poolref would otherwise go untried until someone runs
the tests on a GPU. This package imitates what catches bugs there: its arrays (:class:`ndarray`)
are not NumPy arrays, refuse implicit conversion to NumPy, refuse to be mixed with NumPy arrays in
arithmetic, and offer only CuPy's functions, methods and signatures (``ufunc`` keywords,
``ufunc.at`` dtypes, ``cupyx.scipy.sparse`` operands). ``_core.py`` lists each refusal and where in
CuPy's source it comes from. The values are NumPy's, so a test can hold CuPy results to NumPy's.

It is never imported by poolref. A test gets it through the ``xp`` fixture of ``tests/conftest.py``,
which, where real CuPy cannot run, registers it as ``cupy`` (and its :mod:`fake_cupy.cupyx` as
``cupyx``) in ``sys.modules`` for the duration of that test only; poolref's
:func:`poolref._backend.array_module` then finds it exactly as it would find CuPy.

Modelled on CuPy 13-15 with NumPy 2 (NEP 50 type promotion): ``cupy.add.at`` and friends exist
(since CuPy 12). ``RawModule`` runs CUDA source through the kernel emulator of
``tests/kernels/emulator.py``; device arrays reach the emulator as the NumPy arrays holding their
memory, so a kernel's writes land in them.

>>> import numpy, fake_cupy
>>> x = fake_cupy.asarray(numpy.array([1.0, 2.0]))  # an explicit host-to-device copy: allowed
>>> float((x * 2).sum())  # reading one value back: allowed (a synchronisation)
6.0
>>> fake_cupy.get_array_module(x) is fake_cupy
True
"""

from __future__ import annotations

import builtins as _builtins
import functools as _functools
import importlib as _importlib
import sys as _sys

import numpy as _numpy

from . import _core
from ._core import ndarray, ufunc
from ._core import unwrap as _unwrap
from ._core import unwrap_host_ok as _unwrap_host_ok
from ._core import wrap as _wrap
from ._signatures import SIGNATURES
from ._signatures import signature as _signature

__version__ = "13.6.0+stand-in"

# ---------------------------------------------------------------------------------------------------
# Types and constants: CuPy re-exports NumPy's (cupy.float32 is _numpy.float32)
# ---------------------------------------------------------------------------------------------------
_TYPES = """bool_ broadcast byte cdouble complex128 complex64 complexfloating csingle double dtype finfo flatiter
float16 float32 float64 floating generic half iinfo inexact int16 int32 int64 int8 int_ intc integer intp long
longlong ndindex number short signedinteger single ubyte uint uint16 uint32 uint64 uint8 uintc uintp ulong
ulonglong unsignedinteger ushort""".split()
for _name in _TYPES:
    globals()[_name] = getattr(_numpy, _name)
bool = _numpy.bool_  # noqa: A001 (cupy.bool is numpy.bool)
e, euler_gamma, inf, nan, newaxis, pi = _numpy.e, _numpy.euler_gamma, _numpy.inf, _numpy.nan, _numpy.newaxis, _numpy.pi

# ---------------------------------------------------------------------------------------------------
# Ufuncs: the ones CuPy has, by NumPy's name (aliases such as abs/absolute share one)
# ---------------------------------------------------------------------------------------------------
_UFUNC_NAMES = """abs absolute acos acosh add arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh atan
atan2 atanh bitwise_and bitwise_count bitwise_invert bitwise_left_shift bitwise_not bitwise_or
bitwise_right_shift bitwise_xor cbrt ceil conj conjugate copysign cos cosh deg2rad degrees divide divmod
equal exp exp2 expm1 fabs float_power floor floor_divide fmax fmin fmod frexp gcd greater greater_equal
heaviside hypot invert isfinite isinf isnan lcm ldexp left_shift less less_equal log log10 log1p log2
logaddexp logaddexp2 logical_and logical_not logical_or logical_xor matmul maximum minimum mod modf
multiply negative nextafter not_equal positive pow power rad2deg radians reciprocal remainder right_shift
rint sign signbit sin sinh sqrt square subtract tan tanh true_divide trunc""".split()
_UFUNCS: dict = {}  # NumPy's ufunc name -> the stand-in (read by ndarray.__array_ufunc__)
for _name in _UFUNC_NAMES:
    _numpy_name = getattr(_numpy, _name).__name__
    if _numpy_name not in _UFUNCS:
        _UFUNCS[_numpy_name] = ufunc(_numpy_name)
    globals()[_name] = _UFUNCS[_numpy_name]

# ---------------------------------------------------------------------------------------------------
# Functions: the ones CuPy has, NumPy's run on the device arrays' memory. Array arguments must be
# device arrays (a NumPy array raises TypeError: Unsupported type), except where CuPy copies host
# data over itself (the special cases below).
# ---------------------------------------------------------------------------------------------------
_FUNCTION_NAMES = """all allclose amax amin angle any append apply_along_axis apply_over_axes arange argmax argmin
argpartition argsort argwhere around array_equal array_equiv array_split astype atleast_1d atleast_2d
atleast_3d average bartlett bincount blackman broadcast_arrays broadcast_shapes broadcast_to can_cast choose
clip column_stack common_type compress concat concatenate convolve copy copyto corrcoef correlate count_nonzero
cov cross cumprod cumsum cumulative_prod cumulative_sum delete diag diag_indices diag_indices_from diagflat
diagonal diff digitize dot dsplit dstack ediff1d einsum empty expand_dims extract eye fill_diagonal fix
flatnonzero flip fliplr flipud fromfunction gradient hamming hanning histogram histogram2d histogramdd hsplit
hstack i0 identity imag indices inner interp intersect1d isclose iscomplex iscomplexobj isdtype isfortran isin
isneginf isposinf isreal isrealobj isscalar issubdtype iterable ix_ kaiser kron lexsort linspace logspace
mask_indices matrix_transpose max may_share_memory mean median meshgrid min min_scalar_type mintypecode
moveaxis nan_to_num nanargmax nanargmin nancumprod nancumsum nanmax nanmean nanmedian nanmin nanprod nanstd
nansum nanvar ndim nonzero ones outer packbits pad partition percentile permute_dims piecewise place poly
polyadd polyfit polymul polysub polyval prod promote_types ptp put put_along_axis putmask quantile ravel
ravel_multi_index real real_if_close repeat require reshape resize result_type roll rollaxis roots rot90 round
row_stack searchsorted select setdiff1d setxor1d shape shares_memory sinc size sort sort_complex split squeeze
stack std sum swapaxes take_along_axis tensordot tile trace transpose trapezoid tri tril tril_indices
tril_indices_from trim_zeros triu triu_indices triu_indices_from union1d unique unique_all unique_counts
unique_inverse unique_values unpackbits unravel_index unwrap vander var vdot vsplit vstack where zeros""".split()


def _function(name):
    numpy_function = getattr(_numpy, name)
    signature = _signature(SIGNATURES[name]) if name in SIGNATURES else None

    @_functools.wraps(numpy_function, assigned=("__name__", "__qualname__"))
    def function(*args, **kwargs):
        if signature is not None:
            signature.bind(*args, **kwargs)  # CuPy's arguments only: a NumPy-only keyword raises TypeError
        out = kwargs.get("out")
        if out is not None and not isinstance(out, ndarray):
            raise _core.unsupported(out)
        return _core._call(numpy_function, _unwrap(args), _unwrap(kwargs), out=out)

    function.__doc__ = f"``_numpy.{name}`` on device arrays (as ``cupy.{name}``)."
    return function


for _name in _FUNCTION_NAMES:
    globals()[_name] = _function(_name)


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A device array: ``a`` itself when it is one (of that dtype), else a device copy of host data."""
    if isinstance(a, ndarray):
        return a.astype(a.dtype if dtype is None else dtype, order=order or "K", copy=False)
    return _wrap(_numpy.array(_unwrap_host_ok(a), dtype=dtype, order=order or "K", copy=True))


asanyarray = asarray


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A device array from device or host data, copied unless ``copy=False`` allows otherwise."""
    if isinstance(obj, ndarray):
        result = _numpy.array(obj._array, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        return obj if result is obj._array else _wrap(result)
    return _wrap(_numpy.array(_unwrap_host_ok(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _device_only(a):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base, got {type(a).__name__})")


def ascontiguousarray(a, dtype=None):
    """``a`` if C-contiguous (and of ``dtype``), else a C-contiguous device copy; device arrays only."""
    _device_only(a)
    result = _numpy.ascontiguousarray(a._array, dtype=dtype)
    return a if result is a._array else _wrap(result)


def asfortranarray(a, dtype=None):
    _device_only(a)
    result = _numpy.asfortranarray(a._array, dtype=dtype)
    return a if result is a._array else _wrap(result)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A host copy of a device array (host data is returned as ``_numpy.asarray`` gives it)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _numpy.asarray(a, order=order)


def get_array_module(*args):
    """This module if any argument is a device array, else ``numpy``."""
    return _sys.modules[__name__] if _builtins.any(isinstance(a, ndarray) for a in args) else _numpy


def take(a, indices, axis=None, out=None):
    """``a.take``: host indices are copied to the device, as in CuPy."""
    if not isinstance(a, ndarray):
        raise _core.unsupported(a)
    return a.take(indices, axis, out)


def _like(name):
    numpy_function = getattr(_numpy, name)

    def function(a, *args, **kwargs):
        # the template only lends its shape and dtype: a host array will do
        return _wrap(numpy_function(_unwrap_host_ok(a), *_unwrap(args), **_unwrap(kwargs)))

    function.__name__ = name
    return function


zeros_like, ones_like, empty_like = _like("zeros_like"), _like("ones_like"), _like("empty_like")


def _fill_value(value):
    if isinstance(value, ndarray):
        if value.shape != ():
            raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
        return value._array[()]
    host = _numpy.asarray(value)
    if host.shape != ():
        raise ValueError("non-scalar _numpy.ndarray cannot be used for fill")
    return value


def full(shape, fill_value, dtype=None, order="C"):
    return _wrap(_numpy.full(shape, _fill_value(fill_value), dtype=dtype, order=order))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return _wrap(_numpy.full_like(_unwrap_host_ok(a), _fill_value(fill_value), dtype=dtype, order=order, shape=shape))


def fuse(*args, **kwargs):
    raise NotImplementedError("cupy.fuse is not emulated by the CuPy stand-in")


def is_available():
    return True


# ---------------------------------------------------------------------------------------------------
# cupy.cuda: one device
# ---------------------------------------------------------------------------------------------------
class _Device:
    """``cupy.cuda.Device``: the one device of the stand-in (id 0)."""

    def __init__(self, device=None):
        if device not in (None, 0):
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {device}")
        self.id = 0

    def use(self):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def __repr__(self):
        return "<CUDA Device 0>"


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDevice():
        return 0


class _Cuda:
    Device = _Device
    runtime = _Runtime()

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def get_device_id():
        return 0


cuda = _Cuda()


class _MemoryPool:
    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return 0


def get_default_memory_pool():
    return _MemoryPool()


# ---------------------------------------------------------------------------------------------------
# RawModule / RawKernel: CUDA source run by the kernel emulator of tests/kernels/emulator.py
# ---------------------------------------------------------------------------------------------------
def _emulator():
    """``tests/kernels/emulator.py`` (kept by the DynOPool kernel tests), imported at first use."""
    try:
        return _importlib.import_module("kernels.emulator")
    except ImportError as error:
        raise NotImplementedError(
            "the CuPy stand-in runs CUDA source with tests/kernels/emulator.py, which cannot be imported here: "
            f"{error}") from error


class RawModule:
    r"""``cupy.RawModule(code=..., options=...)``: CUDA C++ compiled by the emulator, not by NVRTC."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if path is not None:
            with open(path) as source:
                code = source.read()
        self.code, self.options = code, tuple(options)
        self._module = _emulator().EmulatedModule(code=code, options=self.options)

    def get_function(self, name):
        return RawKernel._from(self._module.get_function(name), name)


class RawKernel:
    r"""A kernel: ``kernel(grid, block, args)``, ``args`` a tuple of device arrays and scalars.

    Device arrays reach the emulated kernel as the NumPy arrays holding their memory; a host array
    among ``args`` raises ``TypeError: Unsupported type`` as CuPy's launch does.
    """

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self._function = RawModule(code=code, options=options).get_function(name)._function
        self.name = name

    @classmethod
    def _from(cls, function, name):
        kernel = cls.__new__(cls)
        kernel._function, kernel.name = function, name
        return kernel

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        if not isinstance(args, tuple):
            raise TypeError(f"Argument 'args' has incorrect type (expected tuple, got {type(args).__name__})")
        memory = []
        for arg in args:
            if isinstance(arg, ndarray):
                memory.append(arg._array)
            elif _core.is_scalar(arg):
                memory.append(arg)
            else:
                raise _core.unsupported(arg)
        grid = grid if isinstance(grid, tuple) else (grid,)
        block = block if isinstance(block, tuple) else (block,)
        self._function(grid, block, tuple(memory))


# ---------------------------------------------------------------------------------------------------
# Installing the stand-in as `cupy` (tests only)
# ---------------------------------------------------------------------------------------------------
def install(monkeypatch):
    """Register this package as ``cupy`` and :mod:`fake_cupy.cupyx` as ``cupyx`` in ``_sys.modules``.

    ``monkeypatch`` (pytest's fixture) undoes it at the end of the test, so nothing outside that test
    ever sees the stand-in. Returns this module.
    """
    from . import cupyx
    from .cupyx import scipy as cupyx_scipy
    from .cupyx.scipy import sparse as cupyx_sparse

    this = _sys.modules[__name__]
    for name, module in (("cupy", this), ("cupyx", cupyx), ("cupyx.scipy", cupyx_scipy),
                         ("cupyx.scipy.sparse", cupyx_sparse)):
        monkeypatch.setitem(_sys.modules, name, module)
    return this


del _name, _numpy_name
