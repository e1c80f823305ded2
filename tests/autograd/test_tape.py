"""Tape: recording, printing, tape.gradient, nesting."""

import numpy as np
import pytest

from poolref.autograd import Tape, Tensor


def _loss(x, w):
    return ((x @ w) * 2.0).sum()


def test_entries_are_recorded_in_order():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 1)), requires_grad=True)
    with Tape() as tape:
        _loss(x, w)
    assert [node.function.name for node in tape.entries] == ["matmul", "mul", "sum"]
    seqs = [node.seq for node in tape.entries]
    assert seqs == sorted(seqs) and len(tape) == 3


def test_printing_shows_the_computation():
    x = Tensor(np.ones((2, 3)), requires_grad=True, name="x")
    w = Tensor(np.ones((3, 1)), requires_grad=True)
    with Tape() as tape:
        y = (x @ w)[:, 0].mean(axis=0)
    assert str(tape).splitlines() == [
        "%1 = matmul(x, %0)  -> (2, 1) float64",
        "%2 = getitem(%1) index=(:, 0)  -> (2,) float64",
        "%3 = mean(%2) axis=0, keepdims=False  -> () float64",
    ]
    assert repr(tape) == "<Tape with 3 entries>"
    assert isinstance(y, Tensor)
    assert str(Tape()) == "(empty tape)"


def test_gradient_matches_backward_and_leaves_grad_alone():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    w = Tensor(np.arange(3.0).reshape(3, 1), requires_grad=True)
    with Tape() as tape:
        loss = _loss(x, w)
    grad_x, grad_w = tape.gradient(loss, [x, w])
    assert x.grad is None and w.grad is None
    loss.backward()
    np.testing.assert_array_equal(grad_x, x.grad)
    np.testing.assert_array_equal(grad_w, w.grad)
    # The tape can be differentiated again, with the same result.
    np.testing.assert_array_equal(tape.gradient(loss, x), grad_x)


def test_gradient_structure_follows_sources():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        y = (x * x).sum()
    assert isinstance(tape.gradient(y, x), np.ndarray)
    assert isinstance(tape.gradient(y, (x,)), list)


def test_unreached_source_gets_zeros_of_its_shape_and_dtype():
    x = Tensor([1.0, 2.0], requires_grad=True)
    unused = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    with Tape() as tape:
        y = (x * 2.0).sum()
    g = tape.gradient(y, unused)
    assert g.shape == (2, 2) and g.dtype == np.float32 and not g.any()


def test_gradient_with_respect_to_an_intermediate():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        h = x * 3.0
        y = (h * h).sum()
    np.testing.assert_array_equal(tape.gradient(y, h), 2 * h.data)


def test_output_gradient_and_its_checks():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        y = x * 3.0
    np.testing.assert_array_equal(tape.gradient(y, x, np.array([1.0, 10.0])), [3.0, 30.0])
    with pytest.raises(ValueError, match="single-element"):
        tape.gradient(y, x)
    with pytest.raises(ValueError, match="shape"):
        tape.gradient(y, x, np.ones(3))


def test_list_of_targets_adds_their_contributions():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        a = x * 2.0
        b = x * 5.0
    g = tape.gradient([a, b], x, [np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(g, [7.0, 7.0])


def test_nested_tapes_each_record_what_happened_inside_them():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as outer:
        h = x * 2.0
        with Tape() as inner:
            y = (h * h).sum()
    assert len(outer) == 3 and len(inner) == 2
    # The inner tape reaches h but not x: x * 2.0 happened outside it.
    np.testing.assert_array_equal(inner.gradient(y, h), 2 * h.data)
    np.testing.assert_array_equal(inner.gradient(y, x), [0.0, 0.0])
    np.testing.assert_array_equal(outer.gradient(y, x), 8 * x.data)


def test_nothing_is_recorded_outside_the_with_block_or_without_requires_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        Tensor([1.0]) * 2.0  # no tensor requires a gradient: nothing to record
    x * 2.0  # the tape is no longer active
    assert len(tape) == 0


def test_tape_cannot_be_entered_twice():
    tape = Tape()
    with tape:
        with pytest.raises(RuntimeError, match="already recording"):
            tape.__enter__()
