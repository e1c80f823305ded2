"""Module and Parameter: the attribute walk, train/eval, zero_grad, state dicts, printing."""

import numpy
import pytest

from poolref.autograd import Tensor
from poolref.nn import Conv2d, Linear, MaxPool2d, Module, Parameter, ReLU, Sequential


class Block(Module):
    def __init__(self):
        super().__init__()
        self.scale = Parameter(numpy.ones(3))
        self.inner = Linear(3, 2, rng=0)
        self.heads = [Linear(2, 1, rng=1), ReLU(), Linear(2, 1, rng=2)]
        self.not_a_parameter = Tensor(numpy.zeros(3), requires_grad=True)
        self.offsets = (Parameter(numpy.zeros(1)), 5, Parameter(numpy.zeros(2)))

    def forward(self, x):
        h = self.inner(x * self.scale)
        return self.heads[0](h) + self.heads[2](h) + self.offsets[0] + self.offsets[2].sum()


def test_parameter_copies_its_data_and_requires_float():
    data = numpy.array([1.0, 2.0])
    p = Parameter(data)
    p.data[0] = 5.0
    assert data[0] == 1.0 and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter(")
    with pytest.raises(TypeError, match="dtype int64"):
        Parameter(numpy.array([1, 2]))


def test_parameters_are_found_recursively_in_attribute_order():
    model = Block()
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "scale", "offsets.0", "offsets.2",  # own parameters first, as PyTorch
        "inner.weight", "inner.bias",
        "heads.0.weight", "heads.0.bias",
        "heads.2.weight", "heads.2.bias",
    ]
    assert model.parameters()[3] is model.inner.weight
    assert all(isinstance(p, Parameter) for p in model.parameters())  # the plain Tensor is not one


def test_shared_parameters_are_listed_once():
    layer = Linear(2, 2, rng=0)
    model = Sequential(layer, ReLU(), layer)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_call_runs_forward_and_gradients_reach_every_parameter():
    model = Block()
    model(numpy.ones((4, 3))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_and_eval_set_the_flag_on_every_module():
    model = Sequential(Conv2d(1, 2, 3, rng=0), Sequential(ReLU(), MaxPool2d(2)))
    assert model.eval() is model
    assert [m.training for m in model.modules()] == [False] * 5
    model.train()
    assert all(m.training for m in model.modules())


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        Module()(1)


def test_state_dict_round_trip_and_errors():
    a, b = Sequential(Linear(3, 2, rng=0)), Sequential(Linear(3, 2, rng=1))
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias"]
    state["0.weight"][0, 0] = 42.0  # a copy: the model is not changed
    assert a[0].weight.data[0, 0] != 42.0
    b.load_state_dict(a.state_dict())
    numpy.testing.assert_array_equal(b[0].weight.data, a[0].weight.data)
    assert b[0].weight.dtype == numpy.float32
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\]"):
        b.load_state_dict({"0.weight": numpy.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"0.weight has shape \(2, 3\), got an array of shape \(3, 2\)"):
        b.load_state_dict({"0.weight": numpy.zeros((3, 2)), "0.bias": numpy.zeros(2)})


def test_repr_shows_the_tree():
    text = repr(Sequential(Conv2d(1, 2, 3, stride=2, rng=0), ReLU()))
    assert text.splitlines()[0] == "Sequential("
    assert "(0): Conv2d(1, 2, kernel_size=(3, 3), stride=2" in text and "(1): ReLU()" in text


def test_sequential_refuses_non_modules():
    with pytest.raises(TypeError, match="item 1 of type function"):
        Sequential(ReLU(), lambda x: x)
