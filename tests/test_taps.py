"""The one table of taps along one axis (poolref/_taps.py): transpose, origins, resample, signed zeros."""

import numpy
from hypothesis import given
from hypothesis import strategies as st

from poolref._geometry import adaptive_taps, axis_windows
from poolref._sampling_weights import tf_area, torch_antialias, torch_linear
from poolref._taps import Taps, resample


def signed(a):
    """Values with the sign of each zero visible: -0.0 as the string '-0'."""
    return [("-0" if v == 0 and numpy.signbit(v) else "nan" if numpy.isnan(v) else float(v)) for v in numpy.ravel(a)]


def mixed_zeros(rng, shape):
    """+0.0, -0.0, +-1, NaN and +-inf, so that sums cancel to zeros of either sign and non-finite values occur."""
    values = numpy.array([0.0, -0.0, -0.0, 1.0, -1.0, numpy.nan, numpy.inf, -numpy.inf])
    return values[rng.choice(len(values), size=shape, p=[0.25, 0.25, 0.2, 0.1, 0.1, 0.04, 0.03, 0.03])]


def sum_by_loop(x, table: Taps):
    """y[o] = sum of w * x[i] over the read taps of row o, starting from the first (``+ 0.0`` when from_zero)."""
    out = []
    with numpy.errstate(invalid="ignore"):
        for o in range(table.out_length):
            total = None
            for i, w, r in zip(table.index[o], table.weights()[o], table.reads()[o]):
                if r:
                    term = x[i] if table.weight is None else w * x[i]
                    total = term if total is None else total + term
            total = -0.0 if total is None else total
            out.append(total + 0.0 if table.from_zero else total)
    return numpy.array(out)


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_resample_sums_exactly_the_read_taps_signed_zeros_included(L, O, seed):
    # the bins (growing and shrinking, equal bins side by side too), their transpose, and weighted
    # tables with unread taps, against a loop over each row's read taps
    rng = numpy.random.default_rng(seed)
    x = mixed_zeros(rng, (L,))
    for table in (adaptive_taps(L, O), adaptive_taps(L, O).transpose(), torch_antialias(L, O, False),
                  torch_linear(L, O, False), tf_area(L, O)):
        source = x if table.length == L else mixed_zeros(rng, (table.length,))
        got = resample(source[None, :], table, 1)[0]
        assert signed(got) == signed(sum_by_loop(source, table))
        # along a leading axis too (the taps are then gathered, and filled, a whole row at a time)
        down_the_columns = resample(numpy.stack([source, source[::-1]], axis=1), table, 0)
        assert signed(down_the_columns[:, 0]) == signed(sum_by_loop(source, table))
        assert signed(down_the_columns[:, 1]) == signed(sum_by_loop(source[::-1], table))


def test_resample_unread_taps_add_nothing_not_even_a_positive_zero():
    # An unread tap used to add +0.0, which turns a sum of -0.0 into +0.0: PyTorch's antialiased
    # resize reads a window of the row's own length and returns -0.0 there (upsampling [-0, -0] to 3
    # gave [-0.0, +0.0, -0.0] where PyTorch gives [-0.0, -0.0, -0.0])
    x = numpy.array([[-0.0, 5.0]])
    table = Taps(2, numpy.array([[0, 1]]), numpy.array([[1.0, 0.0]]), numpy.array([[True, False]]))
    assert signed(resample(x, table, 1)) == ["-0"]
    bins = Taps(2, numpy.array([[0, 0], [0, 1]]), None, numpy.array([[True, False], [True, True]]))
    assert signed(resample(numpy.array([[-0.0, -0.0]]), bins, 1)) == ["-0", "-0"]
    assert signed(resample(numpy.array([[-0.0, -0.0]]), torch_antialias(2, 3, False), 1)) == ["-0", "-0", "-0"]


def test_a_table_that_sums_from_zero_never_gives_negative_zero_and_changes_nothing_else():
    rng = numpy.random.default_rng(3)
    x = mixed_zeros(rng, (4, 9))
    table = adaptive_taps(9, 4)
    assert table.from_zero
    plain = resample(x, Taps(9, table.index, None, table.read), 1)
    zeroed = resample(x, table, 1)
    numpy.testing.assert_array_equal(zeroed, plain)  # the same values (NaN where NaN)
    assert not numpy.signbit(zeroed[zeroed == 0]).any() and numpy.signbit(plain[plain == 0]).any()


def test_a_transpose_sums_from_zero_like_a_scatter_add_into_zeros():
    # every framework's backward adds each output's gradient into a zeroed input gradient
    for table in (adaptive_taps(5, 3), torch_linear(3, 5, False), Taps.one_each(3, [0, 0, 2])):
        assert table.transpose().from_zero
    assert signed(resample(numpy.array([[-0.0, -0.0, -0.0]]), Taps.one_each(3, [0, 0, 2]).transpose(), 1)) == [0.0, 0.0, 0.0]


@given(st.integers(1, 15), st.integers(1, 15))
def test_a_transpose_is_the_matrix_transpose_with_or_without_weights(L, O):
    for table in (adaptive_taps(L, O), torch_antialias(L, O, False)):
        back = table.transpose()
        numpy.testing.assert_array_equal(back.matrix(), table.matrix().T)
        assert back.reads().sum() == table.reads().sum() and (back.weight is None) == (table.weight is None)


@given(st.integers(1, 9), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(-2, 3), st.integers(-2, 3))
def test_window_tables_are_evenly_spaced_from_their_origins(L, k, s, d, low, high):
    # padding and crops (JAX's negative pads) included: origins() is where tap 0 sits, in padding or not
    axis = axis_windows(L, k, s, (low, high), d, False)
    if axis.out_length < 1:
        return
    table = axis.tap_table()
    read = table.reads()
    assert (read == axis.inside()).all() and table.index.min() >= 0 and table.index.max() < L
    assert (table.index[read] == axis.taps()[read]).all()
    sees = read.any(axis=1)  # a window wholly in padding names no tap
    assert (table.origins()[sees] == axis.starts()[sees]).all()
