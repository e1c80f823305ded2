"""Shared by the tests: resolve an op's keyword arguments into the geometry the references take."""

import numpy

from poolref._geometry import geometry_of_keywords


def resolved(spatial_shape, kwargs, op="test"):
    """(kernel, stride, pad_begin, pad_end, dilation, ceil_mode) tuples for a reference function."""
    return geometry_of_keywords(spatial_shape, kwargs, op).loop_reference_arguments()


def torch_or_skip():
    import pytest

    return pytest.importorskip("torch")


def to_torch(x, requires_grad=False):
    torch = torch_or_skip()
    t = torch.from_numpy(numpy.ascontiguousarray(x))
    return t.requires_grad_(requires_grad) if requires_grad else t


def plant_nonfinite(x, seed, fraction=0.2):
    """A copy of ``x`` with about ``fraction`` of its elements set to NaN, +inf or -inf, at random.

    For the tests that hold an op equal to its loop reference on non-finite inputs or upstream
    gradients: NaN, +inf and -inf each land on about a third of the chosen elements, so that windows
    and bins meet each of them alone and mixed (+inf with -inf, an infinity with a NaN).
    """
    rng = numpy.random.default_rng(seed)
    x = numpy.array(x, copy=True)
    chosen = rng.random(x.shape) < fraction
    x[chosen] = rng.choice([numpy.nan, numpy.inf, -numpy.inf], size=int(chosen.sum()))
    return x


def layouts(x, layout):
    """``x`` (N, C, H, W) as float16 or float32, or as a non-contiguous view of the same values.

    ``"float16"``/``"float32"``: a contiguous cast; ``"transposed"``: a view with H and W strides
    swapped; ``"reversed"``: a view with negative strides; ``"sliced"``: every other element of a
    larger array. The values are those of ``x`` (rounded for float16/float32), so a reference run on
    ``numpy.array(view)`` is the reference of the view.
    """
    if layout in ("float16", "float32"):
        return x.astype(layout)
    if layout == "transposed":
        return numpy.ascontiguousarray(numpy.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    if layout == "reversed":
        return numpy.ascontiguousarray(x[..., ::-1, ::-1])[..., ::-1, ::-1]
    if layout == "sliced":
        wide = numpy.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    assert layout == "contiguous", layout
    return x


def assert_device_agrees(xp, fn, *primals, rtol=1e-12, atol=1e-13, seed=0):
    """``fn`` on ``xp`` (numpy, cupy, or the CuPy stand-in) gives NumPy's outputs and gradients.

    Runs ``vjp(fn, *primals)`` once on the host arrays and once on their ``xp`` copies, pulls back
    the same random cotangent (NaN-free) on both, and checks every output and gradient: same type
    of array as the primals' (no host array coming back from the device), same dtype, values
    within ``rtol``/``atol`` (integer outputs, the indices, equal).
    """
    from poolref._backend import array_module, to_numpy
    from poolref.autograd import vjp
    from poolref.testing import assert_matches

    want, pullback = vjp(fn, *primals)
    got, pullback_xp = vjp(fn, *(xp.asarray(p) if hasattr(p, "shape") else p for p in primals))
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    for number, (a, b) in enumerate(zip(got, want)):
        assert array_module(a) is xp and a.dtype == b.dtype, (number, type(a), a.dtype, b.dtype)
        assert_matches(to_numpy(a), b, rtol=rtol, atol=atol, what=f"output {number}")
    rng = numpy.random.default_rng(seed)
    cotangents = [rng.standard_normal(b.shape).astype(b.dtype) for b in want if b.dtype.kind == "f"]
    single = len(cotangents) == 1
    grads = pullback(cotangents[0] if single else tuple(cotangents))
    grads_xp = pullback_xp(xp.asarray(cotangents[0]) if single else tuple(xp.asarray(c) for c in cotangents))
    for number, (a, b) in enumerate(zip(grads_xp, grads)):
        if b is None:
            assert a is None
            continue
        assert array_module(a) is xp and a.dtype == b.dtype, (number, type(a), a.dtype, b.dtype)
        assert_matches(to_numpy(a), b, rtol=rtol, atol=atol, what=f"gradient of primal {number}")


def assert_same_bits(got, want, what="output"):
    """``got`` is ``want`` bit for bit: same dtype, shape and bits in every element, signed zeros
    included, except that a NaN only has to meet a NaN.

    NaN's sign bit is not part of its value, and NumPy does not keep it stable: ``inf - inf`` or
    ``nan + nan`` gives a NaN of either sign depending on whether the element went through a SIMD
    lane or the scalar tail of a loop, which moves with the length of the arrays.
    """
    got, want = numpy.asarray(got), numpy.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    if got.dtype.kind == "f":
        nan = numpy.isnan(want)
        assert numpy.array_equal(numpy.isnan(got), nan), f"{what}: NaN at other places"
        got, want = got[~nan], want[~nan]
    differ = got.view(numpy.uint8).reshape(got.shape + (-1,)) != want.view(numpy.uint8).reshape(want.shape + (-1,))
    assert not differ.any(), f"{what}: {int(differ.any(axis=-1).sum())} elements differ in their bits"


def outputs_and_gradients(fn, *primals, seed=0):
    """Every output of ``vjp(fn, *primals)`` and every gradient, for a cotangent holding NaN and +-inf."""
    from poolref.autograd import vjp

    outputs, pullback = vjp(fn, *primals)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    cotangents = [plant_nonfinite(numpy.random.default_rng(seed).standard_normal(y.shape), seed).astype(y.dtype)
                  for y in outputs if y.dtype.kind == "f"]
    grads = pullback(cotangents[0] if len(cotangents) == 1 else tuple(cotangents))
    return tuple(outputs) + tuple(g for g in grads if g is not None)


def assert_blocks_change_nothing(monkeypatch, fn, *primals):
    """``fn``'s outputs and gradients are the same bits (:func:`assert_same_bits`) whether the op runs
    its batch as one block or one plane (or sample) per block (``poolref._backend.BLOCK_BYTES = 1``)."""
    import poolref._backend

    with monkeypatch.context() as patch:
        patch.setattr(poolref._backend, "BLOCK_BYTES", 2**62)
        one_block = outputs_and_gradients(fn, *primals)
        patch.setattr(poolref._backend, "BLOCK_BYTES", 1)
        blocks_of_one = outputs_and_gradients(fn, *primals)
    for number, (got, want) in enumerate(zip(blocks_of_one, one_block)):
        assert_same_bits(got, want, what=f"output or gradient {number}")


def assert_conv_results_match(got, want, layout):
    """conv2d's ``(y, grad_x, grad_weight, grad_bias)`` against the loop reference's, at the tolerance
    of the input ``layout`` ("float16", "float32", else float64): the weight and bias gradients of
    float16 sum many float16 products, so they get a wider one."""
    from poolref.testing import assert_matches

    tol = {"float16": dict(rtol=3e-3, atol=3e-3), "float32": dict(rtol=1e-5, atol=1e-5)}.get(layout, dict(rtol=1e-12, atol=1e-12))
    assert_matches(got[0], want[0], **tol)
    assert_matches(got[1], want[1], **tol, what="grad x")
    if layout == "float16":
        tol = dict(rtol=2e-2, atol=2e-2)
    assert_matches(got[2], want[2], **tol, what="grad weight")
    assert_matches(got[3], want[3], **tol, what="grad bias")


def assert_refused_naming(error, words, prefix, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` raises ``error`` with a message that starts with ``prefix`` (the op's
    name) and contains every one of ``words`` (the argument and its value)."""
    import pytest

    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(prefix), message
    for word in words:
        assert word in message, (word, message)


# ONNX Runtime folds each sampling point's four weighted corners first, then the points: a NaN first
# corner hides the rest of its point (found by `poolref check onnxruntime --ops roi_align --cases 40
# --seed 11`, where one flat fold over all the corners gave 0.39958 instead of ORT's 0.37717)
NAN_FIRST_CORNER_X = numpy.array([[[[-0.35590830799116624, -0.951145761204585, -1.134451444635356, numpy.nan],
                                     [-1.0635103510523005, 0.6886148390322413, 0.756397904983463, 0.4281129492946154],
                                     [numpy.nan, -1.5816370303590137, 0.22766588340437588, -0.9889732784913656],
                                     [-1.7040724376397192, -1.4910669752112833, 0.8155129999214705, -1.8998552133282023]]]])
NAN_FIRST_CORNER_BOX = numpy.array([[0.0, 1.0782069984102831, 0.1713844032246934, 4.098295733090579, 3.536645799044707]])
