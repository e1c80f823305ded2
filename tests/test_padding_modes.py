"""The padding modes of poolref/_windows.py (pad_with_mode and its adjoint): the loop reference, NumPy's
and PyTorch's pad, the adjoint identity, non-finite values, the size rules, numpy/cupy."""

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import plant_nonfinite, to_torch, torch_or_skip
from poolref._windows import PADDING_MODES, check_padding_mode, check_pads_fit_mode, pad_with_mode, pad_with_mode_adjoint
from poolref.reference.padding import pad_adjoint_reference, pad_reference, source_position
from poolref.testing import assert_matches

NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def largest_pad(length, mode):
    """The largest pad ``mode`` takes on an axis of ``length`` (PyTorch's rule), capped at 4 for the zeros and replicate."""
    return {"reflect": length - 1, "circular": length}.get(mode, 4)


@st.composite
def padding_cases(draw, max_axes=3):
    """(x, pads, mode): x with 1 or 2 leading axes and 1 to ``max_axes`` padded axes, pads that fit the mode."""
    mode = draw(st.sampled_from(PADDING_MODES))
    n = draw(st.integers(1, max_axes))
    lead = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2))))
    lengths = tuple(draw(st.integers(1, 4)) for _ in range(n))
    pads = tuple((draw(st.integers(0, largest_pad(L, mode))), draw(st.integers(0, largest_pad(L, mode)))) for L in lengths)
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal(lead + lengths), pads, mode


# ---------------------------------------------------------------------------------------------------
# Worked examples and the rule per cell
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, want", [
    ("zeros", [0, 0, 1, 2, 3, 0, 0]),
    ("reflect", [3, 2, 1, 2, 3, 2, 1]),
    ("replicate", [1, 1, 1, 2, 3, 3, 3]),
    ("circular", [2, 3, 1, 2, 3, 1, 2]),
])
def test_each_mode_pads_a_row_as_torch_documents(mode, want):
    row = numpy.array([[1.0, 2.0, 3.0]])
    assert pad_with_mode(row, ((0, 0), (2, 2)), mode).tolist() == [want]
    assert pad_reference(row, ((0, 0), (2, 2)), mode).tolist() == [want]


def test_source_position_of_the_reference_agrees_with_the_vectorised_index_map():
    from poolref._windows import mode_source_positions

    for mode in PADDING_MODES:
        for length in range(1, 6):
            for begin in range(largest_pad(length, mode) + 1):
                for end in range(largest_pad(length, mode) + 1):
                    want = [source_position(p, length, mode) for p in range(-begin, length + end)]
                    want = [-1 if s is None else s for s in want]
                    assert mode_source_positions(length, begin, end, mode).tolist() == want, (mode, length, begin, end)


def test_a_corner_copies_the_copy_reflected_about_both_axes():
    x = numpy.arange(9.0).reshape(3, 3)
    padded = pad_with_mode(x, ((1, 1), (1, 1)), "reflect")
    assert padded[0, 0] == x[1, 1] and padded[0, -1] == x[1, 1] and padded[-1, 0] == x[1, 1]
    assert padded[0, 1:-1].tolist() == x[1].tolist()


def test_no_padding_returns_the_input_itself_and_the_gradient_itself():
    x = numpy.ones((2, 3))
    assert pad_with_mode(x, ((0, 0), (0, 0)), "reflect") is x
    assert pad_with_mode_adjoint(x, ((0, 0),), "circular") is x


# ---------------------------------------------------------------------------------------------------
# Against the loop reference, NumPy and PyTorch
# ---------------------------------------------------------------------------------------------------
@given(padding_cases())
def test_pad_matches_the_loop_reference_and_numpy_pad(case):
    x, pads, mode = case
    padded = pad_with_mode(x, pads, mode)
    assert_matches(padded, pad_reference(x, pads, mode), rtol=0)
    lead = ((0, 0),) * (x.ndim - len(pads))
    assert_matches(padded, numpy.pad(x, lead + pads, mode=NUMPY_MODES[mode]), rtol=0)


@given(padding_cases())
def test_adjoint_matches_the_loop_reference_and_is_the_transpose(case):
    x, pads, mode = case
    padded = pad_with_mode(x, pads, mode)
    g = numpy.random.default_rng(int(abs(x).sum() * 1000) % 2**32).standard_normal(padded.shape)
    grad = pad_with_mode_adjoint(g, pads, mode)
    assert_matches(grad, pad_adjoint_reference(g, pads, mode), rtol=1e-13, atol=1e-13)
    # <pad(x), g> = <x, pad^T(g)>: the dot-product test of the pair
    assert numpy.isclose(numpy.sum(padded * g), numpy.sum(x * grad), rtol=1e-12, atol=1e-12)
    assert grad.shape == x.shape and grad.flags.c_contiguous


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_nonfinite_values_are_copied_and_nonfinite_gradients_added_as_the_reference(mode, dtype):
    rng = numpy.random.default_rng(3)
    x = plant_nonfinite(rng.standard_normal((2, 3, 4, 5)), 4).astype(dtype)
    pads = ((3, 2), (4, 1)) if mode != "reflect" else ((3, 2), (3, 1))
    padded = pad_with_mode(x, pads, mode)
    assert padded.dtype == x.dtype
    assert_matches(padded, pad_reference(x, pads, mode), rtol=0)
    g = plant_nonfinite(rng.standard_normal(padded.shape), 5, fraction=0.3).astype(dtype)
    grad = pad_with_mode_adjoint(g, pads, mode)
    assert grad.dtype == x.dtype
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == "float16" else dict(rtol=1e-6, atol=1e-6)
    assert_matches(grad, pad_adjoint_reference(g.astype(numpy.float64), pads, mode), **tol)


def test_replicate_adjoint_of_float16_sums_in_float32():
    # the edge cell's own gradient 2048 and 64 copies' gradients of 1: float16 steps by 2 above 2048,
    # so a float16 running sum would stay at 2048; in float32 it is 2112, exact in float16
    g = numpy.array([[1.0] * 64 + [2048.0]], dtype=numpy.float16)
    grad = pad_with_mode_adjoint(g, ((0, 0), (64, 0)), "replicate")
    assert grad.dtype == numpy.float16 and grad.tolist() == [[2112.0]]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_and_its_gradient_match_torch_pad(mode):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(6)
    x = plant_nonfinite(rng.standard_normal((2, 3, 5, 4)), 7, fraction=0.1)
    pads = ((2, 4), (3, 1))
    tx = to_torch(x, True)
    ty = torch.nn.functional.pad(tx, (3, 1, 2, 4), mode=mode)  # torch: last axis first
    g = plant_nonfinite(rng.standard_normal(tuple(ty.shape)), 8, fraction=0.1)
    ty.backward(to_torch(g))
    assert_matches(pad_with_mode(x, pads, mode), ty.detach().numpy(), rtol=0)
    assert_matches(pad_with_mode_adjoint(g, pads, mode), tx.grad.numpy(), rtol=1e-14, atol=1e-14)


def test_inputs_are_not_modified():
    rng = numpy.random.default_rng(9)
    x = rng.standard_normal((2, 4, 4))
    g = rng.standard_normal((2, 7, 6))
    x_copy, g_copy = x.copy(), g.copy()
    for mode in PADDING_MODES:
        pad_with_mode(x, ((1, 2), (0, 2)), mode)
        pad_with_mode_adjoint(g, ((1, 2), (0, 2)), mode)
    numpy.testing.assert_array_equal(x, x_copy)
    numpy.testing.assert_array_equal(g, g_copy)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_numpy_and_cupy_agree(xp, mode):
    rng = numpy.random.default_rng(10)
    x, g = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 6, 7))
    pads = ((1, 2), (3, 0))
    for got, want in ((pad_with_mode(xp.asarray(x), pads, mode), pad_with_mode(x, pads, mode)),
                      (pad_with_mode_adjoint(xp.asarray(g), pads, mode), pad_with_mode_adjoint(g, pads, mode))):
        assert type(got) is type(xp.asarray(want))
        assert_matches(got.get() if hasattr(got, "get") else got, want, rtol=1e-15)


# ---------------------------------------------------------------------------------------------------
# What fits a mode: PyTorch's rules (checked with torch 2.13's F.pad)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, pad, fits", [
    ("reflect", 3, True), ("reflect", 4, False),  # reflect: below the length
    ("circular", 4, True), ("circular", 5, False),  # circular: at most the length
    ("replicate", 9, True), ("zeros", 9, True),
])
def test_pads_that_fit_each_mode_are_torch_s(mode, pad, fits):
    for pads in (((pad, 0),), ((0, pad),)):
        if fits:
            check_pads_fit_mode((4,), pads, mode, "op")
        else:
            with pytest.raises(ValueError, match=f"op: padding_mode='{mode}'.*{pads[0]}.*length 4"):
                check_pads_fit_mode((4,), pads, mode, "op")
    torch = pytest.importorskip("torch")
    try:
        torch.nn.functional.pad(torch.zeros(1, 1, 4), (pad, 0), mode="constant" if mode == "zeros" else mode)
        torch_fits = True
    except RuntimeError:
        torch_fits = False
    assert torch_fits == fits


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match=r"conv2d: padding_mode must be one of .*got padding_mode='mirror'"):
        check_padding_mode("mirror", "conv2d")
