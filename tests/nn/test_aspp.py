"""nn.ASPP (DeepLab v3's atrous spatial pyramid pooling) against the same module written in PyTorch as
torchvision defines it (torchvision itself does not load here), with copied weights: outputs, the
gradient of x and of every parameter, and the running estimates, in evaluation and in training; and a
float64 gradient check of the whole module."""

import numpy
import pytest

from poolref.autograd import Tensor, adjoint_test, gradcheck
from poolref.nn import ASPP
from poolref.testing import assert_matches


def torch_aspp(in_channels, atrous_rates, out_channels):
    """torchvision.models.segmentation.deeplabv3.ASPP, line for line (torchvision 0.2x)."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class ASPPConv(nn.Sequential):
        def __init__(self, in_channels, out_channels, dilation):
            super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU())

    class ASPPPooling(nn.Sequential):
        def __init__(self, in_channels, out_channels):
            super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU())

        def forward(self, x):
            size = x.shape[-2:]
            for mod in self:
                x = mod(x)
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    class TorchASPP(nn.Module):
        def __init__(self, in_channels, atrous_rates, out_channels=256):
            super().__init__()
            modules = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                                     nn.ReLU())]
            for rate in tuple(atrous_rates):
                modules.append(ASPPConv(in_channels, out_channels, rate))
            modules.append(ASPPPooling(in_channels, out_channels))
            self.convs = nn.ModuleList(modules)
            self.project = nn.Sequential(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
                                         nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(0.5))

        def forward(self, x):
            return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))

    return TorchASPP(in_channels, atrous_rates, out_channels)


def batch_norms(model):
    """poolref's BatchNorm2d layers by torchvision's dotted name (their running estimates are not
    parameters)."""
    from poolref.nn import BatchNorm2d

    found = {}

    def walk(module, prefix):
        for name, child in module.named_children():
            if isinstance(child, BatchNorm2d):
                found[prefix + name] = child
            walk(child, f"{prefix}{name}.")

    walk(model, "")
    return found


def paired_models(rates=(1, 2, 3), c_in=3, c_out=4, dtype=numpy.float64, seed=0):
    """A poolref ASPP and torchvision's, the latter's weights (and BatchNorm affine parameters and
    running estimates, made non-trivial) copied into the former by name."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    theirs = torch_aspp(c_in, rates, c_out).to(getattr(torch, numpy.dtype(dtype).name))
    rng = numpy.random.default_rng(seed)
    with torch.no_grad():
        for name, buffer in theirs.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.from_numpy(rng.normal(0, 0.3, buffer.shape)))
            elif name.endswith("running_var"):
                buffer.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, buffer.shape)))
        for name, parameter in theirs.named_parameters():
            if ".1." in name or name.startswith("project.1") or "convs.4.2" in name:  # BatchNorm gamma, beta
                parameter.copy_(torch.from_numpy(rng.normal(1.0 if name.endswith("weight") else 0.0, 0.3, parameter.shape)))
    ours = ASPP(c_in, c_out, rates, rng=seed, dtype=dtype)
    state = {name: p.detach().numpy() for name, p in theirs.named_parameters()}
    ours.load_state_dict(state)
    buffers = dict(theirs.named_buffers())
    for name, layer in batch_norms(ours).items():
        layer.running_mean[...] = buffers[name + ".running_mean"].numpy()
        layer.running_var[...] = buffers[name + ".running_var"].numpy()
    return ours, theirs


def test_parameter_names_and_shapes_are_torchvisions():
    ours, theirs = paired_models()
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert sorted(batch_norms(ours)) == sorted(n[:-len(".running_mean")] for n, _ in theirs.named_buffers()
                                               if n.endswith("running_mean"))


def _compare(ours, theirs, x, *, rtol, atol):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    g = numpy.random.default_rng(5).standard_normal(ty.shape).astype(x.dtype)
    ty.backward(torch.from_numpy(g))
    px = Tensor(x, requires_grad=True)
    py = ours(px)
    py.backward(g)
    assert_matches(py.data, ty.detach().numpy(), rtol=rtol, atol=atol)
    assert_matches(px.grad, tx.grad.numpy(), rtol=rtol, atol=atol)
    for (name, p), (their_name, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == their_name
        numpy.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    buffers = dict(theirs.named_buffers())
    for name, layer in batch_norms(ours).items():
        numpy.testing.assert_allclose(layer.running_mean, buffers[name + ".running_mean"].numpy(), rtol=rtol, atol=atol)
        numpy.testing.assert_allclose(layer.running_var, buffers[name + ".running_var"].numpy(), rtol=rtol, atol=atol)
        assert layer.num_batches_tracked == int(buffers[name + ".num_batches_tracked"])


@pytest.mark.parametrize("dtype, rtol, atol", [(numpy.float64, 1e-10, 1e-12), (numpy.float32, 2e-4, 2e-5)])
def test_evaluation_matches_torchvisions_aspp(dtype, rtol, atol):
    ours, theirs = paired_models(dtype=dtype)
    ours.eval(), theirs.eval()
    x = numpy.random.default_rng(1).standard_normal((2, 3, 7, 9)).astype(dtype)
    _compare(ours, theirs, x, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype, rtol, atol", [(numpy.float64, 1e-9, 1e-11), (numpy.float32, 5e-4, 5e-5)])
def test_training_without_dropout_matches_torchvisions_aspp_and_its_running_estimates(dtype, rtol, atol):
    ours, theirs = paired_models(rates=(2, 5), dtype=dtype)
    ours.project[3].p = theirs.project[3].p = 0.0  # dropout's masks are each library's own draws
    ours.train(), theirs.train()
    for step in range(2):  # two steps: the running estimates move twice
        x = numpy.random.default_rng(10 + step).standard_normal((3, 3, 6, 5)).astype(dtype)
        _compare(ours, theirs, x, rtol=rtol, atol=atol)
        for p in ours.parameters():
            p.grad = None
        theirs.zero_grad()


def test_training_with_dropout_keeps_or_zeroes_torchs_undropped_output():
    # with dropout on, each output is the undropped output times 0 or 2 (p = 0.5)
    ours, _ = paired_models()
    x = numpy.random.default_rng(2).standard_normal((2, 3, 5, 5))
    ours.train()
    y = ours(x).data
    ours.project[3].p = 0.0
    undropped = ours(x).data
    kept = y != 0
    assert 0 < kept.mean() < 1
    numpy.testing.assert_allclose(y[kept], 2 * undropped[kept], rtol=1e-12)


def parameter_slots(model):
    """(module, attribute name) of every Parameter, in named_parameters' order."""
    from poolref.nn import Parameter

    slots = {}
    for module in model.modules():
        for name, value in vars(module).items():
            if isinstance(value, Parameter):
                slots[id(value)] = (module, name)
    return [slots[id(p)] for p in model.parameters()]


def functional_call(model, x, weights):
    """The model's forward with its parameters replaced by ``weights`` (the Tensors gradcheck makes),
    so that the tape differentiates with respect to them; the parameters are put back after."""
    slots = parameter_slots(model)
    originals = [getattr(module, name) for module, name in slots]
    for (module, name), weight in zip(slots, weights):
        setattr(module, name, weight)
    try:
        return model(x)
    finally:
        for (module, name), value in zip(slots, originals):
            setattr(module, name, value)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_aspp_gradcheck_float64(mode):
    # x and every parameter at once: the tape chains conv2d, batch_norm, relu, adaptive_avg_pool2d,
    # interpolate, concat and the projection (dropout off)
    model = ASPP(2, 2, rates=(1, 2), dropout=0.0, rng=3, dtype=numpy.float64)
    model.train(mode == "train")
    rng = numpy.random.default_rng(4)
    for layer in batch_norms(model).values():  # gamma, beta and running estimates away from 1, 0
        layer.weight.data = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.bias.data = rng.normal(0, 0.5, layer.bias.shape)
        layer.running_mean[...] = rng.normal(0, 0.3, layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    x = rng.standard_normal((2, 2, 4, 5))

    def run(x, *weights):
        return functional_call(model, x, weights)

    primals = (x,) + tuple(p.data.copy() for p in model.parameters())
    assert gradcheck(run, *primals, rtol=1e-6)
    assert adjoint_test(run, *primals)


def test_training_needs_two_images_like_torch():
    model = ASPP(2, 2, rates=(1,), rng=0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(numpy.zeros((1, 2, 4, 4), numpy.float32))
    assert model.eval()(numpy.zeros((1, 2, 4, 4), numpy.float32)).shape == (1, 2, 4, 4)


@pytest.mark.parametrize("rates", [6, (0, 2), (1.5,), (True,), "6"])
def test_bad_rates_are_refused(rates):
    with pytest.raises(ValueError, match="rates"):
        ASPP(2, 2, rates)
