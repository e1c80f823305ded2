"""Checks of the arrays an op is given. Every message names the argument and its value."""

from __future__ import annotations

import math
import numbers
import sys

import numpy

from ._backend import is_cupy_array

__all__ = ["check_pool_input", "accumulation_dtype", "cast_back", "check_positive_number", "is_int", "is_real", "as_array", "random_generator",
           "check_flag", "check_global_input", "MAX_ELEMENTS", "check_element_count", "check_like_x", "check_positive_int",
           "check_parameter_size", "check_axis", "check_axes"]

FLOAT_DTYPES = (numpy.float16, numpy.float32, numpy.float64)


def is_int(value) -> bool:
    """A Python or NumPy integer, and not a bool: ``kernel_size=True`` is a bug, not a size."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, numpy.bool_))


def is_real(value) -> bool:
    """A Python or NumPy real number (integers included), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, numpy.bool_))


def _is_native(value) -> bool:
    """A numpy or cupy array, or a poolref Tensor: what the ops compute on directly."""
    if isinstance(value, numpy.ndarray) or is_cupy_array(value):
        return True
    tensor = sys.modules.get("poolref.autograd.tensor")
    return tensor is not None and isinstance(value, tensor.Tensor)


def as_array(value, name: str = "x", op: str = "poolref"):
    """``value`` as something the ops compute on: numpy and cupy arrays and Tensors as they are; any
    other array through the DLPack protocol (``__dlpack__``: zero-copy, e.g. a CPU PyTorch tensor or a
    JAX array) or ``__array__``; lists and numbers as numpy arrays.

    None, ragged lists and other objects are refused with a TypeError naming the argument.

    >>> as_array([[1.0, 2.0]]).shape
    (1, 2)
    >>> as_array(None, "x", "max_pool2d")
    Traceback (most recent call last):
    ...
    TypeError: max_pool2d: x must be an array (numpy, cupy, a poolref Tensor, or any array with __dlpack__ or __array__), got x=None
    """
    if _is_native(value):
        return value
    what = "an array (numpy, cupy, a poolref Tensor, or any array with __dlpack__ or __array__)"
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{op}: {name} must be {what}, got {name}={value!r}")
    if hasattr(value, "__dlpack__"):
        try:
            return numpy.from_dlpack(value)  # zero-copy where the producer's memory is on the host
        except (BufferError, RuntimeError, TypeError, ValueError):
            pass  # a device array, or one the producer will not export (a tensor that requires grad)
    try:
        array = numpy.asarray(value)
    except (ValueError, TypeError, RuntimeError) as error:  # ragged nesting, a tensor that requires grad, ...
        raise TypeError(f"{op}: {name} must be {what}, got {name} of type {type(value).__name__} that numpy "
                        f"cannot convert ({error})") from None
    if array.dtype == object:
        raise TypeError(f"{op}: {name} must be {what}, got {name} of type {type(value).__name__} (not numeric)")
    return array


def _layout(n: int) -> str:
    return ("L", "H, W", "D, H, W")[n - 1] if 1 <= n <= 3 else ", ".join(f"S{i}" for i in range(n))


def check_pool_input(x, n: int, op: str, *, integer_ok: bool, name: str = "x"):
    """Return ``x`` as an array or Tensor of shape (N, C, *spatial) or (C, *spatial) with n spatial dims.

    Anything with ``shape`` and ``dtype`` (numpy, cupy, Tensor) is passed through; other array-likes
    become numpy arrays. Floating dtypes are accepted, integer dtypes only where ``integer_ok``.
    """
    x = as_array(x, name, op)
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(
            f"{op}: {name} must have shape (N, C, {_layout(n)}) or (C, {_layout(n)}), "
            f"got {name} with shape {tuple(x.shape)}"
        )
    dtype = numpy.dtype(x.dtype)
    is_float = dtype in [numpy.dtype(d) for d in FLOAT_DTYPES]
    is_int = dtype.kind in "iu"
    if not (is_float or (integer_ok and is_int)):
        wanted = "a float16, float32, float64 or integer" if integer_ok else "a float16, float32 or float64"
        raise TypeError(f"{op}: {name} must be {wanted} array, got {name} with dtype {dtype}")
    spatial = tuple(x.shape[-n:])
    if any(s < 1 for s in spatial):
        raise ValueError(f"{op}: {name} must have non-empty spatial dimensions, got {name} with shape {tuple(x.shape)}")
    return x


def check_global_input(x, op: str, *, integer_ok: bool = False, name: str = "x"):
    """Return ``x`` of shape (N, C, *spatial) with at least one spatial dim, for the ops that pool
    whole planes (global pooling, GeM, LSE, bilinear pooling)."""
    x = as_array(x, name, op)
    if x.ndim < 3:
        raise ValueError(
            f"{op}: {name} must have shape (N, C, *spatial) with at least one spatial dim, "
            f"got {name} with shape {tuple(x.shape)}"
        )
    return check_pool_input(x, x.ndim - 2, op, integer_ok=integer_ok, name=name)


def check_like_x(value, name: str, ndim: int, layout: str, x, op: str):
    """A parameter array of an op (a weight, a bias, an offset) with ``ndim`` axes and the dtype of
    ``x`` (a float dtype, checked already): ``layout`` names its axes in the message.

    >>> import numpy as np
    >>> check_like_x(np.zeros((3, 2), np.float32), "weight", 4, "(C_out, C_in, kH, kW)", np.zeros(1), "conv2d")
    Traceback (most recent call last):
    ...
    ValueError: conv2d: weight must have shape (C_out, C_in, kH, kW), got weight with shape (3, 2)
    """
    value = as_array(value, name, op)
    if value.ndim != ndim:
        raise ValueError(f"{op}: {name} must have shape {layout}, got {name} with shape {tuple(value.shape)}")
    dtype = numpy.dtype(value.dtype)
    if dtype != numpy.dtype(x.dtype):
        raise TypeError(f"{op}: {name} must have the dtype of x ({numpy.dtype(x.dtype)}), got {name} with dtype {dtype}")
    return value


def check_flag(value, name: str, op: str, *, none_ok: bool = False):
    """A bool (Python or NumPy) as a Python bool; anything else, 0 and 1 included, is refused.

    Every boolean flag of the public API goes through here (``ceil_mode``, ``return_indices``,
    ``count_include_pad``, ``align_corners``, ...): a string such as ``"no"`` is truthy, and an op that
    took it as True would silently do the opposite of what was meant. With ``none_ok``, None (the
    API's "the default of the convention") is returned as is.

    >>> check_flag(numpy.bool_(True), "ceil_mode", "max_pool2d")
    True
    >>> check_flag("no", "count_include_pad", "avg_pool2d")
    Traceback (most recent call last):
    ...
    TypeError: avg_pool2d: count_include_pad must be a bool, got count_include_pad='no'
    >>> check_flag(1, "antialias", "interpolate", none_ok=True)
    Traceback (most recent call last):
    ...
    TypeError: interpolate: antialias must be a bool or None, got antialias=1
    """
    if none_ok and value is None:
        return None
    if not isinstance(value, (bool, numpy.bool_)):
        wanted = "a bool or None" if none_ok else "a bool"
        raise TypeError(f"{op}: {name} must be {wanted}, got {name}={value!r}")
    return bool(value)


#: The most elements poolref allocates for one array (2^31, 16 GiB of float64). Ops that size an
#: output or a sampling grid from their arguments (boxes, scale factors, alpha, output sizes) check
#: the count first, so that an absurd argument is refused at once instead of exhausting memory or
#: running for minutes.
MAX_ELEMENTS = 2**31


def check_element_count(count, name: str, value, op: str, what: str = "the output"):
    """Refuse an allocation of more than :data:`MAX_ELEMENTS` elements before it is made.

    ``count`` may be any Python number (it is never allocated); ``name`` and ``value`` are the argument
    that caused it, named in the message with the count.

    >>> check_element_count(10**12, "scale_factor", 1e6, "interpolate")
    Traceback (most recent call last):
    ...
    ValueError: interpolate: scale_factor=1000000.0 asks for 1000000000000 elements in the output, more than poolref allocates for one array (2147483648)
    """
    if not count <= MAX_ELEMENTS:  # NaN too: an overflowed count is no count
        try:
            shown = int(count) if count < 1e15 else f"{float(count):.3g}"
        except OverflowError:  # an int too large for a float (10**400)
            shown = f"about 10^{len(str(int(count))) - 1}"
        raise ValueError(f"{op}: {name}={value!r} asks for {shown} elements in {what}, more than poolref "
                         f"allocates for one array ({MAX_ELEMENTS})")


def accumulation_dtype(dtype) -> numpy.dtype:
    """Sums and means run in at least float32 (float16 inputs), and in float64 for float64 inputs."""
    dtype = numpy.dtype(dtype)
    return numpy.dtype(numpy.float32) if dtype == numpy.float16 else dtype


def cast_back(values, dtype):
    """``values``, computed in the accumulation dtype, rounded back to ``dtype`` (the input's).

    A value beyond ``dtype``'s range rounds to +-inf, as IEEE rounding says (the true result
    overflows the dtype: a float16 gradient above 65504, say); numpy warns about such a cast, and
    this is where poolref expects it.

    >>> import numpy as np
    >>> cast_back(np.array([1.0, 1e5], dtype=np.float32), np.float16)
    array([ 1., inf], dtype=float16)
    """
    with numpy.errstate(over="ignore"):
        return values.astype(dtype, copy=False)


def check_positive_int(value, name: str, op: str) -> int:
    """A Python or NumPy integer >= 1 (a channel or feature count), as a Python int.

    >>> check_positive_int(0, "in_channels", "Conv2d")
    Traceback (most recent call last):
    ...
    ValueError: Conv2d: in_channels must be a positive int, got in_channels=0
    """
    if not is_int(value) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {name}={value!r}")
    return int(value)


def check_parameter_size(shape: tuple, what: str, op: str, **arguments) -> None:
    """Refuse a parameter of ``shape`` larger than :data:`MAX_ELEMENTS` before it is allocated, naming
    the ``arguments`` that size it.

    >>> check_parameter_size((10**12, 2), "weight", "Linear", in_features=2, out_features=10**12)
    Traceback (most recent call last):
    ...
    ValueError: Linear: in_features=2, out_features=1000000000000 ask for 2000000000000 elements in a weight of shape (1000000000000, 2), more than poolref allocates for one array (2147483648)
    """
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        given = ", ".join(f"{name}={value!r}" for name, value in arguments.items())
        raise ValueError(f"{op}: {given} ask for {count} elements in a {what} of shape {tuple(shape)}, more than poolref "
                         f"allocates for one array ({MAX_ELEMENTS})")


def check_axis(axis, ndim: int, name: str, op: str, of: str = "x") -> int:
    """An int axis of an array ``of`` with ``ndim`` axes (a negative one counts from the end), as an
    int in ``[0, ndim)``.

    >>> check_axis(-1, 4, "end_dim", "Flatten")
    3
    >>> check_axis(4, 4, "start_dim", "Flatten")
    Traceback (most recent call last):
    ...
    ValueError: Flatten: start_dim=4 is not an axis of x with 4 axes
    """
    if not is_int(axis):
        raise TypeError(f"{op}: {name} must be an int (an axis), got {name}={axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: {name}={axis} is not an axis of {of} with {ndim} axes")
    return int(axis) % ndim


def check_axes(axis, ndim: int, name: str, op: str, of: str = "x"):
    """None (every axis), an axis, or a tuple of distinct axes, as numpy's reductions take them."""
    if axis is None:
        return None
    if isinstance(axis, tuple):
        axes = tuple(check_axis(a, ndim, name, op, of) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{op}: {name}={axis!r} repeats an axis")
        return axes
    if not is_int(axis):
        raise TypeError(f"{op}: {name} must be None, an int or a tuple of ints (axes), got {name}={axis!r}")
    return check_axis(axis, ndim, name, op, of)


def check_positive_number(value, name: str, op: str) -> float:
    """A finite real number > 0 (norm_type, p, r, ...), as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: {name} must be a finite number > 0, got {name}={value!r}")
    return float(value)


def random_generator(rng, op: str) -> numpy.random.Generator:
    """A ``numpy.random.Generator`` from ``rng``: a Generator (used as is), an int seed, or None.

    None draws fresh entropy (not reproducible); an int seed gives the same draws on every call, which
    is what a gradient check needs; a Generator advances with every call.
    """
    if rng is None:
        return numpy.random.default_rng()
    if isinstance(rng, numpy.random.Generator):
        return rng
    if is_int(rng):
        if rng < 0:
            raise ValueError(f"{op}: an int seed rng must be non-negative, got rng={rng!r}")
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"{op}: rng must be a numpy.random.Generator, an int seed or None, got rng={rng!r}")
