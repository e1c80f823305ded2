r"""Checking hand-written backward functions: ``vjp``, ``gradcheck`` and the dot-product test.

``vjp`` runs a function on Tensors under a Tape and returns its outputs with a pullback (the
vector-Jacobian product, the mental model of HIPS autograd). ``gradcheck`` builds the whole Jacobian
twice, by central differences and by pullbacks, in float64. ``adjoint_test`` checks the one identity
every backward must satisfy, :math:`\langle g_y, J v\rangle = \langle J^T g_y, v\rangle`, at the cost
of one pullback.
"""

from __future__ import annotations

import numpy

from .._backend import array_module, to_numpy
from .tape import Tape
from .tensor import Tensor

__all__ = ["GradcheckError", "vjp", "gradcheck", "adjoint_test"]


class GradcheckError(AssertionError):
    """A backward function disagrees with finite differences (or fails the dot-product test)."""


def _is_float_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and value.dtype.kind == "f"


def _unwrap(value):
    return value.data if isinstance(value, Tensor) else value


def vjp(fn, *primals, **kwargs):
    r"""Run ``fn`` on ``primals`` and return its outputs and its pullback (vector-Jacobian product).

    Parameters
    ----------
    fn : callable
        ``fn(*tensors, **kwargs)``: called with each float primal wrapped in a Tensor that requires a
        gradient (other primals, and None, are passed as they are).
    *primals : array or None
    **kwargs
        Passed to ``fn``.

    Returns
    -------
    outputs : array, or tuple of arrays
        What ``fn`` returned, as arrays.
    pullback : callable
        ``pullback(cotangent) -> tuple`` with one gradient array per primal (None for a non-float
        primal). Only float outputs take a cotangent (integer outputs such as indices do not): a
        single array when there is one float output, a tuple of arrays in order when several.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.autograd import vjp
    >>> outputs, pullback = vjp(lambda x: x * 3.0, np.array([1.0, 2.0]))
    >>> outputs
    array([3., 6.])
    >>> pullback(np.array([1.0, 10.0]))
    (array([ 3., 30.]),)
    """
    primals = tuple(_unwrap(p) for p in primals)
    inputs = tuple(Tensor(p, requires_grad=True) if _is_float_array(p) else p for p in primals)
    with Tape() as tape:
        result = fn(*inputs, **kwargs)
    single = not isinstance(result, tuple)
    # Wrapping a non-Tensor output (a constant) makes it a target no path reaches: zero gradient.
    results = [r if isinstance(r, Tensor) else Tensor(r) for r in ((result,) if single else result)]
    targets = [r for r in results if r.dtype.kind == "f"]
    sources = [x for x in inputs if isinstance(x, Tensor)]

    def pullback(cotangent):
        if len(targets) == 1:
            cotangents = [cotangent]
        else:
            cotangents = [] if cotangent is None else list(cotangent)
        if len(cotangents) != len(targets):
            raise ValueError(f"fn has {len(targets)} float outputs but {len(cotangents)} cotangents were given")
        grads = iter(tape.gradient(targets, sources, cotangents))
        return tuple(next(grads) if isinstance(x, Tensor) else None for x in inputs)

    outputs = tuple(r.data for r in results)
    return (outputs[0] if single else outputs), pullback


def _float64_copies(primals):
    # Float primals become float64 copies: the checks perturb them, and float32 differences are noise.
    copies = []
    for p in primals:
        p = _unwrap(p)
        copies.append(array_module(p).array(p, dtype="float64", copy=True) if _is_float_array(p) else p)
    return copies


def _float_outputs(fn, primals, kwargs):
    """The float outputs of ``fn(*primals)``, raveled into one numpy vector (no tape, no gradient)."""
    result = fn(*(Tensor(p) if _is_float_array(p) else p for p in primals), **kwargs)
    results = [_unwrap(r) for r in (result if isinstance(result, tuple) else (result,))]
    flat = [to_numpy(r).ravel() for r in results if _is_float_array(r)]
    return numpy.concatenate(flat) if flat else numpy.zeros(0)


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def gradcheck(fn, *primals, eps=1e-6, atol=1e-5, rtol=1e-3, **kwargs) -> bool:
    r"""Compare the backward of ``fn`` with central finite differences, Jacobian entry by entry.

    Parameters
    ----------
    fn : callable
        As for :func:`vjp`; it may return a tuple mixing float outputs and integer ones (indices).
    *primals : array or None
        Float primals are checked; they are copied to float64 and never modified.
    eps : float
        Finite-difference step.
    atol, rtol : float
        Tolerances of ``allclose(analytical, numerical)``.
    **kwargs
        Passed to ``fn``.

    Returns
    -------
    bool
        True when every float primal's Jacobian matches.

    Raises
    ------
    GradcheckError
        Naming the primal, the worst (output, input) entry, both values and the largest error.

    Notes
    -----
    Numerically, column :math:`j` of the Jacobian is
    :math:`(f(x + \epsilon e_j) - f(x - \epsilon e_j)) / 2\epsilon` (two calls per input element).
    Analytically, row :math:`k` is the pullback of the one-hot cotangent :math:`e_k` (one pullback
    per output element). Inputs for max-type ops should have well-separated values, so that no
    argmax flips within :math:`\pm\epsilon`.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.autograd import gradcheck
    >>> gradcheck(lambda x, w: (x @ w).sum(), np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
    True
    """
    primals = _float64_copies(primals)
    outputs, pullback = vjp(fn, *primals, **kwargs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    float_outputs = [y for y in outputs if _is_float_array(y)]
    output_shapes = [y.shape for y in float_outputs]
    n_out = sum(y.size for y in float_outputs)
    checked = [i for i, p in enumerate(primals) if _is_float_array(p)]

    # Analytical Jacobians, one row per output element: J[k, :] = pullback(e_k).
    analytical = {i: numpy.zeros((n_out, primals[i].size)) for i in checked}
    for k in range(n_out):
        cotangents = [array_module(y).zeros(y.shape) for y in float_outputs]
        output_number, local = _locate(k, output_shapes)
        cotangents[output_number].reshape(-1)[local] = 1.0
        grads = pullback(cotangents[0] if len(cotangents) == 1 else tuple(cotangents))
        for i in checked:
            analytical[i][k] = to_numpy(grads[i]).ravel()

    for i in checked:
        # Numerical Jacobian, one column per input element, perturbing a private copy of the input.
        numerical = numpy.zeros((n_out, primals[i].size))
        shifted = list(primals)
        shifted[i] = primals[i].copy()
        flat = shifted[i].reshape(-1)  # a view: writing flat[j] perturbs shifted[i]
        for j in range(flat.size):
            original = float(flat[j])
            flat[j] = original + eps
            plus = _float_outputs(fn, shifted, kwargs)
            flat[j] = original - eps
            minus = _float_outputs(fn, shifted, kwargs)
            flat[j] = original
            numerical[:, j] = (plus - minus) / (2 * eps)
        if not numpy.allclose(analytical[i], numerical, atol=atol, rtol=rtol):
            raise GradcheckError(
                _report(fn, i, primals[i].shape, output_shapes, numerical, analytical[i], atol, rtol)
            )
    return True


def _locate(k, shapes):
    """Which output the k-th element of the concatenated outputs belongs to, and its flat index there."""
    for number, shape in enumerate(shapes):
        size = int(numpy.prod(shape))
        if k < size:
            return number, k
        k -= size
    raise IndexError(k)


def _report(fn, position, input_shape, output_shapes, numerical, analytical, atol, rtol) -> str:
    error = numpy.abs(analytical - numerical)
    error_for_argmax = numpy.where(numpy.isnan(error), numpy.inf, error)  # NaN is the worst of all
    row, column = numpy.unravel_index(numpy.argmax(error_for_argmax), error.shape)
    output_number, local = _locate(row, output_shapes)
    output_index = tuple(int(v) for v in numpy.unravel_index(local, output_shapes[output_number]))
    input_index = tuple(int(v) for v in numpy.unravel_index(column, input_shape))
    bad = ~numpy.isclose(analytical, numerical, atol=atol, rtol=rtol)
    return (
        f"gradcheck of {_name(fn)} failed for primal {position} (shape {tuple(input_shape)}):\n"
        f"  worst entry: d output {output_number}{list(output_index)} / d primal {position}{list(input_index)}\n"
        f"  numerical (central differences) = {float(numerical[row, column])!r}\n"
        f"  analytical (backward)           = {float(analytical[row, column])!r}\n"
        f"  max abs error = {float(error_for_argmax.max()):.3g}; {int(bad.sum())} of {bad.size} "
        f"Jacobian entries differ beyond atol={atol}, rtol={rtol}"
    )


def adjoint_test(fn, *primals, seed=0, eps=1e-6, rtol=1e-6, atol=1e-8, **kwargs) -> bool:
    r"""The dot-product test: :math:`\langle g_y, J v\rangle = \langle J^T g_y, v\rangle`.

    With a random direction :math:`v` (one array per float primal) and a random cotangent
    :math:`g_y` (one per float output), :math:`J v` is computed by central differences along
    :math:`v` and :math:`J^T g_y` by the pullback. The two inner products agree exactly (up to
    rounding) when the backward is the transpose of the forward's derivative. Cheaper than
    :func:`gradcheck` (two calls and one pullback), so it suits large inputs.

    Parameters
    ----------
    fn : callable
        As for :func:`vjp`.
    *primals : array or None
        Copied to float64; never modified.
    seed : int
        Seed of the numpy Generator drawing :math:`v` and :math:`g_y`.
    eps : float
        Finite-difference step along :math:`v`.
    rtol, atol : float
        The test passes when :math:`|a - b| \le atol + rtol |a|`, :math:`a` the numerical side.
    **kwargs
        Passed to ``fn``.

    Returns
    -------
    bool
        True when the two inner products agree.

    Raises
    ------
    GradcheckError
        With both inner products.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.autograd import adjoint_test
    >>> adjoint_test(lambda x: x.sum(axis=0), np.arange(6.0).reshape(2, 3))
    True
    """
    primals = _float64_copies(primals)
    rng = numpy.random.default_rng(seed)
    directions = [
        array_module(p).asarray(rng.standard_normal(p.shape)) if _is_float_array(p) else None for p in primals
    ]
    outputs, pullback = vjp(fn, *primals, **kwargs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    float_outputs = [y for y in outputs if _is_float_array(y)]
    cotangents = [array_module(y).asarray(rng.standard_normal(y.shape)) for y in float_outputs]

    # <gy, J v>, with J v by central differences along v.
    plus = [p + eps * v if v is not None else p for p, v in zip(primals, directions)]
    minus = [p - eps * v if v is not None else p for p, v in zip(primals, directions)]
    jv = (_float_outputs(fn, plus, kwargs) - _float_outputs(fn, minus, kwargs)) / (2 * eps)
    gy = numpy.concatenate([to_numpy(c).ravel() for c in cotangents]) if cotangents else numpy.zeros(0)
    numerical = float(gy @ jv)

    # <J^T gy, v>, with J^T gy by the pullback.
    grads = pullback(cotangents[0] if len(cotangents) == 1 else tuple(cotangents))
    analytical = sum(float((g * v).sum()) for g, v in zip(grads, directions) if v is not None)

    if not abs(numerical - analytical) <= atol + rtol * abs(numerical):
        raise GradcheckError(
            f"adjoint test of {_name(fn)} failed (seed={seed}):\n"
            f"  <gy, J v>   (central differences) = {numerical!r}\n"
            f"  <J^T gy, v> (backward)            = {analytical!r}\n"
            f"  difference = {abs(numerical - analytical)!r}, allowed {atol} + {rtol} * |<gy, J v>|"
        )
    return True
