"""poolref/_checks.py: what the ops accept as input and how they refuse the rest."""

import re

import numpy
import pytest

import poolref
from poolref._checks import MAX_ELEMENTS, as_array, check_element_count, check_flag, random_generator


# --------------------------------------------------------------------------------------------------
# Arrays from the ecosystem
# --------------------------------------------------------------------------------------------------
def test_a_cpu_torch_tensor_is_accepted_without_a_copy():
    # "TypeError: Cannot interpret 'torch.float32' as a data type": torch tensors have a shape and a
    # dtype attribute, which made them pass for numpy arrays
    torch = pytest.importorskip("torch")
    t = torch.rand(1, 2, 4, 4)
    array = as_array(t)
    assert isinstance(array, numpy.ndarray) and numpy.shares_memory(array, t.numpy())  # DLPack: zero-copy
    y = poolref.max_pool2d(t, 2)
    assert isinstance(y, numpy.ndarray)
    numpy.testing.assert_array_equal(y, torch.nn.functional.max_pool2d(t, 2).numpy())


def test_a_jax_array_is_accepted():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.arange(16.0).reshape(1, 1, 4, 4)
    numpy.testing.assert_array_equal(poolref.avg_pool2d(x, 2), [[[[2.5, 4.5], [10.5, 12.5]]]])


def test_an_object_with_only_array_interface_is_accepted():
    class Wrapped:
        def __array__(self, dtype=None, copy=None):
            return numpy.ones((1, 2, 2))

    assert poolref.max_pool1d(Wrapped(), 2).tolist() == [[[1.0], [1.0]]]


@pytest.mark.parametrize("value, words", [
    (None, "got x=None"),  # was "got x with shape ()"
    ([[1.0, 2.0], [3.0]], "got x of type list that numpy cannot convert"),  # was numpy's own ValueError
    (object(), "got x of type object (not numeric)"),
    ("abc", "got x='abc'"),
    ({"a": 1}, "got x={'a': 1}"),
])
def test_none_ragged_lists_and_objects_get_a_type_error_naming_the_argument(value, words):
    with pytest.raises(TypeError, match=r"max_pool2d: x must be an array .*" + re.escape(words)):
        poolref.max_pool2d(value, 2)


def test_a_torch_tensor_that_requires_grad_is_refused_with_torchs_advice():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="x of type Tensor that numpy cannot convert .*detach"):
        poolref.max_pool2d(torch.rand(1, 2, 4, 4, requires_grad=True), 2)


def test_numpy_and_poolref_arrays_pass_through_untouched():
    x = numpy.ones((1, 2, 3))
    assert as_array(x) is x
    t = poolref.Tensor(x)
    assert as_array(t) is t


# --------------------------------------------------------------------------------------------------
# Flags, sizes, generators
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [True, False, numpy.bool_(True)])
def test_check_flag_takes_bools(value):
    assert check_flag(value, "ceil_mode", "op") is bool(value)


@pytest.mark.parametrize("value", [0, 1, "no", None, 1.0])
def test_check_flag_refuses_anything_else(value):
    with pytest.raises(TypeError, match=f"op: ceil_mode must be a bool, got ceil_mode={value!r}"):
        check_flag(value, "ceil_mode", "op")


def test_check_element_count_names_the_argument_and_the_count():
    check_element_count(MAX_ELEMENTS, "size", 3, "op")  # at the limit: allowed
    with pytest.raises(ValueError, match=r"op: size=\(1, 2\) asks for 2147483649 elements in the output"):
        check_element_count(MAX_ELEMENTS + 1, "size", (1, 2), "op")
    with pytest.raises(ValueError, match=r"asks for 1e\+300 elements"):
        check_element_count(10**300, "size", 0, "op")


def test_random_generator_takes_generators_seeds_and_none():
    g = numpy.random.default_rng(0)
    assert random_generator(g, "op") is g
    assert random_generator(3, "op").random() == numpy.random.default_rng(3).random()
    assert isinstance(random_generator(None, "op"), numpy.random.Generator)
    with pytest.raises(ValueError, match="rng=-1"):
        random_generator(-1, "op")
    with pytest.raises(TypeError, match="rng=True"):
        random_generator(True, "op")


def test_check_flag_with_none_ok_passes_none_and_still_refuses_ints():
    assert check_flag(None, "antialias", "op", none_ok=True) is None
    assert check_flag(numpy.bool_(False), "antialias", "op", none_ok=True) is False
    with pytest.raises(TypeError, match=r"op: antialias must be a bool or None, got antialias=0$"):
        check_flag(0, "antialias", "op", none_ok=True)


def test_check_element_count_refuses_an_overflowed_count_and_prints_huge_ones():
    # a count computed from an overflowing box is NaN or inf: "NaN > limit" is False, and it passed
    for count in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"asks for {count} elements"):
            check_element_count(count, "boxes", 0, "op")
    with pytest.raises(ValueError, match=r"asks for about 10\^400 elements"):  # too large for a float
        check_element_count(10**400, "scale_factor", 1e300, "op")
