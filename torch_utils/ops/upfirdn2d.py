"""Upsample, pad, FIR-filter and downsample batches of 2-D images (StyleGAN2 semantics).

`upfirdn2d` performs, per channel: (1) insert `up - 1` zeros after every pixel, (2) pad with zeros
(negative padding crops), (3) convolve with the FIR filter `f`, keeping only outputs whose footprint
lies inside the padded image, (4) keep every `down`-th pixel. Close to `scipy.signal.upfirdn` in 2-D.
`_upfirdn2d_ref` (pure PyTorch, gradients of any order) is the reference. A fused Triton kernel
(`fused.py`, `triton_kernels.py`) replaces it when the fused ops are switched on, the tensors are on a
GPU, and the kernel passed its self-check against the reference for this configuration;
`impl='ref'` always takes the reference path.
"""
import weakref

import torch

from . import fused

#----------------------------------------------------------------------------

def _parse_scaling(scaling):
    """int or [x, y] -> (sx, sy), both >= 1."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f'upfirdn2d: scaling factors must be >= 1, got {scaling}')
    return sx, sy


def _parse_padding(padding):
    """int, [x, y] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    if len(padding) != 4:
        raise ValueError(f'upfirdn2d: padding must have 1, 2 or 4 entries, got {padding}')
    return tuple(padding)


def _get_filter_size(f):
    """(width, height) of a prepared filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError('upfirdn2d: filter must be a 1-D or 2-D tensor prepared by setup_filter()')
    return int(f.shape[-1]), int(f.shape[0])

def output_size(h, w, up, down, pad, fw, fh):
    """(out_h, out_w) of upfirdn2d for an h x w input; up/down (x, y), pad (x0, x1, y0, y1)."""
    return (h * up[1] + pad[2] + pad[3] - fh) // down[1] + 1, (w * up[0] + pad[0] + pad[1] - fw) // down[0] + 1

#----------------------------------------------------------------------------

def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    """Prepare a FIR filter for `upfirdn2d`: float32, 1-D (separable) or 2-D.

    f: list / array / tensor of shape [taps] or [h, w], a scalar (impulse), or None (identity).
    A 1-D filter becomes the 2-D outer product unless `separable` (default: only when >= 8 taps).
    normalize: divide by the sum (DC gain 1); flip_filter: flip all axes; gain: overall signal gain.
    """
    f = torch.as_tensor(1 if f is None else f, dtype=torch.float32)
    if f.ndim > 2 or f.numel() == 0:
        raise ValueError(f'setup_filter: expected a scalar, 1-D or 2-D non-empty filter, got shape {list(f.shape)}')
    if f.ndim == 0:
        f = f.reshape(1)
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError('setup_filter: a 2-D filter cannot be made separable')
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))  # a separable filter is applied twice, so each pass gets sqrt(gain)
    return f.to(device=device)

#----------------------------------------------------------------------------

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Upsample (zero insertion), pad, FIR-filter and downsample `x` of shape [N, C, H, W].

    f:           Filter from `setup_filter` ([h, w] or separable [taps]), or None (identity).
    up, down:    int or [x, y] integer factors.
    padding:     int, [x, y] or [x0, x1, y0, y1], relative to the upsampled image; negative crops.
    flip_filter: False = true convolution, True = correlation.
    gain:        Overall signal gain.
    Output size along x: (W * up + x0 + x1 - fw) // down + 1.
    impl:        'auto' (default; 'cuda' is the same, as in NVIDIA's code): the fused kernel where it
                 applies (see module doc), else the reference; 'ref': always the reference.
    """
    if impl not in ('auto', 'cuda', 'ref'):
        raise ValueError(f'upfirdn2d: impl must be "auto", "cuda" or "ref", got {impl!r}')
    if impl != 'ref' and _fusable(x, f):
        return _upfirdn2d_fused(x, f, up, down, padding, flip_filter, gain)
    return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

#----------------------------------------------------------------------------

def _fusable(x, f):
    if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.is_floating_point() and isinstance(f, torch.Tensor)):
        return False
    if f.ndim not in (1, 2) or f.requires_grad or not fused.applicable(x, f):
        return False
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


_kernel_filters = {}  # (id(f), f._version, flip, gain, device) -> (weakref to f, prepared filter)

def _kernel_filter(f, flip_filter, gain, device):
    """The fused kernel's 2-D float32 filter (flip and gain applied), cached per filter buffer and version."""
    key = (id(f), f._version, bool(flip_filter), float(gain), str(device))
    entry = _kernel_filters.get(key)
    if entry is not None and entry[0]() is f:
        return entry[1]
    with torch.inference_mode(False):  # a cached filter made under inference_mode could not be saved for backward later
        g = (torch.outer(f, f) if f.ndim == 1 else f).detach().to(device=device, dtype=torch.float32) * gain
        g = (g if flip_filter else g.flip([0, 1])).contiguous()
    if len(_kernel_filters) > 256:
        _kernel_filters.clear()
    _kernel_filters[key] = (weakref.ref(f), g)
    return g


def _upfirdn2d_fused(x, f, up, down, padding, flip_filter, gain):
    up, down, pad = _parse_scaling(up), _parse_scaling(down), _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    if min(output_size(x.shape[2], x.shape[3], up, down, pad, fw, fh)) <= 0:
        return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)  # its error
    g = _kernel_filter(f, flip_filter, gain, x.device)
    key = ('upfirdn2d', up, down, pad, tuple(g.shape), x.dtype, x.is_contiguous())
    kernels = fused.kernels()
    fast = lambda x_: kernels.UpFirDn2d.apply(x_, g, up, down, pad)
    ref = lambda x_: _upfirdn2d_ref(x_, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    if not fused.passed_self_check(key, fast, ref, (x,)):
        return ref(x)
    return fast(x)

#----------------------------------------------------------------------------

def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError('upfirdn2d: input must be a 4-D tensor [N, C, H, W]')
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    _get_filter_size(f)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape

    # Zero insertion: every pixel is followed by up-1 zeros along each axis.
    if upx > 1 or upy > 1:
        x = x.reshape([n, c, h, 1, w, 1])
        x = torch.nn.functional.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([n, c, h * upy, w * upx])

    # Pad (positive) then crop (negative).
    x = torch.nn.functional.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # Depthwise filtering; conv2d correlates, so flip the filter for a true convolution.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = torch.nn.functional.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = torch.nn.functional.conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
        x = torch.nn.functional.conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), groups=c)

    # Decimate.
    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x

#----------------------------------------------------------------------------

def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Filter with `f`; output has the input's size plus `padding` (relative to the output)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------

def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Upsample by `up` with `f`; output size is `up` times the input plus `padding`. DC gain kept."""
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)

#----------------------------------------------------------------------------

def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Downsample by `down` with `f`; output size is the input divided by `down`, plus `padding`."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
