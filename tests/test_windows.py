"""poolref._windows: the per-plane gather and scatter, held against plain loops (the padding helpers
of the same module are tested in test_padding_modes.py)."""

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolref._windows import gather_from_planes, scatter_to_planes


def loop_gather(source, indices, n, fill=0):
    """y[lead, o] = source[lead, indices[lead', o]] (lead' the index's own leading position, 0 along
    a dim of 1), fill where the index is -1; one element at a time."""
    lead = source.shape[: source.ndim - n]
    planes = source.reshape(lead + (-1,))
    flat_indices = indices.reshape(indices.shape[: len(lead)] + (-1,))
    out = numpy.empty(lead + (flat_indices.shape[-1],), dtype=source.dtype)
    for position in numpy.ndindex(*lead):
        own = tuple(p if size > 1 else 0 for p, size in zip(position, flat_indices.shape[:-1]))
        for o, i in enumerate(flat_indices[own]):
            out[position + (o,)] = fill if i < 0 else planes[position + (i,)]
    return out.reshape(lead + indices.shape[len(lead):])


def loop_scatter(values, indices, in_shape, n):
    """grad[lead, indices[lead', o]] += values[lead, o], in the order of o, in float32 for float16."""
    lead = tuple(in_shape[: len(in_shape) - n])
    accumulate = numpy.float32 if values.dtype == numpy.float16 else values.dtype
    total = numpy.zeros(lead + (int(numpy.prod(in_shape[len(lead):], dtype=int)),), dtype=accumulate)
    flat_indices = indices.reshape(indices.shape[: len(lead)] + (-1,))
    flat_values = values.reshape(lead + (-1,))
    with numpy.errstate(invalid="ignore", over="ignore"):
        for position in numpy.ndindex(*lead):
            own = tuple(p if size > 1 else 0 for p, size in zip(position, flat_indices.shape[:-1]))
            for o, i in enumerate(flat_indices[own]):
                if i >= 0:
                    total[position + (i,)] += flat_values[position + (o,)]
    return total.astype(values.dtype).reshape(in_shape)


@st.composite
def plane_cases(draw):
    """source (B, C, H, W) with NaN, infinities and signed zeros; indices (B or 1, C or 1, O) into
    its planes, some -1 unless ``complete``; values (B, C, O) for the scatter."""
    B, C, H, W, O = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                     draw(st.integers(1, 4)), draw(st.integers(1, 12)))
    dtype = draw(st.sampled_from([numpy.float64, numpy.float32, numpy.float16]))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special = numpy.array([numpy.nan, numpy.inf, -numpy.inf, -0.0, 0.0])
    def with_specials(shape):
        a = rng.standard_normal(shape)
        hit = rng.random(shape) < 0.2
        a[hit] = rng.choice(special, size=int(hit.sum()))
        return a.astype(dtype)
    source = with_specials((B, C, H, W))
    shared = (draw(st.sampled_from([B, 1])), draw(st.sampled_from([C, 1])))
    low = 0 if draw(st.booleans()) else -1
    indices = rng.integers(low, H * W, shared + (O,))  # repeats: several entries share a pixel
    values = with_specials((B, C, O))
    return source, indices, values


@given(plane_cases())
def test_gather_from_planes_matches_a_loop(case):
    source, indices, _ = case
    got = gather_from_planes(source, indices, 2, fill=0)
    numpy.testing.assert_array_equal(got, loop_gather(source, indices, 2))
    assert got.dtype == source.dtype
    # signed zeros are read, never computed: the sign survives
    numpy.testing.assert_array_equal(numpy.signbit(got), numpy.signbit(loop_gather(source, indices, 2)))


@given(plane_cases())
def test_scatter_to_planes_matches_a_loop_in_the_order_of_the_entries(case):
    source, indices, values = case
    expected = loop_scatter(values, indices, source.shape, 2)
    got = scatter_to_planes(values, indices, source.shape, 2)
    numpy.testing.assert_array_equal(got, expected)
    assert got.dtype == values.dtype
    # into a given accumulation buffer of zeros: the same sums
    accumulate = numpy.float32 if values.dtype == numpy.float16 else values.dtype
    out = numpy.zeros(source.shape, dtype=accumulate)
    assert scatter_to_planes(values, indices, source.shape, 2, out=out) is out
    numpy.testing.assert_array_equal(out.astype(values.dtype), expected)


def test_scatter_is_the_adjoint_of_gather_with_shared_indices():
    # <gather(x), g> = <x, scatter(g)> for indices shared by the channels of each sample, -1 included
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    indices = rng.integers(-1, 20, (2, 1, 7))
    indices[0, 0, 2] = indices[1, 0, 5] = -1  # two points read nothing
    g = rng.standard_normal((2, 3, 7))
    left = numpy.sum(gather_from_planes(x, indices, 2) * g)
    right = numpy.sum(x * scatter_to_planes(g, indices, x.shape, 2))
    assert left == pytest.approx(right, rel=1e-12)


def test_shared_indices_broadcast_over_the_planes_they_leave_out():
    x = numpy.arange(2 * 3 * 4, dtype=numpy.float64).reshape(2, 3, 4)  # (B, C, L), one spatial dim
    indices = numpy.array([[[3, -1, 0]], [[1, 1, 2]]])  # (B, 1, O): each sample's channels share
    y = gather_from_planes(x, indices, 1, fill=-7.0)
    assert y.shape == (2, 3, 3)
    assert y[0].tolist() == [[3, -7, 0], [7, -7, 4], [11, -7, 8]]
    assert y[1].tolist() == [[13, 13, 14], [17, 17, 18], [21, 21, 22]]
    grad = scatter_to_planes(numpy.ones((2, 3, 3)), indices, x.shape, 1)
    assert grad[0].tolist() == [[1, 0, 0, 1]] * 3
    assert grad[1].tolist() == [[0, 2, 1, 0]] * 3


def test_inputs_are_not_modified():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((2, 2, 3, 3))
    indices = rng.integers(-1, 9, (2, 1, 5))
    g = rng.standard_normal((2, 2, 5))
    copies = [a.copy() for a in (x, indices, g)]
    gather_from_planes(x, indices, 2)
    scatter_to_planes(g, indices, x.shape, 2)
    for a, b in zip((x, indices, g), copies):
        numpy.testing.assert_array_equal(a, b)


def test_empty_planes_and_indices():
    assert gather_from_planes(numpy.zeros((0, 2, 3)), numpy.zeros((0, 1, 4), dtype=numpy.intp), 1).shape == (0, 2, 4)
    assert gather_from_planes(numpy.ones((2, 2, 3)), numpy.zeros((2, 1, 0), dtype=numpy.intp), 1).shape == (2, 2, 0)
    numpy.testing.assert_array_equal(scatter_to_planes(numpy.ones((2, 2, 0)), numpy.zeros((2, 1, 0), dtype=numpy.intp), (2, 2, 3), 1),
                                     numpy.zeros((2, 2, 3)))
