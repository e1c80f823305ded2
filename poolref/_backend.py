"""Choose the array module, numpy or cupy, from the arrays an op is given.

This is the only module that knows cupy exists. Every op asks ``array_module(x)`` for its ``xp`` and
then writes plain array code against it, so the same lines run on the CPU and on the GPU.
``import poolref`` never imports cupy: we only look at ``sys.modules``, so cupy is consulted only
when the caller has already imported it (and can therefore hold cupy arrays).

Sparse matrices are the one thing the two modules spell differently (``scipy.sparse`` and
``cupyx.scipy.sparse``), so :func:`sparse_rows` and :func:`sparse_csr` build them here for both.

The two devices also want the batch fed differently: :func:`batch_blocks` cuts it into cache-sized
blocks on the CPU and leaves it whole on the GPU.
"""

from __future__ import annotations

import math
import sys
from types import ModuleType

import numpy

__all__ = ["BLOCK_BYTES", "Scratch", "array_module", "batch_blocks", "is_cupy_array", "sparse_csr", "sparse_rows", "take_rows", "to_numpy"]


def _cupy() -> ModuleType | None:
    return sys.modules.get("cupy")


def data_of(value):
    """A Tensor's ``data``; any other value as it is.

    Found through ``sys.modules``, as cupy is: no Tensor exists before poolref.autograd is imported
    (and poolref.autograd imports this module, so it cannot be imported here).
    """
    tensor = sys.modules.get("poolref.autograd.tensor")
    if tensor is not None and isinstance(value, tensor.Tensor):
        return value.data
    return value


def is_cupy_array(value) -> bool:
    """True when ``value`` is a ``cupy.ndarray``, or a Tensor holding one (False whenever cupy has not
    been imported)."""
    cupy = _cupy()
    return cupy is not None and isinstance(data_of(value), cupy.ndarray)


def array_module(*values) -> ModuleType:
    """Return ``cupy`` if any of ``values`` is a cupy array (or a Tensor holding one), else ``numpy``.

    A Tensor counts as the array it holds: an op asking where its Tensor input lives gets the
    module of the Tensor's data, not numpy. Values that are not arrays (None, Python scalars,
    tuples) are ignored. Mixing numpy and cupy arrays in one call is refused, because silently
    moving data between devices hides bugs.

    >>> import numpy as np
    >>> from poolref.autograd import Tensor
    >>> array_module(Tensor(np.zeros(2)), np.ones(3), None, 2.0) is np
    True
    """
    on_gpu = [is_cupy_array(v) for v in values if v is not None and hasattr(v, "shape")]
    if any(on_gpu):
        if not all(on_gpu):
            raise TypeError("inputs mix numpy and cupy arrays; move them to one device first")
        return _cupy()
    return numpy


def to_numpy(value):
    """Return a numpy copy of a numpy or cupy array (used by tests, the oracle and printing)."""
    if is_cupy_array(value):
        return value.get()
    return numpy.asarray(value)


#: The working set, in bytes, that :func:`batch_blocks` sizes each block for. Small enough that a
#: block's arrays stay in the CPU's caches (here 1 MiB of L2 a core and 32 MiB of L3 shared) from one
#: NumPy pass over them to the next; large enough that the few dozen NumPy calls an op makes per block
#: cost little next to the arithmetic. Chosen by measurement on the project's machine (max_pool2d
#: forward + backward, N = 64: 1.24 ms a sample with 1 MiB, 1.08 with 4 MiB, 1.04 with 8 MiB, 1.33
#: with 16 MiB, 1.86 with 32 MiB). Tests set it to 1 to run every op one plane (or sample) per block.
BLOCK_BYTES = 4 * 2**20


def batch_blocks(count: int, bytes_per_item: int, like=None) -> list:
    """Consecutive slices of ``range(count)`` that cover it, each about ``BLOCK_BYTES`` of working set.

    A speed trick, not math. An op whose items are independent (the ``N*C`` planes of a pooling
    op, the ``N`` samples of ``grid_sample``) could process the whole batch in each of its NumPy
    passes; but a batch larger than the CPU's caches then streams through main memory in every pass,
    and the time per sample grows with the batch (2.5x from N = 1 to N = 64 for ``max_pool2d``).
    Cutting the batch into blocks of ``BLOCK_BYTES // bytes_per_item`` items and making all the
    passes over one block before the next keeps each block in the cache. Each item's arithmetic is
    exactly what it was: the same operations on the same values in the same order, so the results
    are bit for bit those of one block, except for the sign bit of a NaN, which is no part of its
    value and which NumPy itself does not keep stable (``inf - inf`` gives a NaN of either sign
    depending on whether the element falls in a SIMD lane or the scalar tail of a loop).

    The loop over the returned slices is a loop over a handful of cache-sized blocks (tens, for a
    batch of 64 feature maps of 64 x 56 x 56), never over single samples, channels or pixels.

    ``bytes_per_item`` is the op's estimate of the bytes it touches per item (input, output and
    temporaries). ``like`` is an array of the op: on a CuPy array the whole batch is one block, since
    the GPU runs each pass over the whole batch at once and a cache trick for the CPU would only
    multiply its kernel launches. There is always at least one slice (``slice(0, 0)`` for an empty
    batch), so an op's code runs once even then.

    >>> batch_blocks(10, BLOCK_BYTES // 4)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    >>> batch_blocks(0, 100)
    [slice(0, 0, None)]
    """
    per_block = count if is_cupy_array(like) else max(1, BLOCK_BYTES // max(1, int(bytes_per_item)))
    if count <= per_block:
        return [slice(0, count)]
    return [slice(start, min(start + per_block, count)) for start in range(0, count, per_block)]


class Scratch:
    """Temporary arrays that every block of a :func:`batch_blocks` loop reuses (a speed trick).

    A NumPy array of a few MiB is made of fresh pages that the operating system zeroes and maps on
    first touch, a page fault every 4 KiB; and glibc hands memory freed above a moving threshold
    back to the system. Allocated anew in every block, an op's temporaries can then cost more than
    its arithmetic (in ``grid_sample``'s backward at N = 64, 100,000 page faults a call). A Scratch
    keeps one buffer per name, allocated on first use, and hands out views of it; the first block is
    the largest, so one buffer serves every block. Only values an op overwrites before reading may
    live here.

    >>> import numpy as np
    >>> scratch = Scratch(np)
    >>> a = scratch.empty("sums", (2, 3), np.float64)
    >>> b = scratch.empty("sums", (3,), np.float64)  # a smaller block: a view of the same buffer
    >>> np.shares_memory(a, b)
    True
    """

    def __init__(self, xp):
        self.xp = xp
        self.buffers = {}

    def empty(self, name: str, shape, dtype):
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``, a view of buffer ``name``."""
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != numpy.dtype(dtype):
            buffer = self.buffers[name] = self.xp.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


def take_rows(source, rows, out):
    """``out[i] = source[rows[i]]`` for every i: ``take(source, rows, axis=0)`` written into ``out``.

    NumPy's ``take`` copies through a temporary when given ``out`` in its default mode ("raise"),
    which would defeat a reused ``out`` (see :class:`Scratch`); ``mode="clip"`` writes in place and
    is the same for valid ``rows``. CuPy's ``take`` has no mode and writes in place.
    """
    xp = array_module(source)
    if xp is numpy:
        return numpy.take(source, rows, axis=0, out=out, mode="clip")
    return xp.take(source, rows, axis=0, out=out)


def sparse_rows(data, indices, n_columns: int, per_row: int):
    """A sparse (n_rows, n_columns) matrix with exactly ``per_row`` stored entries in every row.

    Row ``r`` holds ``data[r, k]`` at column ``indices[r, k]`` for ``k < per_row``. ``data`` and
    ``indices`` are arrays of one module (numpy or cupy), shaped (n_rows, per_row) or flat
    (n_rows * per_row,); the columns of a row must be distinct. Returns a
    ``scipy.sparse.csr_matrix`` for numpy and a ``cupyx.scipy.sparse.csr_matrix`` for cupy, so
    ``matrix @ dense`` and ``matrix.T @ dense`` run the same on both.

    In CSR form this is simply ``data`` and ``indices`` laid end to end, with row ``r`` starting at
    entry ``r * per_row`` (the index pointer ``0, per_row, 2 * per_row, ...``). Every entry is kept as
    given, zeros included: a stored 0 times NaN or infinity is NaN in a product, exactly as in the
    dense sum ``sum_k data[r, k] * dense[indices[r, k]]`` that the matrix stands for. Products
    accumulate in the dtype of ``data`` (give ``dense`` the same dtype).

    >>> import numpy as np
    >>> m = sparse_rows(np.array([[1.0, 2.0], [0.5, 0.5]]), np.array([[0, 2], [1, 2]]), 3, 2)
    >>> m.toarray()
    array([[1. , 0. , 2. ],
           [0. , 0.5, 0.5]])
    >>> m @ np.array([1.0, 10.0, 100.0])
    array([201.,  55.])
    """
    xp = array_module(data, indices)
    data = data.reshape(-1)
    indices = indices.reshape(-1)
    if data.shape != indices.shape:
        raise ValueError(f"sparse_rows: data and indices must have the same number of entries, got {data.shape[0]} and {indices.shape[0]}")
    if per_row < 1 or data.shape[0] % per_row:
        raise ValueError(f"sparse_rows: per_row must be >= 1 and divide the {data.shape[0]} entries, got per_row={per_row}")
    indptr = xp.arange(0, data.shape[0] + 1, per_row, dtype=numpy.int64)  # where each row starts
    return sparse_csr(data, indices, indptr, n_columns)


def sparse_csr(data, indices, indptr, n_columns: int):
    """A sparse (len(indptr) - 1, n_columns) matrix from its compressed-row (CSR) arrays.

    Row ``r`` holds ``data[indptr[r]:indptr[r + 1]]`` at the columns
    ``indices[indptr[r]:indptr[r + 1]]``: rows may have different numbers of entries (an empty row is
    a row of zeros). ``data``, ``indices`` and ``indptr`` are 1-D arrays of one module (numpy or
    cupy). Returns a ``scipy.sparse.csr_matrix`` for numpy and a ``cupyx.scipy.sparse.csr_matrix``
    for cupy. Every entry is kept as given, zeros included, and products accumulate in the dtype of
    ``data``, as for :func:`sparse_rows`.

    A column may repeat within a row. scipy's products then add the repeated entries one by one, in
    the order stored; cupyx first merges them into one entry (``sum_duplicates``), which changes
    only the rounding, except where a stored 0 shares its column with a nonzero entry: ``0 * inf``
    is NaN, ``(0 + w) * inf`` is not. Keep such zeros in a matrix of their own.

    >>> import numpy as np
    >>> m = sparse_csr(np.array([1.0, 2.0, 0.5]), np.array([0, 2, 0]), np.array([0, 2, 2, 3]), 3)
    >>> m.toarray()
    array([[1. , 0. , 2. ],
           [0. , 0. , 0. ],
           [0.5, 0. , 0. ]])
    """
    xp = array_module(data, indices, indptr)
    n_rows = indptr.shape[0] - 1
    if data.ndim != 1 or data.shape != indices.shape or n_rows < 0:
        raise ValueError(f"sparse_csr: data and indices must be 1-D of one length and indptr non-empty, got shapes {data.shape}, {indices.shape} and {indptr.shape}")
    # 32-bit indices where everything fits (scipy would otherwise scan the indices to decide, and
    # cupyx only takes 32-bit ones)
    small = max(n_rows, n_columns, data.shape[0]) <= numpy.iinfo(numpy.int32).max
    if xp is numpy:
        import scipy.sparse as sparse
    else:
        if not small:
            raise ValueError(f"sparse_csr: cupyx sparse matrices take 32-bit indices; {n_rows} x {n_columns} with {data.shape[0]} entries is too large")
        import cupyx.scipy.sparse as sparse
    index_dtype = numpy.int32 if small else numpy.int64
    return sparse.csr_matrix((data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype, copy=False)),
                             shape=(n_rows, n_columns))
