"""Cross-check poolref's region ops and deform_conv2d against torchvision.ops, outputs and input gradients.

Run where torch and torchvision are installed (on the CPU, and on CUDA as well when a GPU is
present)::

    python benchmarks/gpu_torchvision_check.py            # 40 random configurations per row
    python benchmarks/gpu_torchvision_check.py --cases 200 --seed 1

For each op, device and dtype (float64 on the CPU, float32 everywhere) it draws random
configurations (batch, channels, map size, 0-6 boxes inside, across or outside the map, some
degenerate or inverted, output size, spatial_scale, sampling_ratio), runs poolref (NumPy) and
torchvision on the same data with the same upstream gradient, and prints one row per op/device/dtype
with the largest output and gradient differences. It exits with status 1 on any mismatch, 0
otherwise, and 0 with ``skipped: torchvision not installed`` where torchvision is missing.

Known, modelled difference: torchvision's ``ps_roi_pool`` forward clips its bins to
``[0, W - 1]`` but its backward to ``[0, W]``, so for a box that reaches the last row or column its
gradient is not the derivative of its output. poolref's backward is the derivative of the forward;
there the script compares torchvision's gradient with
``poolref.reference.region.ps_roi_pool_backward_reference(..., torchvision_backward=True)`` instead
(the column ``grad model`` counts those cases).

``deform_conv2d`` (torchvision.ops.deform_conv2d) gets rows of its own, float16 included: random
groups, offset groups, kernels, strides, paddings and dilations, with and without a mask and a
bias; offsets that are smooth, on pixels and half-pixels, or around the border (-1, 0, H - 1, H);
half the cases with NaN and infinities in the input or in the upstream gradient. Its output and its
gradients to the input, offset, weight, bias and mask are compared: NaN positions and infinities
exactly, finite values to a tolerance relative to each array's largest value (float16: 1e-2, as
torchvision multiplies and adds in float16 where poolref accumulates in float32).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import poolref  # noqa: E402
from poolref.autograd import vjp  # noqa: E402
from poolref.reference import region as reference  # noqa: E402

TOLERANCE = {numpy.float64: 1e-9, numpy.float32: 2e-4}


def random_case(rng, ps: bool):
    """x, rois (K, 5), output size, spatial scale, sampling ratio."""
    N, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 13)), int(rng.integers(1, 13))
    ph, pw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    C = ph * pw * int(rng.integers(1, 3)) if ps else int(rng.integers(1, 4))
    scale = float(rng.choice([1.0, 0.5, 0.25, 2.0]))
    K = int(rng.integers(0, 7))
    kind = rng.choice(["inside", "anywhere", "quarter"])
    if kind == "inside":
        xs, ys = rng.uniform(0, W - 1, (K, 2)), rng.uniform(0, H - 1, (K, 2))
        xs.sort(axis=1)
        ys.sort(axis=1)
    else:
        xs, ys = rng.uniform(-3, W + 3, (K, 2)), rng.uniform(-3, H + 3, (K, 2))
        if kind == "quarter":  # halves meet the rounding rule, integers the bilinear clamps
            xs, ys = numpy.round(xs * 4) / 4, numpy.round(ys * 4) / 4
    if K and rng.random() < 0.3:
        xs[0, 1], ys[0, 1] = xs[0, 0], ys[0, 0]  # degenerate
    rois = numpy.column_stack([rng.integers(0, N, K), xs[:, 0] / scale, ys[:, 0] / scale, xs[:, 1] / scale, ys[:, 1] / scale])
    x = rng.normal(size=(N, C, H, W))
    return x, rois, (ph, pw), scale, int(rng.integers(-1, 4))


def _ps_roi_pool_touches_the_edge(rois, size, scale, H, W) -> bool:
    """Whether torchvision's forward and backward bins differ for some box (the known quirk)."""
    for roi in rois:
        forward = reference.roi_pool_bins(roi, size, scale, H, W, end_inclusive=False, clip=(H - 1, W - 1))
        backward = reference.roi_pool_bins(roi, size, scale, H, W, end_inclusive=False, clip=(H, W))
        if forward != backward:
            return True
    return False


def _ours_and_theirs(torch, ops, name, x, rois, size, scale, ratio, aligned, device, dtype):
    """(poolref output, poolref gradient, torchvision output, torchvision gradient, upstream gradient)."""
    xs, rs = x.astype(dtype), rois.astype(dtype)
    if name == "roi_pool":
        mine = lambda t: poolref.roi_pool(t, rs, size, scale)  # noqa: E731
        theirs = lambda t, r: ops.roi_pool(t, r, size, scale)  # noqa: E731
    elif name == "roi_align":
        mine = lambda t: poolref.roi_align(t, rs, size, scale, ratio, aligned)  # noqa: E731
        theirs = lambda t, r: ops.roi_align(t, r, size, scale, ratio, aligned)  # noqa: E731
    elif name == "ps_roi_pool":
        mine = lambda t: poolref.ps_roi_pool(t, rs, size, scale)  # noqa: E731
        theirs = lambda t, r: ops.ps_roi_pool(t, r, size, scale)  # noqa: E731
    else:
        mine = lambda t: poolref.ps_roi_align(t, rs, size, scale, ratio)  # noqa: E731
        theirs = lambda t, r: ops.ps_roi_align(t, r, size, scale, ratio)  # noqa: E731
    with numpy.errstate(invalid="ignore", divide="ignore"):
        y, pullback = vjp(mine, xs)
    g = numpy.random.default_rng(7).normal(size=y.shape).astype(dtype)
    xt = torch.from_numpy(xs).to(device).requires_grad_(True)
    yt = theirs(xt, torch.from_numpy(rs).to(device))
    yt.backward(torch.from_numpy(g).to(device))
    return y, pullback(g)[0], yt.detach().cpu().numpy(), xt.grad.cpu().numpy(), g


def _difference(a, b):
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    if a.shape != b.shape:
        return numpy.inf
    if not numpy.array_equal(numpy.isnan(a), numpy.isnan(b)):
        return numpy.inf
    finite = ~numpy.isnan(a)
    return float(numpy.abs(a[finite] - b[finite]).max()) if finite.any() else 0.0


# --------------------------------------------------------------------------------------------------
# deform_conv2d
# --------------------------------------------------------------------------------------------------
DEFORM_NAMES = ("x", "offset", "weight", "bias", "mask")
DEFORM_TOLERANCE = {numpy.float64: 1e-9, numpy.float32: 2e-4, numpy.float16: 1e-2}
DEFORM_KINDS = ("smooth", "pixels", "border", "nan_inf", "nonfinite_gradient")


def random_deform_case(rng, kind: str):
    """(arrays by name, stride, padding, dilation, upstream-gradient poison) of one random configuration."""
    groups, offset_groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    C = groups * offset_groups * int(rng.integers(1, 3))
    c_out = groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    stride, dilation = tuple(int(v) for v in rng.integers(1, 3, 2)), tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(rng.integers(0, k + 1)) for k in kernel)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + int(rng.integers(0, 8)) for k, d, p in zip(kernel, dilation, padding))
    out = tuple((L + 2 * p - d * (k - 1) - 1) // s + 1 for L, p, d, k, s in zip(size, padding, dilation, kernel, stride))
    N, taps = int(rng.integers(1, 4)), kernel[0] * kernel[1]
    offset_shape = (N, 2 * offset_groups * taps) + out
    if kind == "pixels":  # on pixel rows and columns, and half-way between: the weight-0 corners and kinks
        offset = rng.integers(-4, 5, offset_shape) / 2.0
    elif kind == "border":  # the first and last taps (at -p and H - 1 + p) moved onto and around -1, 0, H - 1 and H
        offset = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], offset_shape) + rng.choice([0.0, 0.0, 1e-3, -1e-3], offset_shape)
    else:
        offset = rng.normal(scale=2.0, size=offset_shape)
    arrays = {"x": rng.normal(size=(N, C) + size), "offset": offset, "weight": rng.normal(size=(c_out, C // groups) + kernel)}
    if rng.random() < 0.5:
        arrays["bias"] = rng.normal(size=c_out)
    if rng.random() < 0.5:
        arrays["mask"] = rng.uniform(0, 1, (N, offset_groups * taps) + out)
    if kind == "nan_inf":
        chosen = rng.random(arrays["x"].shape) < 0.1
        arrays["x"][chosen] = rng.choice([numpy.nan, numpy.inf, -numpy.inf], int(chosen.sum()))
    return arrays, stride, padding, dilation, kind == "nonfinite_gradient"


def _deform_ours_and_theirs(torch, deform_conv2d, arrays, stride, padding, dilation, poison, device, dtype, seed):
    """{name: (poolref's, theirs)} for the output and the gradient of every input."""
    names = [name for name in DEFORM_NAMES if name in arrays]
    cast = {name: arrays[name].astype(dtype) for name in names}

    def mine(*values):
        a = dict(zip(names, values))
        return poolref.deform_conv2d(a["x"], a["offset"], a["weight"], a.get("bias"), stride, padding, dilation, mask=a.get("mask"))

    with numpy.errstate(all="ignore"):
        y, pullback = vjp(mine, *cast.values())
        g = numpy.random.default_rng(seed).normal(size=y.shape)
        if poison:
            chosen = numpy.random.default_rng(seed + 1).random(y.shape) < 0.2
            g[chosen] = numpy.random.default_rng(seed + 2).choice([numpy.nan, numpy.inf, -numpy.inf], int(chosen.sum()))
        g = g.astype(dtype)
        grads = pullback(g)
    tensors = {name: torch.from_numpy(a).to(device).requires_grad_(True) for name, a in cast.items()}
    y_t = deform_conv2d(tensors["x"], tensors["offset"], tensors["weight"], tensors.get("bias"), stride, padding, dilation,
                        mask=tensors.get("mask"))
    y_t.backward(torch.from_numpy(g).to(device))
    pairs = {"output": (y, y_t.detach().cpu().numpy())}
    for name, grad in zip(names, grads):
        pairs[f"grad {name}"] = (grad, tensors[name].grad.cpu().numpy())
    return pairs


def _deform_difference(ours, theirs, tolerance):
    """(largest finite difference relative to the array's scale, whether NaN and infinities agree)."""
    a, b = numpy.asarray(ours, dtype=numpy.float64), numpy.asarray(theirs, dtype=numpy.float64)
    if a.shape != b.shape:
        return numpy.inf, False
    same = numpy.array_equal(numpy.isnan(a), numpy.isnan(b)) and numpy.array_equal(numpy.where(numpy.isinf(a), a, 0), numpy.where(numpy.isinf(b), b, 0))
    finite = numpy.isfinite(a) & numpy.isfinite(b)
    if not finite.any():
        return 0.0, same
    scale = 1.0 + float(numpy.abs(a[finite]).max())
    return float(numpy.abs(a[finite] - b[finite]).max()) / scale, same


def check_deform_conv2d(torch, deform_conv2d, device, dtype, cases, seed, kinds=DEFORM_KINDS):
    """One row: (worst relative output difference, worst gradient difference, first failing case or None).

    ``deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask=...)`` is torchvision's
    (or, in poolref's tests, a torch composition standing in for it).
    """
    rng = numpy.random.default_rng(seed)
    worst_y = worst_g = 0.0
    failure = None
    for case in range(cases):
        kind = kinds[case % len(kinds)]
        arrays, stride, padding, dilation, poison = random_deform_case(rng, kind)
        pairs = _deform_ours_and_theirs(torch, deform_conv2d, arrays, stride, padding, dilation, poison, device, dtype, seed + case)
        for what, (ours, theirs) in pairs.items():
            difference, same = _deform_difference(ours, theirs, DEFORM_TOLERANCE[dtype])
            if what == "output":
                worst_y = max(worst_y, difference)
            else:
                worst_g = max(worst_g, difference)
            if (difference > DEFORM_TOLERANCE[dtype] or not same) and failure is None:
                failure = (case, kind, what, "NaN/inf differ" if not same else f"{difference:.2e}")
    return worst_y, worst_g, failure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import torch
        import torchvision
        from torchvision import ops
    except ImportError:
        print("skipped: torchvision not installed")
        return 0

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"poolref {poolref.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, devices {devices}")
    rows = []
    variants = [("roi_pool", None), ("roi_align", False), ("roi_align", True), ("ps_roi_pool", None), ("ps_roi_align", None)]
    failed = False
    for device in devices:
        for dtype in (numpy.float64, numpy.float32):
            for name, aligned in variants:
                rng = numpy.random.default_rng(args.seed)
                worst_y = worst_g = 0.0
                modelled = 0
                first_failure = None
                for case in range(args.cases):
                    x, rois, size, scale, ratio = random_case(rng, ps=name.startswith("ps"))
                    y, grad, yt, grad_t, g = _ours_and_theirs(torch, ops, name, x, rois, size, scale, ratio, aligned, device, dtype)
                    want_grad = grad
                    if name == "ps_roi_pool" and _ps_roi_pool_touches_the_edge(rois, size, scale, *x.shape[2:]):
                        want_grad = reference.ps_roi_pool_backward_reference(g, x.shape, rois, size, scale, torchvision_backward=True)
                        modelled += 1
                    dy, dg = _difference(y, yt), _difference(want_grad, grad_t)
                    scale_y = 1 + float(numpy.nanmax(numpy.abs(yt))) if yt.size and not numpy.isnan(yt).all() else 1.0
                    bad = dy > TOLERANCE[dtype] * scale_y or dg > TOLERANCE[dtype] * (1 + float(numpy.abs(grad_t).max(initial=0)))
                    worst_y, worst_g = max(worst_y, dy), max(worst_g, dg)
                    if bad and first_failure is None:
                        first_failure = (case, rois.tolist(), size, scale, ratio)
                label = name if aligned is None else f"{name} aligned={aligned}"
                rows.append((label, device, numpy.dtype(dtype).name, args.cases, worst_y, worst_g, modelled, first_failure))
                failed |= first_failure is not None
    for device in devices:
        for dtype in (numpy.float64, numpy.float32, numpy.float16):
            dy, dg, failure = check_deform_conv2d(torch, ops.deform_conv2d, device, dtype, args.cases, args.seed)
            if failure is not None:
                failure = (failure[0], f"kind {failure[1]}", f"{failure[2]}: {failure[3]}", "-", "-")
            rows.append(("deform_conv2d (relative)", device, numpy.dtype(dtype).name, args.cases, dy, dg, 0, failure))
            failed |= failure is not None
    header = f"{'op':<26} {'device':<6} {'dtype':<8} {'cases':>5} {'max |dy|':>10} {'max |dgrad|':>12} {'grad model':>10}  status"
    print(header)
    print("-" * len(header))
    for label, device, dtype, cases, dy, dg, modelled, failure in rows:
        if failure is None:
            status = "ok"
        elif label.startswith("deform"):
            status = f"MISMATCH (first: case {failure[0]}, {failure[1]}, {failure[2]})"
        else:
            status = f"MISMATCH (first: case {failure[0]}, boxes {failure[1]}, size {failure[2]}, scale {failure[3]}, ratio {failure[4]})"
        print(f"{label:<26} {device:<6} {dtype:<8} {cases:>5} {dy:10.2e} {dg:12.2e} {modelled:>10}  {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
