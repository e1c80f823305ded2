"""Tape: recording, printing, tape.gradient, nesting."""

import numpy as np
import pytest

import poolref
from poolref._backend import array_module, to_numpy
from poolref.autograd import Function, Tape, Tensor, apply


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
        "# %k names the k-th tensor to appear: an input, or the output of the line that assigns it",
        "x = input  -> (2, 3) float64",  # every tensor the tape did not compute is introduced
        "%0 = input  -> (3, 1) float64",
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


# ---------------------------------------------------------------------------------------------------
# Host and device: every gradient lives where its tensor lives (the `cupy` fixture is real CuPy on a
# GPU, else the CuPy stand-in of tests/fake_cupy, which refuses host/device mixes as CuPy does)
# ---------------------------------------------------------------------------------------------------
def _scale_forward(x, alpha):
    # shaped like dynopool2d: x on the device, alpha (2,) possibly on the host; y lives with x, size
    # with alpha
    return (x * float(alpha[0]), alpha * 2.0), (x, alpha)


def _scale_backward(saved, grad_y, grad_size):
    # y = alpha_0 x, size = 2 alpha: dy/dx = alpha_0, dy/dalpha_0 = x, dsize/dalpha = 2
    x, alpha = saved
    grad_alpha_0 = float((grad_y * x).sum())  # one number read back from x's device
    grad_alpha = array_module(alpha).asarray([grad_alpha_0, 0.0]) + 2.0 * grad_size  # where alpha lives
    return grad_y * float(alpha[0]), grad_alpha


SCALE_AND_SIZE = Function("scale_and_size", _scale_forward, _scale_backward)


def _host_and_device(cupy):
    x = Tensor(cupy.asarray(np.arange(6.0).reshape(2, 3)), requires_grad=True)
    alpha = Tensor(np.array([1.5, 2.0]), requires_grad=True)
    return x, alpha


def test_a_host_input_of_a_device_op_gets_a_host_gradient_on_the_tape(cupy):
    # the tape converted every input's gradient with the array module of the outputs' gradients:
    # a host alpha got a device gradient (and real CuPy refuses the implicit conversion)
    x, alpha = _host_and_device(cupy)
    with Tape() as tape:
        y, _ = apply(SCALE_AND_SIZE, x, alpha)
        loss = y.sum()
    grad_x, grad_alpha = tape.gradient(loss, [x, alpha])
    assert array_module(grad_x) is cupy and isinstance(grad_alpha, np.ndarray)
    assert to_numpy(grad_x).tolist() == [[1.5] * 3] * 2 and grad_alpha.tolist() == [15.0, 0.0]


def test_an_output_no_gradient_reached_gets_zeros_where_it_lives(cupy):
    # only y is used: the zeros standing for size's gradient must be on the host, where size is
    # (they were made with the module of y's gradient, the device's)
    x, alpha = _host_and_device(cupy)
    with Tape() as tape:
        y, size = apply(SCALE_AND_SIZE, x, alpha)
        loss = y.sum()
    assert isinstance(size.data, np.ndarray)
    assert tape.gradient(loss, alpha).tolist() == [15.0, 0.0]


def test_an_op_with_outputs_on_host_and_device_takes_the_gradients_of_both(cupy):
    # both outputs reached: their gradients live on two devices, which array_module refused as a mix
    x, alpha = _host_and_device(cupy)
    with Tape() as tape:
        y, size = apply(SCALE_AND_SIZE, x, alpha)
    grad_x, grad_alpha = tape.gradient([y, size], [x, alpha], [cupy.ones((2, 3)), np.array([1.0, 10.0])])
    assert array_module(grad_x) is cupy and grad_alpha.tolist() == [15.0 + 2.0, 20.0]


def test_tape_gradient_of_host_and_device_sources_compares_memory_on_one_device_only(cupy):
    # tape.gradient copies a gradient that shares memory with another returned one; it asked
    # cupy.may_share_memory about a host gradient too, which CuPy refuses
    x, alpha = _host_and_device(cupy)
    with Tape() as tape:
        y, _ = apply(SCALE_AND_SIZE, x, alpha)
        z = (y + y).sum()  # y + y hands one gradient array to both operands
    grad_alpha, grad_x = tape.gradient(z, [alpha, x])
    assert grad_alpha.tolist() == [30.0, 0.0] and to_numpy(grad_x).tolist() == [[3.0] * 3] * 2


def test_backward_fills_each_leafs_grad_where_the_leaf_lives(cupy):
    x, alpha = _host_and_device(cupy)
    y, _ = apply(SCALE_AND_SIZE, x, alpha)
    y.sum().backward()
    assert array_module(x.grad) is cupy and isinstance(alpha.grad, np.ndarray)
    assert alpha.grad.tolist() == [15.0, 0.0]


def test_a_backward_returning_a_gradient_on_the_wrong_device_is_refused(cupy):
    # a gradient is never moved between devices behind the op's back: it is a bug in the op
    def wrong_backward(saved, grad_y, grad_size):
        x, alpha = saved
        return grad_y * float(alpha[0]), cupy.zeros(2)  # alpha is on the host

    wrong = Function("scale_and_size_wrong", _scale_forward, wrong_backward)
    x, alpha = _host_and_device(cupy)
    with Tape() as tape:
        y, _ = apply(wrong, x, alpha)
        loss = y.sum()
    with pytest.raises(RuntimeError, match=r"scale_and_size_wrong: backward returned a \w+ gradient for input 1"):
        tape.gradient(loss, alpha)


def test_a_seed_gradient_on_another_device_is_refused(cupy):
    on_device = Tensor(cupy.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="move grad to the tensor's device"):
        (on_device * 2.0).backward(np.ones(2))
    on_host = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="move grad to the tensor's device"):
        (on_host * 2.0).backward(cupy.ones(2))
    (on_device * 2.0).backward(cupy.ones(2))  # where the tensor is: fine
    assert to_numpy(on_device.grad).tolist() == [2.0, 2.0]


def test_gradients_through_a_sum_are_ordinary_writable_arrays():
    # sum's backward broadcasts g to the input's shape: Tape.gradient and vjp returned that read-only,
    # stride-0 view, which a caller could not write into (or could, on CuPy, into every element at once)
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with Tape() as tape:
        y = x.sum()
    grad = tape.gradient(y, x)
    assert grad.flags.writeable and 0 not in grad.strides
    grad[0, 0] = 5.0
    assert grad.tolist() == [[5.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    _, pullback = poolref.vjp(lambda t: t.mean(), np.ones((2, 3)))
    (via_vjp,) = pullback(np.array(1.0))
    assert via_vjp.flags.writeable and 0 not in via_vjp.strides


def test_the_printed_tape_shows_every_part_of_a_windows_geometry():
    # ceil_mode, dilation and the convention were missing: two different calls printed the same line
    x = Tensor(np.ones((1, 1, 5, 5)), requires_grad=True)
    lines = []
    for kwargs in (dict(ceil_mode=False), dict(ceil_mode=True), dict(dilation=2), dict(convention="onnx")):
        with Tape() as tape:
            poolref.max_pool2d(x, 2, **kwargs)
        lines.append(str(tape).splitlines()[-1])
    assert len(set(lines)) == 4
    assert "ceil_mode=True" in lines[1] and "dilation=(2, 2)" in lines[2] and "convention='onnx'" in lines[3]
    assert "kernel_size=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1), ceil_mode=False" in lines[0]
