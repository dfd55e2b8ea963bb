"""ADA augmentation: each transform's effect, p semantics, derivatives, filters and the p controller."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_utils import persistence
from training.augment import (AUGPIPE_SPECS, AdaController, AugmentPipe, filter_bank, grid_sample_bilinear,
                              symlet_lowpass)

#----------------------------------------------------------------------------



def _images(n=2, c=3, h=16, w=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn([n, c, h, w], generator=g, dtype=dtype)


def _ramp(h, w, axis):
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    r = (x - (w - 1) / 2) if axis == 'x' else (y - (h - 1) / 2)
    return r.expand(1, 1, h, w).clone()

#----------------------------------------------------------------------------
# Construction, presets, buffers.

def test_presets_have_nvidia_meanings():
    assert set(AUGPIPE_SPECS) == {'blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg', 'bgc', 'bgcf', 'bgcfn', 'bgcfnc'}
    assert AUGPIPE_SPECS['blit'] == dict(xflip=1, rotate90=1, xint=1)
    assert AUGPIPE_SPECS['bgc'] == {**AUGPIPE_SPECS['blit'], **AUGPIPE_SPECS['geom'], **AUGPIPE_SPECS['color']}
    assert AUGPIPE_SPECS['bgcfnc'] == {**AUGPIPE_SPECS['bgc'], 'imgfilter': 1, 'noise': 1, 'cutout': 1}


def test_state_dict_and_spec_round_trip():
    pipe = AugmentPipe(**AUGPIPE_SPECS['bgc'])
    sd = pipe.state_dict()
    assert list(sd) == ['p', 'Hz_geom', 'Hz_fbank']         # Same buffers as NVIDIA's augment_pipe.
    assert sd['p'].shape == () and sd['Hz_geom'].shape == (12,) and sd['Hz_fbank'].shape == (4, 43)
    spec = persistence.module_spec(pipe)
    assert spec['class_name'] == 'training.augment.AugmentPipe' and spec['init_kwargs']['hue'] == 1
    clone = AugmentPipe(**spec['init_kwargs'])
    sd['p'] = torch.tensor(0.37)
    clone.load_state_dict(sd)
    assert float(clone.p) == pytest.approx(0.37) and clone.xflip == 1 and clone.imgfilter == 0


def test_symlet_filters_from_definition():
    for n in (2, 4, 6):
        h = symlet_lowpass(n)
        assert h.size == 2 * n and h.sum() == pytest.approx(math.sqrt(2))
        for k in range(n):                                  # Orthonormal to its even shifts.
            assert np.dot(h[:h.size - 2 * k], h[2 * k:]) == pytest.approx(float(k == 0), abs=1e-10)
        hi = h * (-1.0) ** np.arange(h.size)
        for m in range(n):                                  # n vanishing moments of the high-pass.
            assert np.dot(hi, np.arange(h.size) ** m) == pytest.approx(0, abs=1e-7 * 10 ** m)
    h6 = symlet_lowpass(6)                                  # PyWavelets' orientation of sym6.
    assert np.argmax(np.abs(h6)) == 5 and h6[5] == pytest.approx(0.78764, abs=1e-5)


def test_filter_bank_splits_an_impulse():
    fb = filter_bank(symlet_lowpass(2))
    assert fb.shape == (4, 43)
    impulse = np.zeros(43)
    impulse[21] = 1
    np.testing.assert_allclose(fb.sum(axis=0), impulse, atol=1e-12)
    np.testing.assert_allclose(fb, fb[:, ::-1], atol=1e-12)  # Zero phase.
    assert fb[0].sum() == pytest.approx(1) and np.abs(fb[1:].sum(axis=1)).max() < 1e-12

#----------------------------------------------------------------------------
# p semantics.

def test_p_zero_is_exact_identity():
    pipe = AugmentPipe(**AUGPIPE_SPECS['bgcfnc'])
    pipe.p.zero_()
    x = _images(h=32, w=32)
    assert torch.equal(pipe(x), x)


@pytest.mark.parametrize('dtype,c,h,w', [(torch.float32, 3, 16, 16), (torch.float64, 1, 12, 20), (torch.float32, 1, 24, 24)])
def test_shape_and_dtype_preserved(dtype, c, h, w):
    spec = 'bgcfnc' if h >= 22 else 'bgc'                   # Image filtering needs 22+ pixels.
    pipe = AugmentPipe(**AUGPIPE_SPECS[spec])
    y = pipe(_images(c=c, h=h, w=w, dtype=dtype))
    assert y.shape == (2, c, h, w) and y.dtype == dtype and torch.isfinite(y).all()


def test_fraction_flipped_follows_p():
    pipe = AugmentPipe(xflip=1)
    x = _ramp(4, 4, 'x').float().expand(4000, 1, 4, 4)
    for p in (1.0, 0.4):
        pipe.p.fill_(p)
        torch.manual_seed(0)
        y = pipe(x)
        flipped = (y[:, 0, :, 0] > 0).all(dim=1)
        kept = (y[:, 0, :, 0] < 0).all(dim=1)
        assert bool((flipped | kept).all())
        assert flipped.float().mean().item() == pytest.approx(p / 2, abs=0.03) # Flip w.p. 1/2 when drawn.


def test_unsupported_input_is_rejected():
    with pytest.raises(ValueError, match='1 or 3 channels'):
        AugmentPipe(brightness=1)(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r'\[N, C, H, W\]'):
        AugmentPipe(xflip=1)(torch.zeros(2, 8, 8))

#----------------------------------------------------------------------------
# Geometric transforms, one at a time (debug_percentile fixes every random parameter).

def _smooth(n=2, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.randn([n, c, 4, 4], generator=g), size=(size, size), mode='bicubic', align_corners=False)


# Like NVIDIA's PyTorch pipe, flips and quarter turns go through the sym6 resampler with everything else;
# sym6 is only nearly symmetric, so mirrored content comes out shifted by ~0.1 px and slightly filtered.
BLIT_ATOL = 0.15


def test_xflip_flips():
    x = _smooth()
    y = AugmentPipe(xflip=1)(x, debug_percentile=0.75)
    torch.testing.assert_close(y, x.flip(3), atol=BLIT_ATOL, rtol=0)
    assert (y - x).abs().max() > 10 * BLIT_ATOL
    torch.testing.assert_close(AugmentPipe(xflip=1)(x, debug_percentile=0.25), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize('k', [1, 2, 3])
def test_rotate90_rotates(k):
    x = _smooth()
    y = AugmentPipe(rotate90=1)(x, debug_percentile=(k + 0.5) / 4)
    torch.testing.assert_close(y, torch.rot90(x, k, dims=[2, 3]), atol=BLIT_ATOL, rtol=0)


def test_arbitrary_rotation_by_quarter_turn_equals_rotate90():
    x = _images()
    y = AugmentPipe(rotate=1)(x, debug_percentile=0.75)     # theta = (2q - 1) * pi = pi / 2.
    torch.testing.assert_close(y, AugmentPipe(rotate90=1)(x, debug_percentile=0.3), atol=1e-5, rtol=0)


def test_integer_translation_shifts():
    x = _images()
    y = AugmentPipe(xint=1, xint_max=0.125)(x, debug_percentile=0.99) # round(0.98 * 0.125 * 16) = 2 px.
    torch.testing.assert_close(y[:, :, 2:, 2:], x[:, :, :-2, :-2], atol=1e-5, rtol=0)


def test_fractional_translation_zero_and_one_pixel():
    x = _images(h=16, w=16, dtype=torch.float64)
    torch.testing.assert_close(AugmentPipe(xfrac=1)(x, debug_percentile=0.5), x, atol=1e-6, rtol=0)
    q = 0.8
    one_px = 1 / (16 * torch.erfinv(torch.tensor(2 * q - 1.0, dtype=torch.float64)).item()) # t * W = 1 px.
    y = AugmentPipe(xfrac=1, xfrac_std=one_px)(x, debug_percentile=q)
    torch.testing.assert_close(y[:, :, 1:, 1:], x[:, :, :-1, :-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize('kind', ['scale', 'aniso'])
def test_scaling_stretches_a_ramp(kind):
    q = 0.8                                                 # Gaussian quantile z; std = 1/z gives s = 2.
    z = torch.erfinv(torch.tensor(2 * q - 1.0, dtype=torch.float64)).item()
    pipe = AugmentPipe(**{kind: 1, f'{kind}_std': 1 / z})
    for axis in ('x', 'y'):
        ramp = _ramp(32, 32, axis)
        y = pipe(ramp, debug_percentile=q)
        factor = 2 if (kind == 'scale' or axis == 'x') else 0.5 # out(x) = in(x / s_x), out(y) = in(y / s_y).
        dim = 3 if axis == 'x' else 2
        slope = y.diff(dim=dim)[..., 12:19, 12:19]              # Interior: no reflected pixel in reach.
        torch.testing.assert_close(slope, torch.full_like(slope, 1 / factor), atol=1e-3, rtol=0)
        offset = (y - ramp / factor)[..., 12:20, 12:20]         # Sub-pixel delay of sym6, as NVIDIA's.
        assert offset.abs().max() < 0.05

#----------------------------------------------------------------------------
# Colour transforms, one at a time.

def _luma(x):
    return x.mean(dim=1, keepdim=True)


def test_brightness_adds_and_contrast_scales():
    x = _images()
    q = 0.8
    z = torch.erfinv(torch.tensor(2 * q - 1.0)).item()
    torch.testing.assert_close(AugmentPipe(brightness=1)(x, debug_percentile=q), x + z * 0.2, atol=1e-6, rtol=0)
    # NVIDIA's contrast scales around 0, the mid-grey of images in [-1, 1].
    torch.testing.assert_close(AugmentPipe(contrast=1)(x, debug_percentile=q), x * 2 ** (z * 0.5), atol=1e-6, rtol=1e-6)
    grey = x[:, :1]
    torch.testing.assert_close(AugmentPipe(brightness=1)(grey, debug_percentile=q), grey + z * 0.2, atol=1e-6, rtol=0)


def test_lumaflip_negates_luma_and_keeps_chroma():
    x = _images()
    y = AugmentPipe(lumaflip=1)(x, debug_percentile=0.75)
    torch.testing.assert_close(_luma(y), -_luma(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(y - _luma(y), x - _luma(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(AugmentPipe(lumaflip=1)(x[:, :1], debug_percentile=0.75), -x[:, :1], atol=1e-5, rtol=0)


def test_hue_rotates_around_grey_axis():
    x = _images()
    y = AugmentPipe(hue=1)(x, debug_percentile=0.3)
    torch.testing.assert_close(_luma(y), _luma(x), atol=1e-5, rtol=0)
    torch.testing.assert_close((y - _luma(y)).norm(dim=1), (x - _luma(x)).norm(dim=1), atol=1e-5, rtol=0)
    y = AugmentPipe(hue=1)(x, debug_percentile=5 / 6)       # +120 degrees: R -> G -> B -> R.
    torch.testing.assert_close(y, x[:, [2, 0, 1]], atol=1e-5, rtol=0)
    grey = x[:, :1]
    assert torch.equal(AugmentPipe(hue=1)(grey, debug_percentile=0.3), grey)


def test_saturation_scales_chroma_and_keeps_luma():
    x = _images()
    q = 0.8
    s = 2 ** torch.erfinv(torch.tensor(2 * q - 1.0)).item()
    y = AugmentPipe(saturation=1)(x, debug_percentile=q)
    torch.testing.assert_close(_luma(y), _luma(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(y - _luma(y), (x - _luma(x)) * s, atol=1e-5, rtol=0)

#----------------------------------------------------------------------------
# Filtering and corruptions.

def test_imgfilter_with_unit_gains_is_identity_and_band_gain_changes_energy():
    x = _images(h=32, w=32, dtype=torch.float64)
    pipe = AugmentPipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 0])
    torch.testing.assert_close(pipe(x, debug_percentile=0.9), x, atol=1e-6, rtol=0)
    boosted = AugmentPipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1])(x, debug_percentile=0.9) # Boost band 3.
    hi = lambda v: (v[..., 1:, :] - v[..., :-1, :]).square().mean()
    assert hi(boosted) > 1.5 * hi(x)


def test_noise_and_cutout():
    x = torch.ones(2, 3, 16, 16)
    y = AugmentPipe(cutout=1, cutout_size=0.5)(x, debug_percentile=0.5)
    assert y[:, :, 4:12, 4:12].abs().max() == 0 and y.sum().item() == 2 * 3 * (256 - 64)
    torch.manual_seed(0)
    y = AugmentPipe(noise=1)(x)
    assert (y - x).abs().max() > 0 and (y - x).abs().mean() < 0.5

#----------------------------------------------------------------------------
# Derivatives: R1 on augmented reals needs double backward through the pipe.

def test_grid_sample_matches_torch_and_has_double_backward():
    g = torch.Generator().manual_seed(0)
    x = torch.randn([1, 2, 5, 6], generator=g, dtype=torch.float64, requires_grad=True)
    grid = torch.rand([1, 4, 3, 2], generator=g, dtype=torch.float64) * 2.4 - 1.2
    ref = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    torch.testing.assert_close(grid_sample_bilinear(x, grid), ref)
    assert torch.autograd.gradcheck(lambda v: grid_sample_bilinear(v, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda v: grid_sample_bilinear(v, grid), (x,))


def _seeded(pipe, seed=3):
    def f(x):
        torch.manual_seed(seed)                             # Same random draw at every evaluation.
        return pipe(x)
    return f


def test_gradcheck_and_gradgradcheck_bgc():
    pipe = AugmentPipe(**AUGPIPE_SPECS['bgc'])
    x = _images(n=1, h=8, w=8, dtype=torch.float64).requires_grad_(True)
    f = _seeded(pipe)
    assert not torch.allclose(f(x), x, atol=1e-3)           # The draw really transforms the image.
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


def test_gradcheck_and_gradgradcheck_bgcfnc():
    pipe = AugmentPipe(**AUGPIPE_SPECS['bgcfnc'])
    x = _images(n=1, h=24, w=24, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(_seeded(pipe), (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(_seeded(pipe), (x,), fast_mode=True)


def test_r1_gradient_through_pipe_reaches_discriminator_weights():
    torch.manual_seed(0)
    pipe = AugmentPipe(**AUGPIPE_SPECS['bgc'])
    D = torch.nn.Conv2d(3, 1, 3)
    real = _images(h=8, w=8).requires_grad_(True)
    logits = D(pipe(real)).square().sum()
    (grad,) = torch.autograd.grad(logits, real, create_graph=True)
    grad.square().sum().backward()                          # R1 = ||d D(aug(x)) / dx||^2.
    assert D.weight.grad is not None and torch.isfinite(D.weight.grad).all() and D.weight.grad.abs().sum() > 0

#----------------------------------------------------------------------------
# Adaptive p.

def test_ada_controller_moves_p_toward_target_and_clamps():
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0.5)
    ada = AdaController(target=0.6, interval=4, kimg=0.1, batch_size=5)   # Step = 5 * 4 / 100 = 0.2.
    for step in range(1, 4):
        ada.accumulate(torch.tensor([3.0, 2.0, -1.0, 4.0, 5.0]))          # E[sign] = 0.6 + 0.2 > target.
        assert not ada.update(pipe, cur_nimg=step * 5)
    ada.accumulate(torch.ones(5))                                         # r_t = (3 * 3 + 5) / 20 = 0.7.
    assert ada.update(pipe, cur_nimg=20)
    assert float(pipe.p) == pytest.approx(0.7, abs=1e-6) and ada.last_rt == pytest.approx(0.7)
    for _ in range(8):
        ada.accumulate(torch.ones(5))
        ada.update(pipe, cur_nimg=0)
    assert float(pipe.p) == 1                               # Clamped above.
    for _ in range(4 * 7):
        ada.accumulate(-torch.ones(5))                      # Overfitting signal gone: p decreases.
        ada.update(pipe, cur_nimg=0)
    assert float(pipe.p) == 0                               # Clamped below.
    with pytest.raises(ValueError, match='target'):
        AdaController(target=1.5)


def test_ada_controller_all_reduces_under_torch_distributed(tmp_path):
    if not torch.distributed.is_available() or torch.distributed.is_initialized():
        pytest.skip('torch.distributed not built, or a process group is already up')
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        pipe = AugmentPipe(xflip=1)
        pipe.p.zero_()
        ada = AdaController(target=0.6, interval=1, kimg=1, batch_size=100)
        ada.accumulate(torch.ones(10))
        assert ada.update(pipe, cur_nimg=100)
        assert float(pipe.p) == pytest.approx(0.1, abs=1e-6)
    finally:
        torch.distributed.destroy_process_group()

#----------------------------------------------------------------------------
