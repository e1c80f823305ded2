"""Window geometry: output sizes, padding forms, ceil-mode rule, divisors, adaptive bins."""

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import torch_or_skip
from poolref._geometry import (
    adaptive_bins,
    adaptive_taps,
    axis_windows,
    pool_geometry,
    resolve_padding,
    unpool_output_shape,
)


def test_ceil_mode_drops_a_window_that_would_start_in_the_end_padding():
    # L=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but window 3 starts at 3*2-1 = 5 >= L: dropped
    assert axis_windows(5, 2, 2, (1, 1), 1, True).out_length == 3
    assert axis_windows(5, 2, 2, (1, 1), 1, False).out_length == 3
    assert axis_windows(5, 2, 2, (0, 0), 1, True).out_length == 3  # overhang window kept


def test_divisor_counts_padding_but_not_overhang():
    axis = axis_windows(5, 2, 2, (0, 0), 1, True)
    assert axis.counted_taps(True).tolist() == [2, 2, 1]
    assert axis.end_overhang == 1
    axis = axis_windows(4, 3, 2, (1, 1), 1, False)  # windows [-1, 0, 1] and [1, 2, 3]
    assert axis.counted_taps(True).tolist() == [3, 3] and axis.counted_taps(False).tolist() == [2, 3]


@given(
    L=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 3),
    mode=st.sampled_from(["same", "same_upper", "same_lower"]),
)
def test_same_padding_gives_ceil_of_length_over_stride(L, k, s, d, mode):
    ((begin, end),) = resolve_padding(mode, (L,), (k,), (s,), (d,), "t")
    assert abs(begin - end) <= 1 and (end >= begin if mode != "same_lower" else begin >= end)
    assert axis_windows(L, k, s, (begin, end), d, False).out_length == -(-L // s)


@given(L=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       p=st.integers(0, 2), ceil=st.booleans())
def test_output_size_matches_torch(L, k, s, d, p, ceil):
    torch = torch_or_skip()
    x = torch.zeros(1, 1, L)
    try:
        want = torch.nn.functional.max_pool1d(x, k, s, p, d, ceil, return_indices=True)[0].shape[-1]
    except RuntimeError:
        want = None
    try:
        got = pool_geometry((L,), k, s, p, d, ceil, "torch", "t").out_shape[0]
    except ValueError:
        got = None
    if want is not None and got is None:
        # the only case poolref refuses and PyTorch accepts: a dilated window that sees no input
        # (PyTorch then returns -inf with an out-of-range index)
        assert torch.isinf(torch.nn.functional.max_pool1d(x, k, s, p, d, ceil)).any()
    else:
        assert got == want


def test_padding_forms():
    assert resolve_padding(1, (4, 4), (3, 3), (1, 1), (1, 1), "t") == ((1, 1), (1, 1))
    assert resolve_padding((0, 1), (4, 4), (3, 3), (1, 1), (1, 1), "t") == ((0, 0), (1, 1))
    assert resolve_padding("valid", (4,), (3,), (1,), (1,), "t") == ((0, 0),)
    with pytest.raises(TypeError, match=r"padding=\(1, 2, 3\)"):
        resolve_padding((1, 2, 3), (4, 4), (3, 3), (1, 1), (1, 1), "t")


def test_tensorflow_convention_refuses_what_tensorflow_lacks():
    with pytest.raises(ValueError, match="ceil_mode"):
        pool_geometry((5,), 2, 2, 0, 1, True, "tensorflow", "t")
    with pytest.raises(ValueError, match="same_lower"):
        pool_geometry((5,), 2, 2, "same_lower", 1, False, "tensorflow", "t")


def test_onnx_allows_padding_over_half_the_kernel_when_every_window_sees_input():
    geometry = pool_geometry((5,), 3, 1, ((2, 0),), 1, False, "onnx", "t")
    assert geometry.out_shape == (5,)
    with pytest.raises(ValueError, match="half of kernel_size"):
        pool_geometry((5,), 3, 1, ((2, 0),), 1, False, "torch", "t")


@given(L=st.integers(1, 30), O=st.integers(1, 30))
def test_adaptive_bins_cover_the_axis_in_order(L, O):
    starts, ends = adaptive_bins(L, O)
    assert starts[0] == 0 and ends[-1] == L
    assert numpy.all(ends > starts) and numpy.all(numpy.diff(starts) >= 0) and numpy.all(starts[1:] <= ends[:-1])
    table = adaptive_taps(L, O)
    assert table.reads().sum(axis=1).tolist() == (ends - starts).tolist()
    assert table.index.max() < L and table.weight is None
    # evenly spaced from each bin's start: the running max's index arithmetic
    assert table.origins().tolist() == starts.tolist()
    read = table.reads()
    assert (table.index[read] == (table.origins()[:, None] + numpy.arange(table.taps_per_output))[read]).all()


def test_unpool_output_size_rules():
    assert unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), None, "t") == (4, 4)
    assert unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1, 5, 5), "t") == (5, 5)
    with pytest.raises(ValueError, match=r"output_size=\(6, 6\)"):
        unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), (6, 6), "t")


# ---------------------------------------------------------------------------------------------------
# convention="jax": lax.reduce_window's geometry
# ---------------------------------------------------------------------------------------------------
@given(L=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 7), d=st.integers(1, 3),
       mode=st.sampled_from(["same", "same_lower"]))
def test_jax_same_padding_is_padtype_to_pads_over_the_dilated_window(L, k, s, d, mode):
    lax = pytest.importorskip("jax.lax")
    want = lax.padtype_to_pads((L,), (d * (k - 1) + 1,), (s,), mode.upper())  # strides > window included
    axis = pool_geometry((L,), k, s, mode, d, False, "jax", "t").axes[0]
    assert [tuple(p) for p in want] == [(axis.pad_begin, axis.pad_end)]


@given(L=st.integers(1, 8), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 3),
       low=st.integers(-10, 8), high=st.integers(-10, 8))
def test_jax_output_length_is_reduce_windows(L, k, s, d, low, high):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    # eval_shape runs JAX's shape rule without compiling anything (no XLA crash on odd cases)
    shape = jax.eval_shape(
        lambda t: jax.lax.reduce_window(t, 0.0, jax.lax.add, (k,), (s,), ((low, high),), window_dilation=(d,)),
        jax.ShapeDtypeStruct((L,), jnp.float32),
    ).shape
    assert pool_geometry((L,), k, s, ((low, high),), d, False, "jax", "t").out_shape == shape


def test_jax_allows_negative_pads_windows_in_padding_and_empty_outputs():
    geometry = pool_geometry((5,), 2, 2, ((3, -1),), 1, False, "jax", "t")
    assert geometry.axes[0].taps().tolist() == [[-3, -2], [-1, 0], [1, 2]]
    assert geometry.sees_input().tolist() == [False, True, True]
    assert geometry.crops and geometry.padded_shape == (7,)
    # the buffer holds positions -3 .. 3: input cells 0..3 sit at buffer cells 3..6; cell 4 is cut
    assert geometry.interior() == ((slice(0, 4),), (slice(3, 7),))
    assert pool_geometry((5,), 1, 1, ((-6, 3),), 1, False, "jax", "t").axes[0].interior() == (slice(0, 0), slice(0, 0))
    assert pool_geometry((5, 5), (6, 1), 1, 0, 1, False, "jax", "t").out_shape == (0, 5)
    for convention in ("torch", "onnx", "tensorflow"):  # only jax crops or pools nothing but padding
        with pytest.raises(ValueError, match="non-negative"):
            pool_geometry((5,), 2, 2, ((3, -1),), 1, False, convention, "t")
        with pytest.raises(ValueError):
            pool_geometry((5,), 2, 2, ((3, 0),), 1, False, convention, "t")


def test_jax_convention_has_no_ceil_mode():
    with pytest.raises(ValueError, match="convention='jax' has no ceil mode"):
        pool_geometry((5,), 2, 2, 0, 1, True, "jax", "t")


def test_jax_divisors_count_the_whole_window_or_the_input_cells():
    geometry = pool_geometry((3,), 2, 2, ((3, 2),), 1, False, "jax", "t")  # windows (-3,-2) (-1,0) (1,2) (3,4)
    assert geometry.divisor(count_padding=True).tolist() == [2, 2, 2, 2]  # reduce_window(x) / prod(k)
    assert geometry.divisor(count_padding=False).tolist() == [0, 1, 2, 0]  # / reduce_window(ones)


@given(L=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 5), d=st.integers(1, 3),
       low=st.integers(-3, 6), high=st.integers(-3, 6))
def test_cells_read_and_sees_input_follow_the_taps(L, k, s, d, low, high):
    axis = pool_geometry((L,), k, s, ((low, high),), d, False, "jax", "t").axes[0]
    taps = axis.taps()
    read = {int(t) for t in taps.ravel() if 0 <= t < L}
    assert axis.cells_read().tolist() == [j in read for j in range(L)]
    assert axis.sees_input().tolist() == [any(0 <= t < L for t in row) for row in taps]
    # every tap lies in the buffer, and the buffer's input cells are the input's
    source, target = axis.interior()
    assert taps.size == 0 or (taps.min() >= -low and taps.max() < -low + axis.buffer_length)
    assert source.stop - source.start == target.stop - target.start
    assert all(0 <= j - target.start + source.start < L for j in range(target.start, target.stop))


@given(L=st.integers(1, 30), O=st.integers(1, 30))
def test_transposed_adaptive_table_lists_the_bins_of_each_cell(L, O):
    table = adaptive_taps(L, O)
    back = table.transpose()
    starts, ends = adaptive_bins(L, O)
    for j in range(L):
        bins = [o for o in range(O) if starts[o] <= j < ends[o]]
        assert back.index[j][back.reads()[j]].tolist() == bins
