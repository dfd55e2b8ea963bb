"""2-D convolution with optional FIR up/downsampling (StyleGAN2 semantics).

Definition (what every path below computes, and what tests compare against):
    y = down_f( conv_w( up_f( pad(x) ) ) )
with `up_f` = zero insertion by `up` + FIR filter `f` with gain up**2 (skipped when up == 1), `conv_w` a
'valid' convolution, `down_f` = FIR filter `f` + keep every `down`-th pixel (skipped when down == 1),
and all padding applied once, at the start, relative to the upsampled image. FIR filtering and the
convolution commute, which is what lets the fast paths reorder them.
"""
import torch

from . import upfirdn2d
from .upfirdn2d import _get_filter_size, _parse_padding

#----------------------------------------------------------------------------

def _conv2d(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d / conv_transpose2d; flip_weight=True is correlation (torch's conv2d), False convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return torch.nn.functional.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return torch.nn.functional.conv2d(x, w, stride=stride, padding=padding, groups=groups)

#----------------------------------------------------------------------------

def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """Convolve x [N, C_in, H, W] with w [C_out, C_in // groups, kh, kw], resampling with filter f.

    f:           Filter from `upfirdn2d.setup_filter`, or None (identity).
    up, down:    Integer factors.
    padding:     int, [x, y] or [x0, x1, y0, y1], relative to the upsampled image.
    flip_weight: True = correlation (as torch.nn.functional.conv2d), False = convolution.
    flip_filter: False = convolution with f, True = correlation.
    """
    if not (isinstance(x, torch.Tensor) and x.ndim == 4 and isinstance(w, torch.Tensor) and w.ndim == 4):
        raise ValueError('conv2d_resample: x and w must be 4-D tensors')
    if w.dtype != x.dtype:
        raise ValueError(f'conv2d_resample: weight dtype {w.dtype} differs from input dtype {x.dtype}')
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1 and isinstance(groups, int) and groups >= 1):
        raise ValueError(f'conv2d_resample: up, down, groups must be positive ints, got {up}, {down}, {groups}')
    out_channels, in_channels_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Extra padding so the FIR filter keeps the resampled size a multiple of the input size.
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1, py0, py1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # 1x1 kernel: the convolution is per-pixel, so resample on the cheaper side of it.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: filter (with padding), then a strided convolution does the decimation.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a strided transposed convolution does zero insertion + a full convolution, i.e.
    # the definition with padding (kw-1, kw-up) already applied; the rest of the padding (or cropping)
    # goes to the FIR filter that follows. Transposed conv swaps the roles of in/out channels per group.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt = max(min(-px0, -px1), 0)  # crop done inside conv_transpose2d, symmetric part only
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling, symmetric non-negative padding: plain conv2d.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case: the definition, step by step.
    x = upfirdn2d.upfirdn2d(x, None, padding=pad)
    return _conv2d(x, w, groups=groups, flip_weight=flip_weight)

#----------------------------------------------------------------------------
