r"""A stand-in for ``cupyx.scipy.sparse``: CSR and CSC matrices of device arrays, backed by SciPy.

What cupyx does and SciPy does not, the stand-in does:

* the constructor takes device arrays only: ``csr_matrix((data, indices, indptr), shape=...)`` with
  host arrays raises ``ValueError`` (cupyx: "data, indices, and indptr should be 1-D");
* a product with a dense operand first brings the matrix to canonical form (``sum_duplicates``:
  each row's columns sorted, a repeated column merged into one entry), in place, as cuSPARSE needs;
  so ``matrix.indices`` may be reordered by a product, and ``0 * inf + w * inf`` becomes
  ``(0 + w) * inf``;
* a dense operand must be a device array of one or two axes (a host array raises ``TypeError``),
  and the product is a device array in the promoted dtype of the two.

A matrix keeps the ``data`` array it was built from (no copy, as in cupyx), and canonicalising
replaces the stored arrays rather than sorting them in place, so the caller's arrays and a
transpose sharing them are never changed (as in cupyx).

>>> import numpy, fake_cupy
>>> from fake_cupy.cupyx.scipy import sparse
>>> m = sparse.csr_matrix((fake_cupy.asarray([1.0, 2.0]), fake_cupy.asarray([1, 0]),
...                        fake_cupy.asarray([0, 2])), shape=(1, 2))
>>> m @ fake_cupy.asarray([10.0, 100.0])
array([120.])
>>> m.indices  # sorted by the product, as cuSPARSE needs
array([0, 1], dtype=int32)
>>> m @ numpy.ones(2)
Traceback (most recent call last):
...
TypeError: unsupported operand type(s) for @: 'csr_matrix' and 'numpy.ndarray'
"""

from __future__ import annotations

import numpy
import scipy.sparse

from ..._core import is_scalar, ndarray, wrap

__all__ = ["csr_matrix", "csc_matrix", "spmatrix", "issparse", "isspmatrix", "isspmatrix_csr", "isspmatrix_csc"]


class spmatrix:
    """What the CSR and CSC stand-ins share: a SciPy matrix of the same format behind device views."""

    __array_priority__ = 101  # above cupy.ndarray's 100: ``dense @ matrix`` comes here
    format = ""

    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        if isinstance(arg1, spmatrix):
            self._matrix = getattr(arg1._matrix, f"to{self.format}")(copy=True)
        elif isinstance(arg1, tuple) and len(arg1) == 3:
            data, indices, indptr = arg1
            if not all(isinstance(a, ndarray) and a.ndim == 1 for a in (data, indices, indptr)):
                raise ValueError("data, indices, and indptr should be 1-D")
            if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
                raise ValueError("indices and indptr should have integer dtypes")
            scipy_format = scipy.sparse.csr_matrix if self.format == "csr" else scipy.sparse.csc_matrix
            self._matrix = scipy_format((data._array, indices._array.astype(numpy.int32),
                                         indptr._array.astype(numpy.int32)), shape=shape, copy=False)
        else:
            raise ValueError(f"Unsupported initializer format for the CuPy stand-in: {type(arg1)}")
        if dtype is not None:
            self._matrix = self._matrix.astype(dtype)

    @classmethod
    def _of(cls, matrix):
        result = cls.__new__(cls)
        result._matrix = matrix
        return result

    # ----- attributes: device views of the stored arrays -----
    shape = property(lambda self: self._matrix.shape)
    dtype = property(lambda self: self._matrix.dtype)
    nnz = property(lambda self: self._matrix.nnz)
    ndim = property(lambda self: 2)
    data = property(lambda self: wrap(self._matrix.data))
    indices = property(lambda self: wrap(self._matrix.indices))
    indptr = property(lambda self: wrap(self._matrix.indptr))

    @property
    def has_canonical_format(self):
        return self._matrix.has_canonical_format

    def sum_duplicates(self):
        """Sort each row's (column's) indices and merge repeated ones: new arrays replace the stored ones
        (the arrays the matrix was built from, or shares with its transpose, are left as they are)."""
        if not self._matrix.has_canonical_format:
            canonical = self._matrix.copy()
            canonical.sum_duplicates()
            self._matrix = canonical

    def get(self, stream=None):
        """The SciPy matrix (a host copy)."""
        return self._matrix.copy()

    def toarray(self, order=None, out=None):
        return wrap(self._matrix.toarray(order=order))

    def copy(self):
        return self._of(self._matrix.copy())

    def astype(self, dtype):
        return self._of(self._matrix.astype(dtype))

    def tocsr(self, copy=False):
        return csr_matrix._of(self._matrix.tocsr(copy=copy))

    def tocsc(self, copy=False):
        return csc_matrix._of(self._matrix.tocsc(copy=copy))

    def transpose(self, axes=None, copy=False):
        flipped = self._matrix.transpose(copy=copy)
        return (csc_matrix if self.format == "csr" else csr_matrix)._of(flipped)

    T = property(lambda self: self.transpose())

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    # ----- products -----
    def _product(self, other, symbol):
        if is_scalar(other):
            return self._of(self._matrix * other)
        if isinstance(other, spmatrix):
            self.sum_duplicates()
            other.sum_duplicates()
            return csr_matrix._of((self._matrix @ other._matrix).tocsr())
        if isinstance(other, ndarray):
            if other.ndim not in (1, 2):
                raise ValueError("could not interpret dimensions")
            self.sum_duplicates()  # cuSPARSE takes the canonical form; cupyx makes it first, in place
            with numpy.errstate(all="ignore"):
                return wrap(numpy.asarray(self._matrix @ other._array))
        if isinstance(other, numpy.ndarray):
            raise TypeError(f"unsupported operand type(s) for {symbol}: '{type(self).__name__}' and 'numpy.ndarray'")
        return NotImplemented

    def __matmul__(self, other):
        if is_scalar(other):
            raise ValueError("Scalar operands are not allowed, use '*' instead")
        return self._product(other, "@")

    def __mul__(self, other):
        return self._product(other, "*")

    def dot(self, other):
        return self._product(other, "dot")

    def __rmatmul__(self, other):
        if isinstance(other, ndarray):
            return (self.T @ other.T).T
        if isinstance(other, numpy.ndarray):
            raise TypeError(f"unsupported operand type(s) for @: 'numpy.ndarray' and '{type(self).__name__}'")
        return NotImplemented

    def __rmul__(self, other):
        if is_scalar(other):
            return self._of(self._matrix * other)
        return NotImplemented

    def __repr__(self):
        return f"<{self.shape[0]}x{self.shape[1]} sparse matrix of type '{self.dtype.type}' with {self.nnz} stored " \
               f"elements in {'Compressed Sparse Row' if self.format == 'csr' else 'Compressed Sparse Column'} format " \
               f"(CuPy stand-in)>"


class csr_matrix(spmatrix):
    """``cupyx.scipy.sparse.csr_matrix((data, indices, indptr), shape=(M, N))`` of device arrays."""

    format = "csr"


class csc_matrix(spmatrix):
    """``cupyx.scipy.sparse.csc_matrix((data, indices, indptr), shape=(M, N))`` of device arrays."""

    format = "csc"


def issparse(x):
    return isinstance(x, spmatrix)


isspmatrix = issparse


def isspmatrix_csr(x):
    return isinstance(x, csr_matrix)


def isspmatrix_csc(x):
    return isinstance(x, csc_matrix)
