"""Choose the array module, numpy or cupy, from the arrays an op is given.

This is the only module that knows cupy exists. Every op asks ``array_module(x)`` for its ``xp`` and
then writes plain array code against it, so the same lines run on the CPU and on the GPU.
``import poolref`` never imports cupy: we only look at ``sys.modules``, so cupy is consulted only
when the caller has already imported it (and can therefore hold cupy arrays).

Sparse matrices are the one thing the two modules spell differently (``scipy.sparse`` and
``cupyx.scipy.sparse``), so :func:`sparse_rows` and :func:`sparse_csr` build them here for both.
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy

__all__ = ["array_module", "is_cupy_array", "sparse_csr", "sparse_rows", "to_numpy"]


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
