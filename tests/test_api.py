"""The public names and signatures of API.md (sections Autograd, Windowed pooling, Adaptive and
global, Stochastic/fractional/learned, Region, Sampling and DynOPool) are a contract: the oracle,
the tests and users call exactly these."""

import inspect

import pytest

import poolref
import poolref.autograd

E = inspect.Parameter.empty
WINDOWED = {
    "max_pool{n}d": "x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, convention='torch'",
    "avg_pool{n}d": "x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention='torch'",
    "lp_pool{n}d": "x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention='torch'",
    "max_unpool{n}d": "x, indices, kernel_size, stride=None, padding=0, output_size=None",
    "adaptive_avg_pool{n}d": "x, output_size",
    "adaptive_max_pool{n}d": "x, output_size, return_indices=False",
}
CONTRACT = {name.format(n=n): sig for name, sig in WINDOWED.items() for n in (1, 2, 3)}
CONTRACT.update({
    "global_avg_pool": "x",
    "global_max_pool": "x",
    "global_lp_pool": "x, norm_type",
    "vjp": "fn, *primals, **kwargs",
    # Stochastic, fractional, learned
    "fractional_max_pool2d": "x, kernel_size, output_size=None, output_ratio=None, return_indices=False, *, random_samples=None, rng=None",
    "fractional_max_pool3d": "x, kernel_size, output_size=None, output_ratio=None, return_indices=False, *, random_samples=None, rng=None",
    "stochastic_pool2d": "x, kernel_size, stride=None, *, training=True, rng=None",
    "mixed_pool2d": "x, kernel_size, stride=None, padding=0, *, lam=0.5",
    "gem_pool": "x, p=3.0, eps=1e-6",
    "soft_pool2d": "x, kernel_size, stride=None",
    "lse_pool": "x, r=1.0",
    "bilinear_pool": "x, y=None, *, signed_sqrt=True, l2_normalize=True, eps=1e-12",
    "conv2d": "x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode='zeros'",
    "deform_conv2d": "x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None",
    "blur_pool2d": "x, kernel_size, stride=2",
    "max_blur_pool2d": "x, kernel_size, stride=2, max_pool_size=2, ceil_mode=None",
    # Region
    "spatial_pyramid_pool2d": "x, levels=(1, 2, 4), mode='max', *, binning='adaptive'",
    "roi_pool": "x, boxes, output_size, spatial_scale=1.0",
    "roi_align": "x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, *, mode='avg', convention='torchvision'",
    "ps_roi_pool": "x, boxes, output_size, spatial_scale=1.0",
    "ps_roi_align": "x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1",
    "deform_roi_pool": "x, boxes, offset, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1",
    # Sampling
    "grid_sample": "x, grid, mode='bilinear', padding_mode='zeros', align_corners=False",
    "interpolate": "x, size=None, scale_factor=None, mode='nearest', align_corners=None",
    "dynopool2d": "x, alpha, *, aggregate='max', return_size=False",
})


def _parameters(text):
    """Parse 'a, b=1, *, c=2' into (name, kind, default) triples, as API.md writes them.

    The text is read as the parameter list of a Python ``def``, so defaults such as ``(1, 2, 4)``
    keep their commas.
    """
    signature = inspect.signature(_function_with_parameters(text))
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def _function_with_parameters(text):
    namespace = {}
    exec(f"def contract({text}): pass", namespace)  # the contract text is ours, not user input
    return namespace["contract"]


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_public_function_has_the_contract_signature(name):
    signature = inspect.signature(getattr(poolref, name))
    actual = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
    wanted = _parameters(CONTRACT[name])
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    # positional order and defaults match exactly; listed keyword-only arguments exist; extras may
    # be added, but only as keyword-only arguments
    assert [a for a in actual if a[1] != keyword_only] == [w for w in wanted if w[1] != keyword_only]
    assert all(w in actual for w in wanted if w[1] == keyword_only)
    assert all(a[1] == keyword_only for a in actual if a not in wanted)


def test_autograd_names():
    assert [p for p in inspect.signature(poolref.Tensor).parameters][:2] == ["data", "requires_grad"]
    assert inspect.signature(poolref.Tensor).parameters["requires_grad"].default is False
    for attribute in ("data", "grad", "shape", "dtype", "backward", "sum", "mean", "reshape"):
        assert hasattr(poolref.Tensor([1.0]), attribute)
    gradient = inspect.signature(poolref.Tape().gradient)
    assert list(gradient.parameters)[:2] == ["target", "sources"]
    gradcheck = inspect.signature(poolref.autograd.gradcheck)
    assert [(p.name, p.default) for p in gradcheck.parameters.values()] == [
        ("fn", E), ("primals", E), ("eps", 1e-6), ("atol", 1e-5), ("rtol", 1e-3), ("kwargs", E)
    ]


def test_nn_names():
    import poolref.nn as nn

    for name in ("Module", "Parameter", "Conv2d", "Linear", "ReLU", "Flatten", "Sequential", "MaxPool2d",
                 "AvgPool2d", "cross_entropy", "SGD", "Adam", "DynOPool", "gmacs_loss", "ASPP", "DeformConv2d"):
        assert hasattr(nn, name), name
    aspp = inspect.signature(nn.ASPP)
    assert [(p.name, p.default) for p in aspp.parameters.values()][:3] == [("in_channels", E), ("out_channels", E),
                                                                            ("rates", (6, 12, 18))]
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in list(aspp.parameters.values())[3:])
    init = inspect.signature(nn.DynOPool)
    assert [(p.name, p.default) for p in init.parameters.values()][:2] == [("init_alpha", (2.0, 2.0)), ("aggregate", "max")]
    for name in ("ShapeAdaptor", "shape_adaptor_mix", "shape_adaptor_init", "shape_adaptor_penalty"):
        assert hasattr(nn, name), name
    init = inspect.signature(nn.ShapeAdaptor)
    assert [(p.name, p.default) for p in init.parameters.values()][:3] == [("init_alpha", 0.0), ("r1", 0.5), ("r2", 1.0)]
