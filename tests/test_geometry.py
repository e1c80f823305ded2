"""Window geometry: output sizes, padding forms, ceil-mode rule, divisors, adaptive bins."""

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import torch_or_skip
from poolref._geometry import (
    adaptive_bins,
    adaptive_tap_table,
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
    table = adaptive_tap_table(L, O)
    assert table.inside.sum(axis=1).tolist() == (ends - starts).tolist()
    assert table.positions.max() < L


def test_unpool_output_size_rules():
    assert unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), None, "t") == (4, 4)
    assert unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1, 5, 5), "t") == (5, 5)
    with pytest.raises(ValueError, match=r"output_size=\(6, 6\)"):
        unpool_output_shape((2, 2), (2, 2), (2, 2), ((0, 0), (0, 0)), (6, 6), "t")
