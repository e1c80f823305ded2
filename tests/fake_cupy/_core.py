r"""The stand-in's array type and ufuncs: NumPy arithmetic behind CuPy's refusals.

An :class:`ndarray` wraps a private NumPy array (its "device memory"). It is *not* a
``numpy.ndarray``, and it refuses everything CuPy refuses, with CuPy's own exception types and
messages (read from CuPy's ``_core/core.pyx``, ``_core/_kernel.pyx``, ``_core/_scalar.pyx`` and
``_core/_routines_indexing.pyx``):

* implicit conversion to NumPy (``numpy.asarray(x)``, ``numpy.testing.assert_*(x, ...)``):
  ``TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct
  a NumPy array explicitly.`` (``ndarray.__array__``);
* a ``numpy.ndarray`` operand of an operator or ufunc, in either order and whatever its shape
  (0-d included): ``TypeError: Unsupported type <class 'numpy.ndarray'>`` (``_scalar.CScalar``);
  Python and NumPy scalars are fine. Comparisons alone take a 0-d NumPy array (as its ``.item()``);
* a non-scalar NumPy array or list assigned through basic indexing (``x[1:3] = host``):
  ``ValueError: non-scalar numpy.ndarray cannot be used for fill``; through integer-array or mask
  indexing CuPy copies the host values over, and so does the stand-in;
* ufunc keywords other than ``out``, ``dtype`` and ``casting`` (``where=`` included):
  ``TypeError: Wrong arguments {...}``;
* ``ufunc.at`` beyond ``add`` (int32, int64, float16, float32, float64, uint32, uint64),
  ``subtract`` (int32, uint32), ``maximum``/``minimum`` (no float16) and the bitwise ops;
  ``ufunc.reduce`` beyond ``add`` and ``multiply``: ``TypeError`` / ``NotImplementedError``;
* ``operator.index(x)`` (CuPy arrays have no ``__index__``), the buffer protocol, and the NumPy-only
  methods and attributes (``ctypes``, ``itemset``, ``resize``, ``__array_interface__``, ...).

What CuPy allows, the stand-in allows: ``int(x)``, ``float(x)``, ``bool(x)`` and ``x.item()`` on one
element (a device synchronisation), ``x.get()``, ``x.tolist()``, NumPy index arrays, ``numpy.<ufunc>``
and ``numpy.<function>`` called on device arrays only (dispatched through ``__array_ufunc__`` and
``__array_function__`` to the same-named CuPy function). Results follow CuPy's forms: reductions and
element reads return 0-d arrays, never NumPy scalars; an element read ``x[i, j]`` is a 0-d *view*;
slices, ``reshape``, ``transpose`` and ``T`` are views sharing memory. Floating-point warnings are
never raised (a GPU raises none).
"""

from __future__ import annotations

import warnings

import numpy

from ._signatures import METHOD_SIGNATURES, signature

__all__ = ["ndarray", "ufunc", "Flags", "wrap", "unwrap", "unwrap_host_ok", "is_scalar"]

IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)
# dtypes a CuPy array cannot hold (CuPy has no object, string or datetime arrays)
_UNSUPPORTED_KINDS = frozenset("OUSVMm")
_PYTHON_SCALARS = (bool, int, float, complex)


def is_scalar(value) -> bool:
    """A Python or NumPy scalar: what CuPy's kernels take besides arrays (``_scalar.scalar_type_set``)."""
    return type(value) in _PYTHON_SCALARS or isinstance(value, numpy.generic)


def unsupported(value) -> TypeError:
    """CuPy's error for a kernel argument that is neither a CuPy array nor a scalar."""
    return TypeError(f"Unsupported type {type(value)}")


def wrap(result):
    """NumPy results as device results: arrays wrapped (views stay views), scalars as 0-d arrays."""
    if isinstance(result, numpy.ndarray):
        if result.dtype.kind in _UNSUPPORTED_KINDS:
            raise ValueError(f"Unsupported dtype {result.dtype}")
        array = ndarray.__new__(ndarray)
        array._array = result
        return array
    if isinstance(result, numpy.generic):
        return wrap(numpy.asarray(result))  # CuPy returns a 0-d array where NumPy returns a scalar
    if isinstance(result, tuple):
        return tuple(wrap(r) for r in result)
    if isinstance(result, list):
        return [wrap(r) for r in result]
    return result


def unwrap(value):
    """The NumPy array behind each device array (through tuples, lists and dicts); host arrays refused."""
    if isinstance(value, ndarray):
        return value._array
    if isinstance(value, numpy.ndarray):
        raise unsupported(value)
    if isinstance(value, tuple):
        return tuple(unwrap(v) for v in value)
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def unwrap_host_ok(value):
    """As :func:`unwrap`, but host arrays pass (where CuPy copies them to the device: index arrays,
    ``asarray``, the values of ``ufunc.at`` and of integer-array assignment)."""
    if isinstance(value, ndarray):
        return value._array
    if isinstance(value, tuple):
        return tuple(unwrap_host_ok(v) for v in value)
    if isinstance(value, list):
        return [unwrap_host_ok(v) for v in value]
    return value


def _call(function, args, kwargs, out=None):
    """Run a NumPy ``function`` on unwrapped arguments; return ``out`` itself when it was written."""
    with numpy.errstate(all="ignore"):  # a GPU raises no floating-point warnings
        result = function(*args, **kwargs)
    if out is not None and isinstance(result, numpy.ndarray) and result is out._array:
        return out
    return wrap(result)


class Flags:
    """CuPy's ``ndarray.flags``: ``c_contiguous``, ``f_contiguous`` and ``owndata`` only."""

    def __init__(self, c_contiguous, f_contiguous, owndata):
        self.c_contiguous = bool(c_contiguous)
        self.f_contiguous = bool(f_contiguous)
        self.owndata = bool(owndata)

    def __getitem__(self, name):
        keys = {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}
        try:
            return keys[name]
        except KeyError:
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags") from None

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class _MemoryPointer:
    """``ndarray.data``: where the array starts in device memory (an address, not a buffer)."""

    def __init__(self, array):
        self.ptr = array.__array_interface__["data"][0]
        self.device_id = 0

    def __int__(self):
        return self.ptr


class _Device:
    """``ndarray.device``: the (single) device the stand-in emulates."""

    id = 0

    def __repr__(self):
        return "<CUDA Device 0>"


def _is_basic_index(key: tuple) -> bool:
    return all(
        k is None or k is Ellipsis or isinstance(k, slice)
        or (isinstance(k, (int, numpy.integer)) and not isinstance(k, (bool, numpy.bool_)))
        for k in key
    )


def _index(key):
    """An index for the private array, and whether it is basic (ints, slices, None, Ellipsis only).

    Device index arrays are unwrapped; host index arrays and lists are allowed, as CuPy copies them
    to the device (``_prepare_slice_list``).
    """
    key = key if isinstance(key, tuple) else (key,)
    basic = _is_basic_index(key)
    return tuple(unwrap_host_ok(k) for k in key), basic


class ndarray:
    r"""A device array of the stand-in: a NumPy array that only CuPy's interface can reach.

    ``ndarray(shape, dtype=float)`` allocates an uninitialised array, as ``cupy.ndarray`` does;
    the module functions (``asarray``, ``zeros``, ...) are the usual way to make one.

    >>> import numpy, fake_cupy
    >>> x = fake_cupy.arange(6.0).reshape(2, 3)
    >>> isinstance(x, numpy.ndarray)
    False
    >>> x.sum()  # reductions give 0-d device arrays, not NumPy scalars
    array(15.)
    >>> x + numpy.ones(3)
    Traceback (most recent call last):
    ...
    TypeError: Unsupported type <class 'numpy.ndarray'>
    >>> numpy.asarray(x)
    Traceback (most recent call last):
    ...
    TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly.
    >>> x.get()
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """

    __slots__ = ("_array",)
    __array_priority__ = 100  # as cupy.ndarray: above NumPy's, below the sparse matrices'

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not take memptr or strides")
        self._array = numpy.empty(shape, dtype=dtype, order=order)

    # ----- attributes -----
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    strides = property(lambda self: self._array.strides)
    T = property(lambda self: wrap(self._array.T))
    mT = property(lambda self: wrap(self._array.mT))
    data = property(lambda self: _MemoryPointer(self._array))
    device = property(lambda self: _Device())

    @property
    def base(self):
        """The array this one is a view of (a new wrapper of the same memory), or None."""
        base = self._array.base
        return wrap(base) if isinstance(base, numpy.ndarray) else None

    @property
    def flags(self):
        a = self._array
        return Flags(a.flags.c_contiguous, a.flags.f_contiguous, a.flags.owndata)


    @property
    def real(self):
        return wrap(self._array.real)

    @property
    def imag(self):
        return wrap(self._array.imag)

    # ----- explicit transfers, and what CuPy allows of a single element -----
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A NumPy copy (the device-to-host transfer); with ``out``, copied into that host array."""
        if out is not None:
            if not isinstance(out, numpy.ndarray) or out.shape != self.shape or out.dtype != self.dtype:
                raise TypeError("out must be a numpy.ndarray of the same shape and dtype")
            out[...] = self._array
            return out
        return numpy.array(self._array, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy a host array of the same shape and dtype into this array (host-to-device)."""
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch")
        self._array[...] = arr

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._array.item()

    def tolist(self):
        return self._array.tolist()

    def tobytes(self, order="C"):
        return self._array.tobytes(order)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __int__(self):
        return int(self._array)

    def __float__(self):
        return float(self._array)

    def __complex__(self):
        return complex(self._array)

    def __bool__(self):
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but in future this will "
                          "result in an error. Use `array.size > 0` to check that an array is not empty.",
                          DeprecationWarning, stacklevel=2)
            return False
        if self.size == 1:
            return bool(self._array.reshape(()))
        raise ValueError("The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()")

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return repr(self._array)

    def __str__(self):
        return str(self._array)

    def __format__(self, spec):
        return format(self._array, spec)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_rebuild, (self.get(),))

    # ----- indexing -----
    def __getitem__(self, key):
        key, basic = _index(key)
        if basic and Ellipsis not in key:
            key = key + (Ellipsis,)  # an element read is a 0-d view in CuPy, not a copied scalar
        return wrap(self._array[key])

    def __setitem__(self, key, value):
        key, basic = _index(key)
        if isinstance(value, ndarray):
            value = value._array
        elif basic and not is_scalar(value):
            # CuPy fills a basic selection from a host value (ndarray.fill): only a scalar will do
            host = numpy.asarray(value)
            if host.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = host[()]
        if not basic and not is_scalar(value) and numpy.ndim(value) > 0:
            self._assign_repeated_first(key, value)
        else:
            self._array[key] = value

    def _assign_repeated_first(self, key, value):
        """``self[key] = value`` where an element selected twice keeps its *first* value.

        CuPy leaves it undefined which of the values written to a repeated index is stored (its
        threads race); NumPy stores the last. The stand-in stores the first, so that code relying on
        NumPy's order gives a different answer here rather than passing by luck.
        """
        targets = numpy.arange(self.size).reshape(self.shape)[key]  # the flat position of each write
        if targets.size == numpy.unique(targets).size:
            self._array[key] = value
            return
        values = numpy.broadcast_to(numpy.asarray(value).astype(self.dtype, copy=False), targets.shape)
        reverse = numpy.unravel_index(targets.reshape(-1)[::-1], self.shape)
        self._array[reverse] = values.reshape(-1)[::-1]  # NumPy keeps the last write: the first in order

    # ----- NumPy protocols: device arrays only, dispatched to the stand-in's functions -----
    def __array_ufunc__(self, numpy_ufunc, method, *inputs, **kwargs):
        from . import _UFUNCS  # the module's table, filled once this module is imported

        stand_in = _UFUNCS.get(numpy_ufunc.__name__)
        if stand_in is None:
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        for x in inputs + ((kwargs["out"],) if "out" in kwargs else ()):
            if not (is_scalar(x) or isinstance(x, (ndarray, numpy.ndarray))):
                return NotImplemented
        if numpy_ufunc.__name__ in _COMPARISONS:
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        if method == "__call__":
            return stand_in(*inputs, **kwargs)
        if method in ("at", "reduce", "accumulate", "outer"):
            return getattr(stand_in, method)(*inputs, **kwargs)
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        import sys

        module = sys.modules[__package__]  # the stand-in's namespace (fake_cupy)
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
        stand_in = getattr(module, func.__name__, None)
        if stand_in is None or stand_in is func:
            return NotImplemented
        if not all(issubclass(t, (ndarray, numpy.ndarray)) for t in types):
            return NotImplemented
        return stand_in(*args, **kwargs)

    # ----- methods (the subset cupy.ndarray has), each the NumPy method on the private array -----
    def copy(self, order="C"):
        return wrap(self._array.copy(order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kwargs = {} if casting is None else {"casting": casting}
        result = self._array.astype(dtype, order=order, copy=copy, **kwargs)
        return self if result is self._array else wrap(result)

    def view(self, dtype=None, type=None):
        if type is not None:
            raise TypeError("cupy.ndarray.view does not take type")
        return wrap(self._array.view() if dtype is None else self._array.view(dtype))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return wrap(self._array.reshape(shape, order=order))

    def fill(self, value):
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._array[()]
        else:
            host = numpy.asarray(value, dtype=self.dtype)
            if host.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = host[()]
        self._array.fill(value)

    # ----- operators -----
    def _binary(self, numpy_ufunc, other, reflected=False, out=None):
        if not (isinstance(other, ndarray) or is_scalar(other)):
            if isinstance(other, numpy.ndarray):
                raise unsupported(other)
            if getattr(other, "__array_ufunc__", _MISSING) is None or getattr(other, "__array_priority__", 0) > 100:
                return NotImplemented  # a Tensor, a sparse matrix: let it handle the operation
            raise TypeError(f"operand type(s) all returned NotImplemented from __array_ufunc__: {type(self)}, {type(other)}")
        a, b = (other, self) if reflected else (self, other)
        if out is None:
            return _call(numpy_ufunc, unwrap((a, b)), {})
        return _call(numpy_ufunc, unwrap((a, b)), {"out": out._array}, out=out)

    def _compare(self, numpy_ufunc, other):
        if isinstance(other, numpy.ndarray) and other.ndim == 0:
            other = other.item()  # CuPy's one exception: a 0-d host array in a comparison
        if numpy_ufunc in (numpy.equal, numpy.not_equal) and (other is None or (
                not isinstance(other, (ndarray, numpy.ndarray)) and not is_scalar(other)
                and type(other).__eq__ is object.__eq__)):
            fill = numpy.ones if numpy_ufunc is numpy.not_equal else numpy.zeros
            return wrap(fill(self.shape, dtype=bool))  # equal to nothing, as CuPy answers
        return self._binary(numpy_ufunc, other)

    def __eq__(self, other):
        return self._compare(numpy.equal, other)

    def __ne__(self, other):
        return self._compare(numpy.not_equal, other)

    def __lt__(self, other):
        return self._compare(numpy.less, other)

    def __le__(self, other):
        return self._compare(numpy.less_equal, other)

    def __gt__(self, other):
        return self._compare(numpy.greater, other)

    def __ge__(self, other):
        return self._compare(numpy.greater_equal, other)

    __hash__ = None

    def __neg__(self):
        return _call(numpy.negative, (self._array,), {})

    def __pos__(self):
        return _call(numpy.positive, (self._array,), {})

    def __abs__(self):
        return _call(numpy.absolute, (self._array,), {})

    def __invert__(self):
        return _call(numpy.invert, (self._array,), {})

    def __pow__(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented
        return self._binary(numpy.power, other)

    def __rpow__(self, other):
        return self._binary(numpy.power, other, reflected=True)

    def __ipow__(self, other):
        return self._binary(numpy.power, other, out=self)

    def __divmod__(self, other):
        return self._binary(numpy.divmod, other)

    def __rdivmod__(self, other):
        return self._binary(numpy.divmod, other, reflected=True)


_MISSING = object()
_COMPARISONS = frozenset(["greater", "greater_equal", "less", "less_equal", "equal", "not_equal"])


def _rebuild(host):
    return wrap(numpy.array(host, copy=True))


def _operator(numpy_ufunc, kind):
    if kind == "forward":
        return lambda self, other: self._binary(numpy_ufunc, other)
    if kind == "reflected":
        return lambda self, other: self._binary(numpy_ufunc, other, reflected=True)
    return lambda self, other: self._binary(numpy_ufunc, other, out=self)


for _name, _numpy_ufunc in [("add", numpy.add), ("sub", numpy.subtract), ("mul", numpy.multiply),
                            ("truediv", numpy.true_divide), ("floordiv", numpy.floor_divide),
                            ("mod", numpy.remainder), ("matmul", numpy.matmul), ("and", numpy.bitwise_and),
                            ("or", numpy.bitwise_or), ("xor", numpy.bitwise_xor), ("lshift", numpy.left_shift),
                            ("rshift", numpy.right_shift)]:
    setattr(ndarray, f"__{_name}__", _operator(_numpy_ufunc, "forward"))
    setattr(ndarray, f"__r{_name}__", _operator(_numpy_ufunc, "reflected"))
    if _name != "matmul":
        setattr(ndarray, f"__i{_name}__", _operator(_numpy_ufunc, "in place"))


def _method(name):
    bind = signature(METHOD_SIGNATURES[name]).bind

    def method(self, *args, **kwargs):
        bind(*args, **kwargs)  # cupy.ndarray's arguments only (no where=, initial=, ...)
        out = kwargs.get("out")
        if out is not None and not isinstance(out, ndarray):
            raise unsupported(out)
        return _call(getattr(self._array, name), unwrap(args), unwrap(kwargs), out=out)

    method.__name__ = name
    method.__doc__ = f"``numpy.ndarray.{name}`` on the device (as ``cupy.ndarray.{name}``)."
    return method


# cupy.ndarray's other methods (from its _ndarray_base), NumPy's on the private array
for _name in ["all", "any", "argmax", "argmin", "argpartition", "argsort", "choose", "clip", "compress", "conj",
              "conjugate", "cumprod", "cumsum", "diagonal", "dot", "flatten", "max", "mean", "min", "nonzero",
              "partition", "prod", "ptp", "put", "ravel", "repeat", "round", "searchsorted", "sort", "squeeze", "std",
              "sum", "swapaxes", "take", "trace", "transpose", "var"]:
    setattr(ndarray, _name, _method(_name))


def _take(self, indices, axis=None, out=None):
    """``take`` copies host indices to the device, as CuPy's ``_take`` does."""
    kwargs = {} if out is None else {"out": unwrap(out)}
    return _call(self._array.take, (unwrap_host_ok(indices), axis), kwargs, out=out)


ndarray.take = _take


class ufunc:
    r"""A stand-in for ``cupy.ufunc``: NumPy's ufunc of the same name, with CuPy's arguments.

    Inputs must be device arrays or scalars (a host array or a list raises ``TypeError:
    Unsupported type``), outputs device arrays; the keywords are ``out``, ``dtype`` and ``casting``.
    ``at``, ``reduce``, ``accumulate`` and ``outer`` exist as in CuPy, with its limits.
    """

    # ufunc.at: the ops CuPy scatters (_scatter_op), and the dtypes each takes
    _AT_DTYPES = {
        "add": ("int32", "int64", "float16", "float32", "float64", "uint32", "uint64"),
        "subtract": ("int32", "uint32"),
        "maximum": ("int32", "int64", "float32", "float64", "uint32", "uint64"),
        "minimum": ("int32", "int64", "float32", "float64", "uint32", "uint64"),
        "bitwise_and": ("int32", "int64", "uint32", "uint64"),
        "bitwise_or": ("int32", "int64", "uint32", "uint64"),
        "bitwise_xor": ("int32", "int64", "uint32", "uint64"),
    }

    def __init__(self, name):
        self._numpy = getattr(numpy, name)
        self.__name__ = name
        self.name = f"cupy_{name}"
        self.nin, self.nout, self.nargs = self._numpy.nin, self._numpy.nout, self._numpy.nargs
        self.types = self._numpy.types

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                            f"{self.nargs} (with outputs), but given {len(args)}.")
        inputs, outputs = args[:self.nin], args[self.nin:]
        if out is not None:
            if outputs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            outputs = out if isinstance(out, tuple) else (out,)
        for x in inputs:
            if not (isinstance(x, ndarray) or is_scalar(x)):
                raise unsupported(x)
        for x in outputs:
            if x is not None and not isinstance(x, ndarray):
                raise unsupported(x)
        options = {"casting": casting}
        if dtype is not None:
            options["dtype"] = dtype
        if outputs:
            options["out"] = tuple(None if o is None else o._array for o in outputs)
        with numpy.errstate(all="ignore"):
            result = self._numpy(*unwrap(inputs), **options)
        if outputs and self.nout == 1 and outputs[0] is not None:
            return outputs[0]
        return wrap(result)

    def at(self, a, indices, b=None):
        """``a[indices] op= b`` unbuffered; host indices and values are copied to the device first."""
        if self.__name__ not in self._AT_DTYPES:
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        if not isinstance(a, ndarray):
            raise AttributeError(f"{type(a).__name__!r} object has no attribute '_scatter_op'")
        if a.dtype.name not in self._AT_DTYPES[self.__name__]:
            raise TypeError(f"cupy.{self.__name__}.at only supports {', '.join(self._AT_DTYPES[self.__name__])} as data type")
        # CuPy casts the values to a's dtype before it adds them (atomics in a's dtype)
        values = numpy.asarray(unwrap_host_ok(b)).astype(a.dtype, copy=False)
        key, _ = _index(indices)
        with numpy.errstate(all="ignore"):
            self._numpy.at(a._array, key if len(key) > 1 else key[0], values)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        if self.__name__ == "add":
            return array.sum(axis, dtype, out, keepdims)
        if self.__name__ == "multiply":
            return array.prod(axis, dtype, out, keepdims)
        raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")

    def accumulate(self, array, axis=0, dtype=None, out=None):
        if self.__name__ == "add":
            return array.cumsum(axis, dtype, out)
        if self.__name__ == "multiply":
            return array.cumprod(axis, dtype, out)
        raise NotImplementedError(f"`{self.name}.accumulate` is not supported yet")

    def outer(self, A, B, **kwargs):
        if not isinstance(A, ndarray) or not isinstance(B, ndarray):
            raise unsupported(B if isinstance(A, ndarray) else A)
        ndim_a, ndim_b = A.ndim, B.ndim
        return self(A.reshape(A.shape + (1,) * ndim_b), B.reshape((1,) * ndim_a + B.shape), **kwargs)
