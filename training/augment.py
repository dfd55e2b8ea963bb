"""Adaptive discriminator augmentation (ADA), as in "Training Generative Adversarial Networks with
Limited Data" (Karras et al., 2020).

`AugmentPipe` takes the same constructor arguments as NVIDIA's StyleGAN2-ADA pipe and holds the same
buffers (`p`, `Hz_geom`, `Hz_fbank`), so an NVIDIA snapshot's augment_pipe state loads 1:1. Every
transform applied to a given image is drawn with probability (multiplier * p). Geometric transforms
are combined into one inverse homogeneous 2D matrix and executed once (reflect padding, 2x wavelet
upsampling, bilinear resampling, 2x downsampling); colour transforms into one 4x4 matrix. The whole
pipe is differentiable twice w.r.t. its input (R1 through augmented reals), on every PyTorch >= 2.4.

`AdaController` is the ADA heuristic: every `interval` steps it nudges p by
sign(E[sign(D(real))] - target) * batch_size * interval / (kimg * 1000).
"""
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import persistence

#----------------------------------------------------------------------------
# Presets, same names and meanings as NVIDIA's train.py --augpipe.

_BLIT   = dict(xflip=1, rotate90=1, xint=1)
_GEOM   = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR  = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
_FILTER = dict(imgfilter=1)
_NOISE  = dict(noise=1)
_CUTOUT = dict(cutout=1)

AUGPIPE_SPECS = {
    'blit':   dict(_BLIT),
    'geom':   dict(_GEOM),
    'color':  dict(_COLOR),
    'filter': dict(_FILTER),
    'noise':  dict(_NOISE),
    'cutout': dict(_CUTOUT),
    'bg':     dict(**_BLIT, **_GEOM),
    'bgc':    dict(**_BLIT, **_GEOM, **_COLOR),
    'bgcf':   dict(**_BLIT, **_GEOM, **_COLOR, **_FILTER),
    'bgcfn':  dict(**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE),
    'bgcfnc': dict(**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT),
}

#----------------------------------------------------------------------------
# Wavelet low-pass filters, computed from their definition instead of copied from a table.

def symlet_lowpass(n: int) -> np.ndarray:
    """Decomposition low-pass filter of the symlet with `n` vanishing moments (2n taps, sum sqrt(2)).

    Daubechies' construction: H(z) = ((1 + z^-1) / 2)^n Q(z) with |Q|^2 = P(sin^2(w/2)),
    P(y) = sum_k C(n-1+k, k) y^k. Each root y of P gives a reciprocal pair of zeros (z, 1/z) of
    which Q keeps one; symlets keep the combination whose phase is closest to linear. Of the two
    time-reversed optima we return the one whose largest tap comes first (sym6 as in PyWavelets).
    """
    y_roots = np.roots([math.comb(n - 1 + k, k) for k in reversed(range(n))])
    groups = []                                         # [(zeros if inside, zeros if outside)]
    for y in y_roots:
        if y.imag < -1e-9:
            continue                                    # handled with its conjugate
        z = np.roots([1, -(2 - 4 * y), 1])              # sin^2(w/2) = (2 - z - 1/z) / 4 = y
        z_in = z[np.argmin(np.abs(z))]
        pair = [z_in, np.conj(z_in)] if abs(y.imag) > 1e-9 else [z_in.real]
        groups.append((pair, [1 / v for v in pair]))
    w = np.linspace(0, np.pi, 512)[:-1]
    best = None
    for choice in itertools.product([0, 1], repeat=len(groups)):
        zeros = [-1.0] * n + [v for g, c in zip(groups, choice) for v in g[c]]
        h = np.real(np.poly(zeros))
        h = h / h.sum() * np.sqrt(2)
        h = h[::-1] if np.argmax(np.abs(h)) >= n else h # Of a time-reversed pair keep one.
        phase = np.unwrap(np.angle(np.exp(-1j * np.outer(w, np.arange(h.size))) @ h))
        fit = np.polyfit(w, phase, 1, full=True)[1]     # residual of a linear fit to the phase
        if best is None or fit.sum() < best[0]:
            best = (fit.sum(), h)
    return best[1]

#----------------------------------------------------------------------------

def _dilate(h: np.ndarray, factor: int) -> np.ndarray:
    """Insert (factor - 1) zeros between taps: h(z) -> h(z^factor)."""
    out = np.zeros((h.size - 1) * factor + 1)
    out[::factor] = h
    return out


def _center_pad(h: np.ndarray, size: int) -> np.ndarray:
    pad = (size - h.size) // 2
    return np.pad(h, [pad, size - h.size - pad])


def filter_bank(h: np.ndarray, num_bands: int = 4) -> np.ndarray:
    """Zero-phase band-pass filters [num_bands, taps] that sum to an impulse; band 0 is the lowest.

    With lo = H(z)H(1/z)/2 and hi = H(-z)H(-1/z)/2 (lo + hi = 1 for an orthogonal H), band b is hi
    (band 0: lo) at scale 2^k, k = num_bands - 1 - max(b, 1), after the low-passes of all finer scales.
    """
    sign = (-1.0) ** np.arange(h.size)
    lo = np.convolve(h, h[::-1]) / 2
    hi = np.convolve(h * sign, (h * sign)[::-1]) / 2
    bands = []
    for b in range(num_bands):
        k = num_bands - 1 - max(b, 1)
        f = _dilate(hi if b > 0 else lo, 2 ** k)
        for j in range(k):
            f = np.convolve(f, _dilate(lo, 2 ** j))
        bands.append(f)
    size = max(f.size for f in bands)
    return np.stack([_center_pad(f, size) for f in bands])

#----------------------------------------------------------------------------
# Batched homogeneous matrices. Entries are python numbers or tensors of shape [batch].

def _matrix(rows, ref: torch.Tensor) -> torch.Tensor:
    elems = [e if isinstance(e, torch.Tensor) else torch.full_like(ref, e) for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(*ref.shape, len(rows), len(rows[0]))


def translate2d(tx, ty, ref):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], ref)


def scale2d(sx, sy, ref):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], ref)


def rotate2d(theta, ref):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], ref)


def translate3d(tx, ty, tz, ref):
    return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], ref)


def scale3d(sx, sy, sz, ref):
    return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], ref)


def rotate3d(v, theta, ref):
    """Rotation by theta around the unit axis v (Rodrigues), homogeneous 4x4."""
    vx, vy, vz = (float(e) for e in v[:3])
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([
        [vx * vx * cc + c,      vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c,      vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c,      0],
        [0,                     0,                     0,                     1]], ref)

#----------------------------------------------------------------------------
# Bilinear grid_sample (zeros padding, align_corners=False) with a backward pass that is itself
# differentiable w.r.t. the incoming gradient, whatever the PyTorch version. The grid is constant.

class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid):
        ctx.save_for_backward(x, grid)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)

    @staticmethod
    def backward(ctx, dy):
        x, grid = ctx.saved_tensors
        return _GridSampleBackward.apply(dy, x, grid), None


class _GridSampleBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, grid):
        ctx.save_for_backward(grid)
        dx, _ = torch.ops.aten.grid_sampler_2d_backward(dy, x, grid, 0, 0, False, [True, False])
        return dx

    @staticmethod
    def backward(ctx, ddx):
        grid, = ctx.saved_tensors
        # dx is linear in dy with no dependence on x (bilinear sampling is linear in x), so its
        # derivative w.r.t. dy is the forward sampling itself.
        return _GridSample.apply(ddx, grid), None, None


def grid_sample_bilinear(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    assert not grid.requires_grad, 'gradients w.r.t. the sampling grid are not supported'
    return _GridSample.apply(x, grid)

#----------------------------------------------------------------------------
# Separable FIR filtering, same conventions as upfirdn2d: upsample2d convolves, downsample2d
# correlates, so the pair with an orthogonal wavelet composes to the identity.

def _fir_separable(x, f, pad, stride=1):
    """Pad (negative = crop) by (x0, x1, y0, y1), correlate rows and columns with f, then subsample."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    x = F.pad(x, [max(p, 0) for p in pad])
    x0, x1, y0, y1 = (max(-p, 0) for p in pad)
    x = x[:, :, y0:x.shape[2] - y1, x0:x.shape[3] - x1]
    f = f.to(x.dtype)
    x = F.conv2d(x, f.reshape(1, 1, 1, -1), stride=(1, stride))
    x = F.conv2d(x, f.reshape(1, 1, -1, 1), stride=(stride, 1))
    return x.reshape(n, c, x.shape[2], x.shape[3])


def upsample2d(x, f):
    """2x upsampling: zero insertion then convolution with 2f per axis; [N,C,H,W] -> [N,C,2H,2W]."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, h * 2, w * 2)
    k = f.numel()
    p0, p1 = (k + 1) // 2, (k - 2) // 2
    return _fir_separable(x, f.flip(0) * 2, [p0, p1, p0, p1])


def downsample2d(x, f, crop=0):
    """2x downsampling: correlation with f per axis, keeping every other sample, after cropping."""
    k = f.numel()
    p0, p1 = (k - 1) // 2 - crop, (k - 2) // 2 - crop
    return _fir_separable(x, f, [p0, p1, p0, p1], stride=2)

#----------------------------------------------------------------------------

@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """ADA augmentation pipe; every probability multiplier is 0 (off) by default."""

    def __init__(self,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,
        scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5,
        hue_max=1, saturation_std=1,
        imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1,
        noise=0, cutout=0, noise_std=0.1, cutout_size=0.5,
    ):
        super().__init__()
        self.register_buffer('p', torch.ones([]))       # Overall augmentation probability (ADA's p).

        # Pixel blitting.
        self.xflip          = float(xflip)              # Probability multiplier for x-flip.
        self.rotate90       = float(rotate90)           # Probability multiplier for 90 degree rotations.
        self.xint           = float(xint)               # Probability multiplier for integer translation.
        self.xint_max       = float(xint_max)           # Integer translation range, relative to image size.

        # General geometric transforms.
        self.scale          = float(scale)              # Probability multiplier for isotropic scaling.
        self.rotate         = float(rotate)             # Probability multiplier for arbitrary rotation.
        self.aniso          = float(aniso)              # Probability multiplier for anisotropic scaling.
        self.xfrac          = float(xfrac)              # Probability multiplier for fractional translation.
        self.scale_std      = float(scale_std)          # Log2 std of isotropic scaling.
        self.rotate_max     = float(rotate_max)         # Rotation range, 1 = full circle.
        self.aniso_std      = float(aniso_std)          # Log2 std of anisotropic scaling.
        self.xfrac_std      = float(xfrac_std)          # Std of fractional translation, relative to image size.

        # Colour transforms.
        self.brightness     = float(brightness)         # Probability multiplier for brightness.
        self.contrast       = float(contrast)           # Probability multiplier for contrast.
        self.lumaflip       = float(lumaflip)           # Probability multiplier for luma flip.
        self.hue            = float(hue)                # Probability multiplier for hue rotation.
        self.saturation     = float(saturation)         # Probability multiplier for saturation.
        self.brightness_std = float(brightness_std)     # Std of brightness offset.
        self.contrast_std   = float(contrast_std)       # Log2 std of contrast.
        self.hue_max        = float(hue_max)            # Hue rotation range, 1 = full circle.
        self.saturation_std = float(saturation_std)     # Log2 std of saturation.

        # Image-space filtering.
        self.imgfilter       = float(imgfilter)         # Probability multiplier for band amplification.
        self.imgfilter_bands = [float(b) for b in imgfilter_bands] # Multipliers per frequency band.
        self.imgfilter_std   = float(imgfilter_std)     # Log2 std of band amplification.

        # Image-space corruptions.
        self.noise          = float(noise)              # Probability multiplier for additive RGB noise.
        self.cutout         = float(cutout)             # Probability multiplier for cutout.
        self.noise_std      = float(noise_std)          # Std of the noise's std.
        self.cutout_size    = float(cutout_size)        # Cutout square side, relative to image size.

        h_geom = symlet_lowpass(6)                      # Orthogonal low-pass for geometric resampling.
        self.register_buffer('Hz_geom', torch.as_tensor(h_geom / h_geom.sum(), dtype=torch.float32))
        self.register_buffer('Hz_fbank', torch.as_tensor(filter_bank(symlet_lowpass(2)), dtype=torch.float32))

    def extra_repr(self):
        on = [k for k in ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness',
              'contrast', 'lumaflip', 'hue', 'saturation', 'imgfilter', 'noise', 'cutout') if getattr(self, k) > 0]
        return f'p={float(self.p):g}, enabled=[{", ".join(on)}]'

    def forward(self, images: torch.Tensor, debug_percentile=None) -> torch.Tensor:
        """Augment float images [N, C, H, W] (C = 1 or 3). `debug_percentile` in [0, 1) replaces every
        random parameter by that quantile of its distribution and applies every enabled transform."""
        if not (isinstance(images, torch.Tensor) and images.ndim == 4):
            raise ValueError(f'expected images of shape [N, C, H, W], got {getattr(images, "shape", type(images))}')
        if debug_percentile is None and float(self.p) <= 0:
            return images                               # p = 0: exactly the identity.
        c = images.shape[1]
        if c not in (1, 3) and self._any_color():
            raise ValueError(f'colour augmentation needs 1 or 3 channels, got {c}')
        images = self._geometric(images, debug_percentile)
        images = self._color(images, debug_percentile)
        images = self._filter(images, debug_percentile)
        images = self._corrupt(images, debug_percentile)
        return images

    def _any_color(self):
        return max(self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation) > 0

    def _draw(self, prob, values, neutral, debug_value, debug):
        """Per image, keep `values` [N, ...] with probability `prob`, else `neutral` (the identity).
        In debug mode return `debug_value` everywhere instead."""
        keep = torch.rand([values.shape[0]], device=values.device) < prob
        keep = keep.reshape([-1] + [1] * (values.ndim - 1))
        values = torch.where(keep, values, torch.full_like(values, neutral))
        return torch.full_like(values, float(debug_value)) if debug else values

    #------------------------------------------------------------------------

    def _geometric(self, images, dp):
        n, c, h, w = images.shape
        device, dtype, rand, randn, dbg, q, gauss = _draw_tools(images, dp)
        ref = torch.zeros([n], device=device, dtype=dtype)
        G_inv = torch.eye(3, device=device, dtype=dtype).expand(n, 3, 3)
        active = False                                  # G_inv @ output pixel = input pixel.

        if self.xflip > 0:
            i = self._draw(self.xflip * self.p, torch.floor(rand(n) * 2), 0, math.floor(q * 2), dbg).to(dtype)
            G_inv, active = G_inv @ scale2d(1 - 2 * i, 1, ref), True
        if self.rotate90 > 0:
            i = self._draw(self.rotate90 * self.p, torch.floor(rand(n) * 4), 0, math.floor(q * 4), dbg).to(dtype)
            G_inv, active = G_inv @ rotate2d(np.pi / 2 * i, ref), True
        if self.xint > 0:
            t = (rand(n, 2) * 2 - 1) * self.xint_max
            t = self._draw(self.xint * self.p, t, 0, (q * 2 - 1) * self.xint_max, dbg).to(dtype)
            G_inv, active = G_inv @ translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), ref), True
        if self.scale > 0:
            s = torch.exp2(randn(n) * self.scale_std)
            s = self._draw(self.scale * self.p, s, 1, 2 ** gauss(self.scale_std), dbg).to(dtype)
            G_inv, active = G_inv @ scale2d(1 / s, 1 / s, ref), True
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1)) # P(pre or post rotation) = rotate * p.
        if self.rotate > 0:                             # Rotation before anisotropic scaling.
            theta = (rand(n) * 2 - 1) * np.pi * self.rotate_max
            theta = self._draw(p_rot, theta, 0, (q * 2 - 1) * np.pi * self.rotate_max, dbg).to(dtype)
            G_inv, active = G_inv @ rotate2d(theta, ref), True
        if self.aniso > 0:
            s = torch.exp2(randn(n) * self.aniso_std)
            s = self._draw(self.aniso * self.p, s, 1, 2 ** gauss(self.aniso_std), dbg).to(dtype)
            G_inv, active = G_inv @ scale2d(1 / s, s, ref), True
        if self.rotate > 0:                             # Rotation after anisotropic scaling.
            theta = (rand(n) * 2 - 1) * np.pi * self.rotate_max
            theta = self._draw(p_rot, theta, 0, 0, dbg).to(dtype)
            G_inv, active = G_inv @ rotate2d(theta, ref), True
        if self.xfrac > 0:
            t = randn(n, 2) * self.xfrac_std
            t = self._draw(self.xfrac * self.p, t, 0, gauss(self.xfrac_std), dbg).to(dtype)
            G_inv, active = G_inv @ translate2d(-t[:, 0] * w, -t[:, 1] * h, ref), True
        return self._resample(images, G_inv) if active else images

    def _resample(self, images, G_inv):
        """Warp by the inverse matrix G_inv [N, 3, 3] (pixel units, origin at the image centre)."""
        n, c, h, w = images.shape
        dtype, device = G_inv.dtype, G_inv.device
        one = torch.ones([], dtype=dtype, device=device)
        f = self.Hz_geom.to(images.dtype)
        pad = self.Hz_geom.numel() // 4

        # Reflect-pad enough that the warped output (plus filter support) only reads real pixels.
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], dtype=dtype, device=device)
        reach = (G_inv @ corners)[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * corners]
        margin = torch.cat([-reach, reach]).amax(dim=1)                   # [x0, y0, x1, y1]
        margin = margin + torch.tensor([2 * pad - cx, 2 * pad - cy] * 2, dtype=dtype, device=device)
        margin = torch.minimum(margin.clamp(min=0), torch.tensor([w - 1, h - 1] * 2, dtype=dtype, device=device))
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())
        images = F.pad(images, [mx0, mx1, my0, my1], mode='reflect')
        G_inv = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, one) @ G_inv

        # Upsample 2x; pixel centres of the fine grid sit half a fine pixel off the coarse ones.
        images = upsample2d(images, f)
        G_inv = scale2d(2, 2, one) @ G_inv @ scale2d(0.5, 0.5, one)
        G_inv = translate2d(-0.5, -0.5, one) @ G_inv @ translate2d(0.5, 0.5, one)

        # Resample in normalised coordinates, then downsample 2x and crop the filter margin.
        out_h, out_w = (h + pad * 2) * 2, (w + pad * 2) * 2
        G_inv = scale2d(2 / images.shape[3], 2 / images.shape[2], one) @ G_inv @ scale2d(out_w / 2, out_h / 2, one)
        grid = F.affine_grid(G_inv[:, :2, :], [n, c, out_h, out_w], align_corners=False)
        images = grid_sample_bilinear(images, grid.to(images.dtype))
        return downsample2d(images, f, crop=pad * 2)

    #------------------------------------------------------------------------

    def _color(self, images, dp):
        n, c, h, w = images.shape
        device, dtype, rand, randn, dbg, q, gauss = _draw_tools(images, dp)
        ref = torch.zeros([n], device=device, dtype=dtype)
        I_4 = torch.eye(4, device=device, dtype=dtype)
        C = I_4.expand(n, 4, 4)                         # C @ colour_in = colour_out (homogeneous RGB).
        active = False

        if self.brightness > 0:
            b = self._draw(self.brightness * self.p, randn(n) * self.brightness_std, 0, gauss(self.brightness_std), dbg)
            b = b.to(dtype)
            C, active = translate3d(b, b, b, ref) @ C, True
        if self.contrast > 0:
            s = torch.exp2(randn(n) * self.contrast_std)
            s = self._draw(self.contrast * self.p, s, 1, 2 ** gauss(self.contrast_std), dbg).to(dtype)
            C, active = scale3d(s, s, s, ref) @ C, True
        v = torch.tensor([1, 1, 1, 0], device=device, dtype=dtype) / np.sqrt(3) # Luma axis.
        vv = torch.outer(v, v)
        if self.lumaflip > 0:
            i = self._draw(self.lumaflip * self.p, torch.floor(rand(n) * 2), 0, math.floor(q * 2), dbg).to(dtype)
            C, active = (I_4 - 2 * vv * i.reshape(n, 1, 1)) @ C, True      # Householder reflection of luma.
        if self.hue > 0 and c > 1:
            theta = (rand(n) * 2 - 1) * np.pi * self.hue_max
            theta = self._draw(self.hue * self.p, theta, 0, (q * 2 - 1) * np.pi * self.hue_max, dbg).to(dtype)
            C, active = rotate3d(v.tolist(), theta, ref) @ C, True         # Rotation around the luma axis.
        if self.saturation > 0 and c > 1:
            s = torch.exp2(randn(n) * self.saturation_std)
            s = self._draw(self.saturation * self.p, s, 1, 2 ** gauss(self.saturation_std), dbg).to(dtype)
            C, active = (vv + (I_4 - vv) * s.reshape(n, 1, 1)) @ C, True   # Scale chroma, keep luma.
        if not active:
            return images

        C = C.to(images.dtype)
        x = images.reshape(n, c, h * w)
        if c == 3:
            x = C[:, :3, :3] @ x + C[:, :3, 3:]
        else:                                           # Grey: the mean of the RGB rows acting on (L, L, L).
            C = C[:, :3, :].mean(dim=1, keepdim=True)
            x = x * C[:, :, :3].sum(dim=2, keepdim=True) + C[:, :, 3:]
        return x.reshape(n, c, h, w)

    #------------------------------------------------------------------------

    def _filter(self, images, dp):
        if self.imgfilter <= 0:
            return images
        n, c, h, w = images.shape
        device = images.device
        num_bands = self.Hz_fbank.shape[0]
        if len(self.imgfilter_bands) != num_bands:
            raise ValueError(f'imgfilter_bands needs {num_bands} entries, got {len(self.imgfilter_bands)}')
        dbg, q = dp is not None, (0.0 if dp is None else float(dp))
        expected_power = torch.tensor([10] + [1] * (num_bands - 1), device=device, dtype=torch.float32)
        expected_power = expected_power / expected_power.sum()          # 1/f-like spectrum of images.
        g = torch.ones([n, num_bands], device=device)   # Gain per band.
        for i, band_strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(torch.randn([n], device=device) * self.imgfilter_std)
            debug_value = 2 ** (_erfinv(q * 2 - 1) * self.imgfilter_std) if band_strength > 0 else 1
            t_i = self._draw(self.imgfilter * self.p * band_strength, t_i, 1, debug_value, dbg)
            t = torch.where(torch.arange(num_bands, device=device) == i, t_i[:, None], torch.ones_like(g))
            g = g * t / (expected_power * t.square()).sum(dim=-1, keepdim=True).sqrt() # Keep the power.
        taps = (g @ self.Hz_fbank).to(images.dtype)     # [N, taps], one zero-phase filter per image.
        taps = taps.repeat_interleave(c, dim=0).unsqueeze(1)            # [N * C, 1, taps]
        r = self.Hz_fbank.shape[1] // 2
        x = F.pad(images.reshape(1, n * c, h, w), [r, r, r, r], mode='reflect')
        x = F.conv2d(x, taps.unsqueeze(2), groups=n * c)
        x = F.conv2d(x, taps.unsqueeze(3), groups=n * c)
        return x.reshape(n, c, h, w)

    #------------------------------------------------------------------------

    def _corrupt(self, images, dp):
        n, c, h, w = images.shape
        device = images.device
        dbg, q = dp is not None, (0.0 if dp is None else float(dp))
        if self.noise > 0:
            sigma = torch.randn([n, 1, 1, 1], device=device).abs() * self.noise_std
            sigma = self._draw(self.noise * self.p, sigma, 0, _erfinv(q) * self.noise_std, dbg)
            images = images + (torch.randn([n, c, h, w], device=device) * sigma).to(images.dtype)
        if self.cutout > 0:
            size = torch.full([n, 2, 1, 1, 1], self.cutout_size, device=device)
            size = self._draw(self.cutout * self.p, size, 0, self.cutout_size, dbg)
            center = torch.rand([n, 2, 1, 1, 1], device=device)
            if dbg:
                center = torch.full_like(center, q)
            x = (torch.arange(w, device=device).reshape(1, 1, 1, -1) + 0.5) / w
            y = (torch.arange(h, device=device).reshape(1, 1, -1, 1) + 0.5) / h
            outside = ((x - center[:, 0]).abs() >= size[:, 0] / 2) | ((y - center[:, 1]).abs() >= size[:, 1] / 2)
            images = images * outside.to(images.dtype)
        return images

#----------------------------------------------------------------------------

def _draw_tools(images, dp):
    """(device, dtype, rand, randn, debug, q, gauss) for one batch: float32 uniform/normal draws, the matrix
    dtype (float64 for float64 images), q = debug_percentile (0 when None) and gauss(std) = its quantile of N(0, std^2)."""
    device = images.device
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    rand = lambda *s: torch.rand(s, device=device, dtype=torch.float32)
    randn = lambda *s: torch.randn(s, device=device, dtype=torch.float32)
    q = 0.0 if dp is None else float(dp)
    gauss = lambda std: _erfinv(q * 2 - 1) * std
    return device, dtype, rand, randn, dp is not None, q, gauss


def _erfinv(v: float) -> float:
    return float(torch.erfinv(torch.tensor(v, dtype=torch.float64)))

#----------------------------------------------------------------------------

class AdaController:
    """ADA's p heuristic (Karras et al. 2020, Sec. 2.3): r_t = E[sign(D(real))] over `interval` steps,
    p <- clamp(p + sign(r_t - target) * batch_size * interval / (kimg * 1000), 0, 1)."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500, batch_size: int = 1):
        if not 0 <= target <= 1:
            raise ValueError(f'ADA target must lie in [0, 1], got {target}')
        if interval < 1 or kimg <= 0 or batch_size < 1:
            raise ValueError('ADA interval and batch_size must be >= 1 and kimg > 0')
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.batch_size = int(batch_size)               # Global batch (all GPUs together).
        self.num_steps = 0
        self.last_rt = None                             # Latest r_t, for logging.
        self.last_nimg = None
        self._acc = None                                # [sum of signs, count] on the logits' device.

    def accumulate(self, real_logits_sign: torch.Tensor):
        """Add D's outputs on reals (signs or raw logits; only their sign is used)."""
        s = torch.sign(real_logits_sign.detach().to(torch.float64)).flatten()
        stats = torch.stack([s.sum(), torch.tensor(float(s.numel()), dtype=torch.float64, device=s.device)])
        self._acc = stats if self._acc is None else self._acc + stats

    def update(self, augment_pipe: torch.nn.Module, cur_nimg: int) -> bool:
        """Call once per training step. Every `interval`-th call moves augment_pipe.p; returns whether
        it did. Under torch.distributed every rank must call it (the sums are all-reduced)."""
        self.num_steps += 1
        if self.num_steps % self.interval != 0:
            return False
        acc = self._acc if self._acc is not None else torch.zeros([2], dtype=torch.float64, device=augment_pipe.p.device)
        acc = acc.to(augment_pipe.p.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(acc)           # Sum of signs and counts over all ranks.
        self._acc = None
        self.last_nimg = int(cur_nimg)
        if float(acc[1]) == 0:
            return False
        rt = acc[0] / acc[1]                            # r_t = E[sign(D(x_real))].
        self.last_rt = float(rt)
        adjust = torch.sign(rt - self.target) * (self.batch_size * self.interval) / (self.kimg * 1000)
        with torch.no_grad():
            augment_pipe.p.copy_((augment_pipe.p + adjust.to(augment_pipe.p.dtype)).clamp(0, 1))
        return True

#----------------------------------------------------------------------------
