r"""Independent PyTorch versions of poolref ops that PyTorch lacks, built from PyTorch's own ops.

They serve as cross-checks (the tests, the oracle's ``kind="composition"`` rows) and as the baseline
of the benchmarks. None of them calls poolref: each is written from the op's definition with
``torch`` functions, and its gradients are torch's autograd of that composition. torch is passed in
(or imported lazily), so importing this module never imports torch.

Where poolref computes a formula in a form that cannot overflow, the composition does too (a
softmax, a maximum factored out), so that the two agree at every magnitude rather than only where
the textbook formula happens not to overflow. The rules at NaN and infinities are those the
composition's torch ops give; each function says where they come from.

Every function takes batched (N, C, ...) input; those whose poolref op also takes an unbatched
(C, H, W) input take it too.
"""

from __future__ import annotations

import math

import numpy

__all__ = [
    "gem_by_pow_mean", "soft_pool_by_unfold", "lse_by_expm1_log1p", "bilinear_by_einsum", "mixed_by_max_and_avg_pool",
    "stochastic_expectation_by_unfold", "spatial_pyramid_by_pooling", "deform_roi_pool_by_gather",
    "deform_conv2d_by_gather", "dynopool_by_grid_sample", "blur_pool_by_depthwise_conv", "max_blur_pool_by_max_pool_and_conv",
]


def _pair(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def _as_batched(x):
    """``(x with a batch axis, whether it had one)`` for a (N, C, H, W) or (C, H, W) tensor."""
    return (x, True) if x.dim() == 4 else (x[None], False)


def _windows(torch, x, kernel_size, stride):
    """(N, C, kh*kw, H_out, W_out): the taps of every unpadded window, from ``unfold``."""
    N, C, H, W = x.shape
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    out_h, out_w = (H - kernel[0]) // stride[0] + 1, (W - kernel[1]) // stride[1] + 1
    columns = torch.nn.functional.unfold(x, kernel, stride=stride)  # (N, C*kh*kw, out_h*out_w)
    return columns.reshape(N, C, kernel[0] * kernel[1], out_h, out_w)


# --------------------------------------------------------------------------------------------------
# Learned and smooth pooling
# --------------------------------------------------------------------------------------------------
def gem_by_pow_mean(torch, x, p, eps=1e-6):
    r"""GeM, :math:`(\frac{1}{S}\sum_i \max(x_i, \epsilon)^p)^{1/p}` over the spatial dims, from
    ``clamp``, ``pow`` and ``mean``.

    The plane's largest clamped value ``m`` is factored out, ``y = m * mean((z / m)^p)^(1/p)``, so
    that no power overflows (``(1e30)^3`` does in float32); ``m`` is detached, since ``y`` does not
    depend on it. A NaN or infinite maximum is not factored out (the textbook formula then runs,
    as ``torch.logsumexp`` leaves an infinite maximum alone): a NaN gives NaN, +inf gives +inf.
    ``p`` may be a tensor that requires a gradient.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import gem_by_pow_mean
    >>> gem_by_pow_mean(torch, torch.tensor([[[1., 2., 3.]]]), torch.tensor(2.0)) ** 2  # the mean of squares
    tensor([[[4.6667]]])
    """
    dims = tuple(range(2, x.dim()))
    z = x.clamp(min=eps)
    largest = z.amax(dim=dims, keepdim=True).detach()
    scale = torch.where(torch.isfinite(largest), largest, torch.ones_like(largest))
    return scale * ((z / scale) ** p).mean(dim=dims, keepdim=True) ** (1 / p)


def soft_pool_by_unfold(torch, x, kernel_size, stride=None):
    r"""SoftPool, :math:`\sum_i \operatorname{softmax}(x)_i\, x_i` over each window, from ``unfold``
    and ``softmax`` (which subtracts the window's maximum: no overflow). An infinity in a window
    gives NaN there (``inf - inf`` in the softmax, ``0 * -inf`` in the weighted sum).

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import soft_pool_by_unfold
    >>> x = torch.tensor([[[0., 0.], [0., math.log(3.)]]])  # weights 1/6, 1/6, 1/6, 1/2
    >>> soft_pool_by_unfold(torch, x, 2)  # log(3) / 2
    tensor([[[0.5493]]])
    """
    x, batched = _as_batched(x)
    taps = _windows(torch, x, kernel_size, stride)  # (N, C, k, H_out, W_out)
    y = (taps.softmax(dim=2) * taps).sum(dim=2)
    return y if batched else y[0]


def lse_by_expm1_log1p(torch, x, r=1.0):
    r"""Log-sum-exp pooling, :math:`\frac{1}{r}\log \frac{1}{S}\sum_i e^{r x_i}` over the spatial dims.

    Written with the plane's maximum ``m`` factored out and the mean of the exponentials taken
    relative to one, ``y = m + log1p(mean(expm1(r (x - m)))) / r``: nothing overflows, and where
    ``|r x|`` is tiny the digits of ``mean(x)``, which ``exp`` would round away against 1, are kept
    (``(torch.logsumexp(r x) - log S) / r`` returns 0 for ``x`` of order 1e-20). ``m`` is detached
    (``y`` does not depend on it) and, as in ``torch.logsumexp``, not subtracted where it is
    infinite: a plane holding +inf gives +inf, one of only -inf gives -inf, a NaN gives NaN.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import lse_by_expm1_log1p
    >>> lse_by_expm1_log1p(torch, torch.tensor([[[0., math.log(3.)]]], dtype=torch.float64))  # log((1 + 3) / 2)
    tensor([[[0.6931]]], dtype=torch.float64)
    >>> lse_by_expm1_log1p(torch, torch.tensor([[[1e-20, 3e-20]]], dtype=torch.float64)).item()  # the mean, to first order
    2e-20
    """
    dims = tuple(range(2, x.dim()))
    largest = x.amax(dim=dims, keepdim=True).detach()
    shift = torch.where(torch.isfinite(largest), largest, torch.zeros_like(largest))
    return shift + torch.log1p(torch.expm1(r * (x - shift)).mean(dim=dims, keepdim=True)) / r


def bilinear_by_einsum(torch, x, y=None, signed_sqrt=True, l2_normalize=True, eps=1e-12):
    r"""Bilinear pooling: :math:`B = \frac{1}{P}\sum_l x_l y_l^T` flattened row-major, from
    ``einsum``; then ``sign(B) sqrt(|B| + eps)`` and ``F.normalize(dim=1, eps=eps)``. With ``y``
    None, ``x`` is both factors, and autograd adds the gradients of the two.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import bilinear_by_einsum
    >>> bilinear_by_einsum(torch, torch.tensor([[[1., 3.], [2., 4.]]]), signed_sqrt=False, l2_normalize=False)
    tensor([[ 5.,  7.,  7., 10.]])
    """
    N, P = x.shape[0], math.prod(x.shape[2:])
    first = x.reshape(N, x.shape[1], P)  # (N, C_x, P)
    second = first if y is None else y.reshape(N, y.shape[1], P)  # (N, C_y, P)
    B = torch.einsum("ncl,ndl->ncd", first, second).reshape(N, first.shape[1] * second.shape[1]) / P
    s = torch.sign(B) * torch.sqrt(B.abs() + eps) if signed_sqrt else B
    return torch.nn.functional.normalize(s, dim=1, eps=eps) if l2_normalize else s


# --------------------------------------------------------------------------------------------------
# Anti-aliased downsampling (kornia's blur pools, written from their definition)
# --------------------------------------------------------------------------------------------------
def blur_pool_by_depthwise_conv(torch, x, kernel_size, stride=2):
    r"""Blur pooling as kornia defines it: ``F.pad`` with ``(k - 1) // 2`` zeros before and ``k // 2``
    after each axis, then a depthwise ``F.conv2d`` (``groups=C``) with the normalised binomial kernel
    at ``stride``. The kernel's row is Pascal's, built by adding shifted copies of ``[1]`` (float64,
    then cast to ``x``'s dtype).

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import blur_pool_by_depthwise_conv
    >>> blur_pool_by_depthwise_conv(torch, torch.ones(1, 3, 3), 3, 1)  # zero padding: a darker border
    tensor([[[0.5625, 0.7500, 0.5625],
             [0.7500, 1.0000, 0.7500],
             [0.5625, 0.7500, 0.5625]]])
    """
    F = torch.nn.functional
    k = _pair(kernel_size)[0]
    row = torch.ones(1, dtype=torch.float64)
    for _ in range(k - 1):  # the next row of Pascal's triangle: [row, 0] + [0, row]
        row = torch.cat([row, row.new_zeros(1)]) + torch.cat([row.new_zeros(1), row])
    row = row / row.sum()
    batched, had_batch = _as_batched(x)
    channels = batched.shape[1]
    weight = (row[:, None] * row[None, :]).to(x.dtype).expand(channels, 1, k, k).contiguous()
    padded = F.pad(batched, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))  # (left, right, top, bottom)
    y = F.conv2d(padded, weight, stride=stride, groups=channels)
    return y if had_batch else y[0]


def max_blur_pool_by_max_pool_and_conv(torch, x, kernel_size, stride=2, max_pool_size=2):
    r"""Max-blur pooling as kornia defines it: ``F.max_pool2d(x, max_pool_size, stride=1)`` (PyTorch's
    max rule: first of ties, a NaN wins), then :func:`blur_pool_by_depthwise_conv`.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import max_blur_pool_by_max_pool_and_conv
    >>> max_blur_pool_by_max_pool_and_conv(torch, torch.eye(5)[None, None], 3)  # kornia's example
    tensor([[[[0.5625, 0.3125],
              [0.3125, 0.8750]]]])
    """
    pooled = torch.nn.functional.max_pool2d(x, max_pool_size, stride=1)
    return blur_pool_by_depthwise_conv(torch, pooled, kernel_size, stride)


# --------------------------------------------------------------------------------------------------
# Mixed and stochastic pooling
# --------------------------------------------------------------------------------------------------
def mixed_by_max_and_avg_pool(torch, x, kernel_size, stride=None, padding=0, lam=0.5):
    r"""Mixed pooling, ``lam * F.max_pool2d + (1 - lam) * F.avg_pool2d`` (``count_include_pad=True``,
    PyTorch's default). A term of weight 0 is left out, as the definition says (``lam = 1`` is max
    pooling, whose infinities must not meet a ``0 *`` of the average).

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import mixed_by_max_and_avg_pool
    >>> mixed_by_max_and_avg_pool(torch, torch.tensor([[[1., 3.], [0., 4.]]]), 2)  # (4 + 2) / 2
    tensor([[[3.]]])
    """
    F = torch.nn.functional
    terms = []
    if lam > 0:
        terms.append(lam * F.max_pool2d(x, kernel_size, stride, padding))
    if lam < 1:
        terms.append((1 - lam) * F.avg_pool2d(x, kernel_size, stride, padding))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def stochastic_expectation_by_unfold(torch, x, kernel_size, stride=None):
    r"""Stochastic pooling at inference: the expectation :math:`\sum_i a_i^2 / \sum_i a_i` of each
    window (0 where the window sums to 0), from ``unfold``.

    The window's maximum ``m`` is factored out, ``y = m * sum(r^2) / sum(r)`` with ``r = a / m``,
    so that no square overflows (``a^2`` does in float32 from ``a = 2e19``); ``m`` is detached
    (``y`` does not depend on it).

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import stochastic_expectation_by_unfold
    >>> stochastic_expectation_by_unfold(torch, torch.tensor([[[1., 3.], [0., 0.]]]), 2)  # (1 + 9) / 4
    tensor([[[2.5000]]])
    """
    x, batched = _as_batched(x)
    taps = _windows(torch, x, kernel_size, stride)  # (N, C, k, H_out, W_out), every a >= 0
    largest = taps.amax(dim=2, keepdim=True).detach()
    scale = torch.where(largest > 0, largest, torch.ones_like(largest))
    ratios = taps / scale
    total, squares = ratios.sum(dim=2), (ratios * ratios).sum(dim=2)
    nonzero = total > 0
    y = torch.where(nonzero, scale[:, :, 0] * squares / torch.where(nonzero, total, torch.ones_like(total)), torch.zeros_like(total))
    return y if batched else y[0]


# --------------------------------------------------------------------------------------------------
# Spatial pyramid pooling and deformable RoI pooling
# --------------------------------------------------------------------------------------------------
def spatial_pyramid_by_pooling(torch, x, levels=(1, 2, 4), mode="max", binning="adaptive"):
    r"""Spatial pyramid pooling: every level pooled to ``n x n``, flattened channel-major and
    concatenated in the order of ``levels``.

    ``binning="adaptive"``: ``F.adaptive_max_pool2d`` / ``F.adaptive_avg_pool2d(x, n)``;
    ``"sppnet"``: He et al.'s windows, ``F.max_pool2d`` / ``F.avg_pool2d`` with kernel ``ceil(L/n)``
    and stride ``floor(L/n)``.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import spatial_pyramid_by_pooling
    >>> spatial_pyramid_by_pooling(torch, torch.arange(16.).reshape(1, 1, 4, 4), levels=(1, 2))
    tensor([[15.,  5.,  7., 13., 15.]])
    """
    F = torch.nn.functional
    H, W = x.shape[-2:]
    lead = tuple(x.shape[:-3])
    parts = []
    for n in levels:
        if binning == "adaptive":
            pooled = (F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d)(x, n)
        else:
            kernel, stride = (-(-H // n), -(-W // n)), (H // n, W // n)
            pooled = (F.max_pool2d if mode == "max" else F.avg_pool2d)(x, kernel, stride)
        parts.append(pooled.flatten(start_dim=len(lead)))  # (.., C*n*n); an empty batch too
    return torch.cat(parts, dim=-1)


def _deform_axis(torch, coordinate, length, in_grid):
    """mmcv's bilinear rule along one axis: ``(low, high, w_low, w_high, read)``.

    A coordinate outside ``[-1, length]`` (or beyond the box's grid) is not read (``read`` False).
    Otherwise it is clamped below at 0; ``low = floor(c)``; from ``low >= length - 1`` on, the
    coordinate is snapped to ``length - 1``. The clamp and the snap are written as products with
    0/1 masks rather than selections, so that their derivative is ``0 * (x_high - x_low)``, NaN
    next to a NaN input, as in the kernel's backward (which multiplies the corners' values by the
    weights' derivatives).
    """
    read = (coordinate >= -1) & (coordinate <= length) & in_grid
    positive = (coordinate > 0).to(coordinate.dtype)
    clamped = torch.where(read, coordinate * positive, torch.zeros_like(coordinate))  # max(c, 0) where read
    low = clamped.detach().floor().long()
    snapped = low >= length - 1
    low = low.clamp(max=length - 1)
    high = torch.where(snapped, low, low + 1)
    w_high = (clamped - low.to(clamped.dtype)) * (~snapped).to(clamped.dtype)
    return low, high, 1 - w_high, w_high, read


def deform_roi_pool_by_gather(torch, x, boxes, offset, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
    r"""Deformable RoI pooling (mmcv's ``DeformRoIPool``): RoI Align with ``aligned=True`` whose bin
    ``(i, j)`` moves by ``(gamma * roi_w * offset[k, 0, i, j], gamma * roi_h * offset[k, 1, i, j])``,
    written with torch indexing.

    ``x`` is (N, C, H, W), ``boxes`` (K, 5) ``[batch_index, x1, y1, x2, y2]``, ``offset``
    (K, 2, ph, pw) or None; gradients reach ``x`` and ``offset``. Geometry: ``start = x1 * scale -
    0.5``, ``roi_w = x2 * scale - 0.5 - start``, ``bin_w = roi_w / pw``, a grid of
    ``sampling_ratio`` (or ``ceil(bin_w)`` where it is <= 0) points per bin side at
    ``start + shift + j * bin_w + (s + 0.5) * bin_w / grid``; each point read bilinearly by mmcv's
    rule (a point outside ``[-1, L]`` reads exactly 0, even next to a NaN); the bin's value is the
    sum over its points divided by ``max(grid_h * grid_w, 1)``. float16 input is computed in
    float32, as poolref and the kernels accumulate it.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import deform_roi_pool_by_gather
    >>> x = torch.arange(100.).reshape(1, 1, 10, 10)
    >>> shift = torch.tensor([[[[0.5]], [[0.0]]]])  # half the box's width to the right
    >>> deform_roi_pool_by_gather(torch, x, torch.tensor([[0., 1, 1, 3, 3]]), shift, 1, sampling_ratio=1, gamma=1.0)
    tensor([[[[17.5000]]]])
    """
    ph, pw = _pair(output_size)
    N, C, H, W = x.shape
    work = torch.float32 if x.dtype == torch.float16 else x.dtype
    rois = boxes.to(device=x.device, dtype=work)
    K = rois.shape[0]
    batch = rois[:, 0].long()
    start_w, start_h = rois[:, 1] * spatial_scale - 0.5, rois[:, 2] * spatial_scale - 0.5
    roi_w = rois[:, 3] * spatial_scale - 0.5 - start_w
    roi_h = rois[:, 4] * spatial_scale - 0.5 - start_h
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full((K,), sampling_ratio, dtype=torch.long, device=x.device)
    else:
        grid_h, grid_w = torch.ceil(bin_h).long(), torch.ceil(bin_w).long()
    if offset is None:
        shift_x = shift_y = torch.zeros((K, ph, pw), dtype=work, device=x.device)
    else:
        offset = offset.to(work)
        shift_x = gamma * roi_w[:, None, None] * offset[:, 0]  # (K, ph, pw)
        shift_y = gamma * roi_h[:, None, None] * offset[:, 1]

    def points(start, bin_size, grid, index, shift, G):
        """(K, ph, pw, G) coordinates along one axis (``index`` the bin's, (1, ph, 1) or (1, 1, pw)),
        and which of them lie in the box's grid."""
        s = torch.arange(G, dtype=work, device=x.device)
        safe_grid = grid.clamp(min=1).to(work)
        within = (s[None, :] + 0.5) * bin_size[:, None] / safe_grid[:, None]  # (K, G)
        coordinate = (start[:, None, None] + shift + index * bin_size[:, None, None])[..., None] + within[:, None, None, :]
        return coordinate, (s[None, :] < grid[:, None].to(work))[:, None, None, :]

    G_h = max(int(grid_h.max()), 0) if K else 0
    G_w = max(int(grid_w.max()), 0) if K else 0
    rows_index = torch.arange(ph, dtype=work, device=x.device)[None, :, None]
    cols_index = torch.arange(pw, dtype=work, device=x.device)[None, None, :]
    ys, in_grid_y = points(start_h, bin_h, grid_h, rows_index, shift_y, G_h)  # (K, ph, pw, G_h)
    xs, in_grid_x = points(start_w, bin_w, grid_w, cols_index, shift_x, G_w)  # (K, ph, pw, G_w)
    y_low, y_high, wy_low, wy_high, read_y = _deform_axis(torch, ys, H, in_grid_y)
    x_low, x_high, wx_low, wx_high, read_x = _deform_axis(torch, xs, W, in_grid_x)
    read = read_y[..., :, None] & read_x[..., None, :]  # (K, ph, pw, G_h, G_w)
    image = batch[:, None, None, None, None]
    xw = x.to(work)
    total = torch.zeros((K, ph, pw, G_h, G_w, C), dtype=work, device=x.device)
    for rows, row_weight in ((y_low, wy_low), (y_high, wy_high)):
        for cols, col_weight in ((x_low, wx_low), (x_high, wx_high)):
            values = xw[image, :, rows[..., :, None], cols[..., None, :]]  # (K, ph, pw, G_h, G_w, C)
            # a point outside (or beyond the box's grid) reads nothing: neither its value nor its
            # weight takes part, so no gradient reaches it either (not even 0 * an infinite one)
            values = torch.where(read[..., None], values, torch.zeros_like(values))
            weight = row_weight[..., :, None] * col_weight[..., None, :]
            weight = torch.where(read, weight, torch.zeros_like(weight))
            total = total + weight[..., None] * values
    count = (grid_h * grid_w).clamp(min=1).to(work)
    y = total.sum(dim=(3, 4)) / count[:, None, None, None]  # (K, ph, pw, C)
    return y.permute(0, 3, 1, 2).to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Deformable convolution
# --------------------------------------------------------------------------------------------------
def deform_conv2d_by_gather(torch, x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    r"""Deformable convolution, modulated by ``mask`` where one is given (``torchvision.ops.deform_conv2d``),
    written with torch indexing (``gather``) and a grouped matrix product.

    ``x`` is (N, C, H, W), ``offset`` (N, 2 G kh kw, H_out, W_out) with ``(dy, dx)`` per tap, ``weight``
    (C_out, C / groups, kh, kw), ``mask`` (N, G kh kw, H_out, W_out) or None; the groups are
    ``C / weight.shape[1]`` and the offset groups ``G = offset.shape[1] / (2 kh kw)``, as torchvision
    infers them. Tap ``(i, j)`` of output ``(h, w)`` samples channel ``c`` (of offset group ``g``) at
    ``y = h s - p + i d + dy``, ``x = w s - p + j d + dx`` (the sum in x's dtype, as torchvision
    stores it), bilinearly: the four corners ``floor`` and ``floor + 1`` with weights ``(1 - t)``
    and ``t`` per axis, a corner outside the image reading 0, a point outside
    ``(-1, H) x (-1, W)`` reading nothing (not even a NaN at weight 0). The samples, times the mask,
    are contracted with the weights per group; the bias is added. Gradients are autograd's of this
    composition. float16 input is computed in float32, as poolref accumulates it.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import deform_conv2d_by_gather
    >>> x = torch.arange(9.).reshape(1, 1, 3, 3)
    >>> offset = torch.zeros(1, 2, 3, 3); offset[0, 1] = 0.5  # half a pixel to the right
    >>> deform_conv2d_by_gather(torch, x, offset, torch.ones(1, 1, 1, 1))
    tensor([[[[0.5000, 1.5000, 1.0000],
              [3.5000, 4.5000, 2.5000],
              [6.5000, 7.5000, 4.0000]]]])
    """
    N, C, H, W = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    groups, taps = C // c_per_group, kh * kw
    G = offset.shape[1] // (2 * taps)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    h_out, w_out = offset.shape[2], offset.shape[3]
    P = h_out * w_out
    work = torch.float32 if x.dtype == torch.float16 else x.dtype
    device = x.device
    # where each tap sits before its offset: (taps, H_out, 1) rows and (taps, 1, W_out) columns
    i = torch.arange(kh, device=device).repeat_interleave(kw)
    j = torch.arange(kw, device=device).repeat(kh)
    rows = (torch.arange(h_out, device=device) * sh - ph)[None, :, None] + (i * dh)[:, None, None]
    cols = (torch.arange(w_out, device=device) * sw - pw)[None, None, :] + (j * dw)[:, None, None]
    shifts = offset.reshape(N, G, taps, 2, h_out, w_out)
    ys = (rows.to(x.dtype) + shifts[:, :, :, 0]).to(work).reshape(N, G, 1, taps * P)
    xs = (cols.to(x.dtype) + shifts[:, :, :, 1]).to(work).reshape(N, G, 1, taps * P)
    inside = (ys > -1) & (ys < H) & (xs > -1) & (xs < W)
    y_low, x_low = ys.detach().floor(), xs.detach().floor()
    t_y, t_x = ys - y_low, xs - x_low
    planes = x.to(work).reshape(N, G, C // G, H * W)
    samples = torch.zeros((N, G, C // G, taps * P), dtype=work, device=device)
    for corner_rows, weight_y in ((y_low, 1 - t_y), (y_low + 1, t_y)):
        for corner_cols, weight_x in ((x_low, 1 - t_x), (x_low + 1, t_x)):
            read = inside & (corner_rows >= 0) & (corner_rows < H) & (corner_cols >= 0) & (corner_cols < W)
            index = (corner_rows.clamp(0, H - 1) * W + corner_cols.clamp(0, W - 1)).long()
            values = planes.gather(3, index.expand(N, G, C // G, taps * P))
            values = torch.where(read, values, torch.zeros_like(values))  # an unread corner is 0, gradient too
            samples = samples + weight_y * weight_x * values
    samples = samples.reshape(N, G, C // G, taps, P)
    if mask is not None:
        samples = samples * mask.to(work).reshape(N, G, 1, taps, P)
    columns = samples.reshape(N, groups, (C // groups) * taps, P)
    y = weight.to(work).reshape(groups, c_out // groups, (C // groups) * taps) @ columns  # (N, groups, C_out/groups, P)
    y = y.reshape(N, c_out, h_out, w_out)
    if bias is not None:
        y = y + bias.to(work)[:, None, None]
    return y.to(x.dtype)


# --------------------------------------------------------------------------------------------------
# DynOPool
# --------------------------------------------------------------------------------------------------
def dynopool_by_grid_sample(torch, x, alpha, aggregate="max"):
    """DynOPool (docs/dynopool.rst) from ``grid_sample(padding_mode="border", align_corners=False)``.

    ``x`` is a (N, C, H, W) or (C, H, W) tensor and ``alpha`` a tensor of shape (2,); gradients
    reach both. The output size is straight-through: its value is ``max(1, round(L / alpha))`` and
    its derivative that of ``L / alpha``. Each axis gets two query lines per output line,
    ``u = (i + 1/4 + a/2) * L / size - 1/2`` in pixel coordinates, mapped to grid coordinates
    ``(u + 1/2) * 2 / L - 1``; the four points of each output cell are reduced by max or mean.
    float16 input is computed in float32 (a float16 grid would move the query points by up to
    ``L / 2048`` pixels), as poolref accumulates it.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import dynopool_by_grid_sample
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> dynopool_by_grid_sample(torch, x, torch.tensor([2.0, 2.0]))
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    x, batched = _as_batched(x)
    dtype = x.dtype
    if dtype == torch.float16:
        x, alpha = x.float(), alpha.float()
    N, C, H, W = x.shape

    def grid_coordinates(length, a):
        continuous = length / a
        out_length = max(1, int(numpy.round(float(continuous.detach()))))
        size = continuous + (out_length - continuous).detach()  # value out_length, derivative of L / a
        i = torch.arange(out_length, dtype=x.dtype, device=x.device)
        half = torch.tensor([0.0, 0.5], dtype=x.dtype, device=x.device)
        phase = (i[:, None] + 0.25 + half[None, :]).reshape(-1)
        u = phase * (length / size) - 0.5
        return out_length, (u + 0.5) * 2 / length - 1

    out_h, grid_y = grid_coordinates(H, alpha[0])
    out_w, grid_x = grid_coordinates(W, alpha[1])
    grid = torch.stack(torch.broadcast_tensors(grid_x[None, :], grid_y[:, None]), -1)
    grid = grid[None].expand(N, -1, -1, -1)
    query = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    points = query.reshape(N, C, out_h, 2, out_w, 2).permute(0, 1, 2, 4, 3, 5).reshape(N, C, out_h, out_w, 4)
    y = (points.max(-1).values if aggregate == "max" else points.mean(-1)).to(dtype)
    return y if batched else y[0]
