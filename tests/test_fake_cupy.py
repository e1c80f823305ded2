"""The CuPy stand-in (tests/fake_cupy): refuses what CuPy refuses, allows what CuPy allows.

Each refusal is CuPy's (its source is cited in fake_cupy/_core.py): if the stand-in let one through,
the numpy/cupy parity tests would pass in CI and fail on the first GPU.
"""

import operator
import pathlib
import sys
import types
import warnings

import fake_cupy as cp
import numpy
import pytest
from fake_cupy.cupyx.scipy import sparse

import poolref
from poolref._backend import array_module

IMPLICIT = "Implicit conversion to a NumPy array is not allowed"
UNSUPPORTED = "Unsupported type <class 'numpy.ndarray'>"


def device(values):
    return cp.asarray(numpy.asarray(values, dtype=float))


# ---------------------------------------------------------------------------------------------------
# What CuPy refuses
# ---------------------------------------------------------------------------------------------------
def test_a_device_array_is_not_a_numpy_array():
    x = device([1.0, 2.0])
    assert not isinstance(x, numpy.ndarray)
    assert type(x).__module__ != "numpy"


@pytest.mark.parametrize("convert", [
    numpy.asarray, numpy.array, numpy.ascontiguousarray, lambda x: numpy.float32(x[0]),
    lambda x: numpy.testing.assert_array_equal(x, x), lambda x: numpy.testing.assert_allclose(x, x),
])
def test_implicit_conversion_to_numpy_raises_as_in_cupy(convert):
    with pytest.raises(TypeError, match=IMPLICIT):
        convert(device([1.0, 2.0]))


@pytest.mark.parametrize("mix", [
    lambda x, h: x + h, lambda x, h: h + x, lambda x, h: x - h, lambda x, h: x * h, lambda x, h: h / x,
    lambda x, h: x @ h, lambda x, h: h @ x, lambda x, h: x ** h, lambda x, h: operator.iadd(x, h),
    lambda x, h: x + h[0:1].reshape(()),  # a 0-d host array is refused too
    lambda x, h: x == h, lambda x, h: x < h,
    lambda x, h: numpy.add(x, h), lambda x, h: numpy.maximum(h, x), lambda x, h: cp.add(x, h),
    lambda x, h: cp.where(x > 0, h, x), lambda x, h: numpy.where(x > 0, h, x), lambda x, h: cp.concatenate([x, h]),
    lambda x, h: cp.copyto(x, h), lambda x, h: cp.may_share_memory(x, h), lambda x, h: cp.einsum("i,i->", x, h),
    lambda x, h: x.dot(h), lambda x, h: cp.ascontiguousarray(h), lambda x, h: cp.matmul(x, h),
])
def test_mixing_a_device_array_with_a_host_array_raises_as_in_cupy(mix):
    with pytest.raises(TypeError):
        mix(device([1.0, 2.0]), numpy.array([3.0, 4.0]))


def test_the_error_of_a_mix_is_cupys():
    with pytest.raises(TypeError, match=UNSUPPORTED):
        device([1.0]) + numpy.ones(1)
    with pytest.raises(TypeError, match=UNSUPPORTED):
        numpy.ones(1) * device([1.0])


@pytest.mark.parametrize("assign", [
    lambda x: x.__setitem__(slice(0, 2), numpy.array([5.0, 6.0])),
    lambda x: x.__setitem__(0, [5.0]),
    lambda x: x.__setitem__(Ellipsis, numpy.ones(3)),
    lambda x: x.fill(numpy.ones(3)),
    lambda x: cp.full(3, numpy.ones(3)),
])
def test_a_basic_selection_takes_only_a_scalar_from_the_host(assign):
    # CuPy fills a basic selection from a host value with ndarray.fill, which takes a scalar only
    with pytest.raises(ValueError, match="non-scalar"):
        assign(device([1.0, 2.0, 3.0]))


def test_device_arrays_are_no_python_index():
    # cupy.ndarray has no __index__: range(), list indexing and slicing by a 0-d array fail
    n = cp.asarray(numpy.array(3))
    with pytest.raises(TypeError):
        operator.index(n)
    with pytest.raises(TypeError):
        range(n)


def test_only_cupys_names_keywords_and_methods_exist():
    x = device([1.0, -2.0, 3.0])
    for missing in ("errstate", "seterr", "add_newdoc"):
        assert not hasattr(cp, missing)
    for attribute in ("ctypes", "itemset", "resize", "__array_interface__", "tostring"):
        assert not hasattr(x, attribute)
    with pytest.raises(TypeError, match="where"):
        cp.add(x, 1, where=x > 0)  # cupy ufuncs take out, dtype and casting only
    with pytest.raises(TypeError, match="where"):
        numpy.add(x, 1.0, where=x > 0)  # dispatched to the same ufunc
    with pytest.raises(TypeError):
        cp.clip(x, min=0)  # numpy 2's min=/max= are not cupy's a_min/a_max
    with pytest.raises(TypeError, match="where"):
        x.sum(where=x > 0)
    with pytest.raises(TypeError, match="initial"):
        x.max(initial=0)
    with pytest.raises(TypeError, match="mode"):
        cp.take(x, [0], mode="clip")
    with pytest.raises(TypeError, match="like"):
        cp.zeros(3, like=x)


def test_ufunc_at_takes_cupys_dtypes_and_arguments():
    x = cp.zeros(3, dtype=numpy.float16)
    cp.add.at(x, cp.asarray([0, 0, 2]), 1.0)  # float16 is among add.at's dtypes
    assert x.tolist() == [2.0, 0.0, 1.0]
    with pytest.raises(TypeError, match="maximum.at only supports"):
        cp.maximum.at(x, cp.asarray([0]), 1.0)  # but not maximum.at's
    with pytest.raises(TypeError, match="subtract.at only supports"):
        cp.subtract.at(cp.zeros(3), cp.asarray([0]), 1.0)
    with pytest.raises(NotImplementedError):
        cp.multiply.at(cp.zeros(3), cp.asarray([0]), 1.0)
    with pytest.raises(NotImplementedError):
        cp.maximum.reduce(cp.zeros(3))
    # numpy.add.at on a device array is dispatched to cupy.add.at, but an index that is a list or a
    # tuple is not an array: CuPy's __array_ufunc__ declines it and NumPy raises
    y = cp.zeros(3)
    numpy.add.at(y, cp.asarray([1, 1]), 2.0)
    assert y.tolist() == [0.0, 4.0, 0.0]
    with pytest.raises(TypeError):
        numpy.add.at(y, [1, 1], 2.0)


def test_ufunc_at_rounds_the_values_to_the_arrays_dtype_first():
    # cupy.add.at casts the values to a's dtype before adding: 1 + (2**-11 + 2**-12) rounds the value
    # to float16 first (2**-11 + 2**-12 is exact in float16), then the sum to 1 + 2**-10
    x = cp.ones(1, dtype=numpy.float16)
    cp.add.at(x, cp.asarray([0]), numpy.float32(2.0**-11 + 2.0**-12))
    assert x.item() == 1 + 2.0**-10


def test_an_element_written_twice_keeps_its_first_value():
    # CuPy leaves it undefined; NumPy keeps the last; the stand-in keeps the first, so that code
    # relying on NumPy's order fails here instead of passing by luck
    x = cp.zeros(3)
    x[cp.asarray([0, 0, 2])] = device([1.0, 2.0, 3.0])
    assert x.tolist() == [1.0, 0.0, 3.0]
    y = cp.zeros((2, 2))
    y[[1, 1], [0, 0]] = numpy.array([4.0, 5.0])  # host values through an integer index: copied over
    assert y.tolist() == [[0.0, 0.0], [4.0, 0.0]]


def test_sparse_matrices_take_device_arrays_only():
    with pytest.raises(ValueError, match="1-D"):
        sparse.csr_matrix((numpy.ones(2), numpy.array([0, 1]), numpy.array([0, 1, 2])), shape=(2, 2))
    m = sparse.csr_matrix((device([1.0, 2.0]), cp.asarray([0, 1]), cp.asarray([0, 1, 2])), shape=(2, 2))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        m @ numpy.ones(2)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        m.T @ numpy.ones((2, 1))
    with pytest.raises(TypeError, match=IMPLICIT):
        numpy.asarray(m)


def test_a_sparse_product_first_merges_repeated_columns_as_cupyx_does():
    # row 0 reads column 1 twice, once with weight 0: cupyx merges the two reads into (0 + 2) * inf
    # = inf before the product, where SciPy's 0 * inf + 2 * inf is NaN (poolref keeps weight-0
    # reads apart for this reason)
    data, indices, indptr = device([0.0, 2.0, 1.0]), cp.asarray([1, 1, 0]), cp.asarray([0, 2, 3])
    m = sparse.csr_matrix((data, indices, indptr), shape=(2, 2))
    product = m @ device([[1.0], [numpy.inf]])
    assert product.get().tolist() == [[numpy.inf], [1.0]]
    assert m.nnz == 2 and m.indices.tolist() == [1, 0]  # merged in place, as cuSPARSE needs
    assert data.tolist() == [0.0, 2.0, 1.0]  # the caller's arrays are left alone
    import scipy.sparse

    host = scipy.sparse.csr_matrix((numpy.array([0.0, 2.0, 1.0]), numpy.array([1, 1, 0]), numpy.array([0, 2, 3])), shape=(2, 2))
    assert numpy.isnan(host @ numpy.array([[1.0], [numpy.inf]]))[0, 0]


# ---------------------------------------------------------------------------------------------------
# What CuPy allows
# ---------------------------------------------------------------------------------------------------
def test_scalars_mix_freely_and_promote_as_in_numpy_2():
    x = cp.asarray(numpy.array([1.0, 2.0], dtype=numpy.float32))
    assert (x * 2.0).dtype == numpy.float32  # a Python scalar is weak (NEP 50)
    assert (x * numpy.float64(2.0)).dtype == numpy.float64  # a NumPy scalar is not
    assert (numpy.float32(3.0) - x).tolist() == [2.0, 1.0]
    assert (x < numpy.array(1.5)).tolist() == [True, False]  # a comparison takes a 0-d host array


def test_single_values_and_explicit_copies_come_back_to_the_host():
    x = device([[1.0, 2.0], [3.0, 4.0]])
    assert float(x[1, 0]) == 3.0 and int(x.sum()) == 10 and bool(x[0, 0] < 2) and x[0, 1].item() == 2.0
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    host = x.get()
    assert isinstance(host, numpy.ndarray) and host.tolist() == x.tolist()
    host[0, 0] = 9.0
    assert x[0, 0].item() == 1.0  # a copy
    assert cp.asnumpy(x).tolist() == x.tolist()


def test_reductions_and_element_reads_are_0d_device_arrays():
    x = device([[1.0, 2.0], [3.0, 4.0]])
    for value in (x.sum(), x.max(), numpy.sum(x), x[0, 1], cp.isfinite(x).all()):
        assert isinstance(value, cp.ndarray) and value.shape == ()


def test_views_share_memory_as_in_cupy():
    x = cp.zeros((3, 4))
    x[1:, ::2][0, 1] = 5.0  # a slice of a slice, then an element: all views
    x.reshape(-1)[0] = 1.0
    x.T[3, 2] = 7.0
    element = x[2, 1]
    element[...] = 8.0  # an element read is a 0-d view
    assert x.get().tolist() == [[1, 0, 0, 0], [0, 0, 5, 0], [0, 8, 0, 7]]
    assert cp.may_share_memory(x, x[1:])


def test_host_index_arrays_and_host_data_are_copied_over():
    x = device([10.0, 20.0, 30.0])
    assert x[numpy.array([2, 0])].tolist() == [30.0, 10.0]
    assert cp.take(x, numpy.array([1]), axis=0).tolist() == [20.0]
    host = numpy.array([1.0, 2.0])
    y = cp.asarray(host)
    host[0] = 5.0
    assert y.tolist() == [1.0, 2.0]  # asarray of host data copies it to the device
    assert cp.asarray(y) is y and cp.ascontiguousarray(y) is y  # a device array is returned as it is


def test_numpy_functions_dispatch_to_cupys_on_device_arrays():
    x = device([1.0, -numpy.inf, 3.0])
    assert isinstance(numpy.where(numpy.isfinite(x), x, 0.0), cp.ndarray)
    assert isinstance(numpy.concatenate([x, x]), cp.ndarray)
    assert numpy.moveaxis(x.reshape(1, 3), 0, 1).shape == (3, 1)


def test_no_floating_point_warnings_as_on_a_gpu():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert numpy.isnan((cp.zeros(2) / 0.0).get()).all()
        cp.log(device([-1.0]))


def test_array_module_finds_the_stand_in_only_once_installed(monkeypatch):
    x = device([1.0])
    assert array_module(x) is numpy  # not installed: a foreign object, as any unknown array
    cp.install(monkeypatch)
    assert array_module(x) is cp and array_module(poolref.Tensor(x)) is cp
    assert sys.modules["cupy"] is cp and sys.modules["cupyx.scipy.sparse"] is sparse
    with pytest.raises(TypeError, match="mix numpy and cupy"):
        array_module(x, numpy.ones(1))


def test_poolref_never_imports_the_stand_in():
    root = pathlib.Path(poolref.__file__).parent
    assert not [p for p in root.rglob("*.py") if "fake_cupy" in p.read_text()]


# ---------------------------------------------------------------------------------------------------
# RawModule: the kernel emulator of tests/kernels, given the device arrays' memory
# ---------------------------------------------------------------------------------------------------
class _Emulator(types.ModuleType):
    """A stand-in for tests/kernels/emulator.py: its interface, with one kernel ``twice``."""

    def __init__(self):
        super().__init__("kernels.emulator")
        self.launches = []

        class EmulatedModule:
            def __init__(module, code, options):
                module.code, module.options = code, options

            def get_function(module, name):
                def kernel(grid, block, args):
                    self.launches.append((name, grid, block, args))
                    x, y, n = args
                    y[:int(n)] = 2 * x[:int(n)]
                return kernel

        self.EmulatedModule = EmulatedModule


def test_raw_module_runs_its_kernels_on_the_device_arrays_memory(monkeypatch):
    emulator = _Emulator()
    monkeypatch.setitem(sys.modules, "kernels.emulator", emulator)
    module = cp.RawModule(code="extern \"C\" __global__ void twice(...) {}", options=("--std=c++14",))
    twice = module.get_function("twice")
    x, y = device([1.0, 2.0, 3.0]), cp.zeros(3)
    twice((1,), (32,), (x, y, numpy.int32(3)))
    assert y.tolist() == [2.0, 4.0, 6.0]  # the kernel wrote into the device array
    name, grid, block, args = emulator.launches[0]
    assert (name, grid, block) == ("twice", (1,), (32,)) and isinstance(args[0], numpy.ndarray)
    with pytest.raises(TypeError, match=UNSUPPORTED):
        twice((1,), (32,), (numpy.ones(3), y, numpy.int32(3)))  # CuPy launches take no host arrays
    with pytest.raises(TypeError, match="tuple"):
        twice((1,), (32,), [x, y, numpy.int32(3)])
