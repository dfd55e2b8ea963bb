"""torch_utils.ops and torch_utils.misc against naive references; values, gradients, double backward."""
import itertools

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils import misc
from torch_utils.ops import bias_act, conv2d_resample, fma, upfirdn2d

#----------------------------------------------------------------------------


#----------------------------------------------------------------------------
# Naive references.

def naive_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), flip_filter=False, gain=1):
    """Per-channel numpy/scipy: zero insertion, pad/crop, true 2-D convolution ('valid'), decimation."""
    x = x.detach().double().numpy()
    f = np.ones([1, 1]) if f is None else f.double().numpy()
    f = np.outer(f, f) if f.ndim == 1 else f  # a separable filter is the outer product, applied once
    f = f * gain
    if flip_filter:
        f = f[::-1, ::-1]
    x0, x1, y0, y1 = pad
    n, c, h, w = x.shape
    z = np.zeros([n, c, h * up, w * up])
    z[:, :, ::up, ::up] = x
    z = np.pad(z, [(0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))])
    z = z[:, :, max(-y0, 0): z.shape[2] - max(-y1, 0), max(-x0, 0): z.shape[3] - max(-x1, 0)]
    out = np.stack([np.stack([scipy.signal.convolve2d(z[i, j], f, mode='valid') for j in range(c)]) for i in range(n)])
    return torch.from_numpy(out[:, :, ::down, ::down].copy())


def naive_conv2d_resample(x, w, f, up, down, pad, groups, flip_weight, flip_filter):
    """The documented definition: down_f(conv_w(up_f(pad(x)))), all padding applied first."""
    fw = fh = 1 if f is None else f.shape[-1]
    x0, x1, y0, y1 = pad
    if up > 1:
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1, y0, y1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2, y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    z = naive_upfirdn2d(x, f if up > 1 else None, up=up, pad=(x0, x1, y0, y1), flip_filter=flip_filter, gain=up ** 2)
    z = torch.nn.functional.conv2d(z, (w if flip_weight else w.flip([2, 3])).double(), groups=groups)
    if down > 1:
        z = naive_upfirdn2d(z, f, down=down, flip_filter=flip_filter)
    return z

#----------------------------------------------------------------------------
# bias_act

NAIVE_ACTS = {
    'linear':   (lambda x, a: x,                                  1.0),
    'relu':     (lambda x, a: np.maximum(x, 0),                   np.sqrt(2)),
    'lrelu':    (lambda x, a: np.where(x >= 0, x, a * x),         np.sqrt(2)),
    'tanh':     (lambda x, a: np.tanh(x),                         1.0),
    'sigmoid':  (lambda x, a: 1 / (1 + np.exp(-x)),               1.0),
    'elu':      (lambda x, a: np.where(x > 0, x, np.expm1(x)),    1.0),
    'selu':     (lambda x, a: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)), 1.0),
    'softplus': (lambda x, a: np.log1p(np.exp(x)),                1.0),
    'swish':    (lambda x, a: x / (1 + np.exp(-x)),               np.sqrt(2)),
}

@pytest.mark.parametrize('act', sorted(NAIVE_ACTS))
def test_bias_act_matches_formula(act):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([3, 5, 4, 2], generator=gen, dtype=torch.float64)
    b = torch.randn([4], generator=gen, dtype=torch.float64)
    func, def_gain = NAIVE_ACTS[act]
    assert bias_act.activation_funcs[act].def_gain == pytest.approx(def_gain)
    xb = (x + b.reshape(1, 1, 4, 1)).numpy()
    alpha = 0.2 if act == 'lrelu' else 0
    torch.testing.assert_close(bias_act.bias_act(x, b, dim=2, act=act), torch.from_numpy(func(xb, alpha) * def_gain))
    # Explicit alpha, gain and clamp.
    ref = np.clip(func(xb, 0.3) * 0.7, -0.25, 0.25)
    torch.testing.assert_close(bias_act.bias_act(x, b, dim=2, act=act, alpha=0.3, gain=0.7, clamp=0.25), torch.from_numpy(ref))


def test_bias_act_errors_and_identity():
    x = torch.randn([2, 3])
    assert torch.equal(bias_act.bias_act(x), x)
    with pytest.raises(ValueError, match='unknown activation'):
        bias_act.bias_act(x, act='gelu2')
    with pytest.raises(ValueError, match='does not match'):
        bias_act.bias_act(x, torch.zeros([4]))
    with pytest.raises(ValueError, match='impl'):
        bias_act.bias_act(x, impl='triton')


@pytest.mark.parametrize('act', ['linear', 'lrelu', 'tanh', 'swish', 'softplus', 'elu'])
def test_bias_act_gradgradcheck(act):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn([2, 3, 2], generator=gen, dtype=torch.float64) + 0.05).requires_grad_(True)  # keep lrelu off its kink
    b = torch.randn([3], generator=gen, dtype=torch.float64).requires_grad_(True)
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, gain=1.3, clamp=10)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_bias_act_clamp_zero_grad_outside():
    x = torch.tensor([-3.0, 0.5, 3.0], requires_grad=True)
    y = bias_act.bias_act(x, act='linear', clamp=1)
    y.sum().backward()
    assert y.tolist() == [-1.0, 0.5, 1.0] and x.grad.tolist() == [0.0, 1.0, 0.0]

#----------------------------------------------------------------------------
# upfirdn2d

def test_setup_filter():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    assert upfirdn2d.setup_filter([1] * 8).shape == (8,)                      # >= 8 taps: separable by default
    assert upfirdn2d.setup_filter([1, 2, 1], separable=True).shape == (3,)
    torch.testing.assert_close(upfirdn2d.setup_filter([1, 2, 1], gain=4).sum(), torch.tensor(4.0))
    torch.testing.assert_close(upfirdn2d.setup_filter([1, 2, 1], gain=4, separable=True).sum(), torch.tensor(2.0))
    torch.testing.assert_close(upfirdn2d.setup_filter([[1, 2], [3, 4]], flip_filter=True), torch.tensor([[4., 3], [2, 1]]) / 10)
    assert upfirdn2d.setup_filter(None).shape == (1, 1)
    assert upfirdn2d.setup_filter([1, 2], normalize=False).sum().item() == 9


CASES = [  # (filter, up, down, padding)
    ([1, 3, 3, 1], 2, 1, (2, 1, 2, 1)),
    ([1, 3, 3, 1], 1, 2, (1, 1, 1, 1)),
    ([1, 2, 1], 3, 2, (0, 2, 1, -1)),
    ([[1, 2], [3, 5]], 1, 1, (-1, 2, 0, 3)),
    ([1, 2, 3, 4, 5, 6, 7, 8], 2, 2, (4, 3, 4, 3)),   # separable path
    (None, 2, 1, (0, 0, 0, 0)),
    ([1, 3, 3, 1], 2, 2, 1),
]

@pytest.mark.parametrize('case', range(len(CASES)))
@pytest.mark.parametrize('flip_filter', [False, True])
def test_upfirdn2d_matches_naive(case, flip_filter):
    f, up, down, pad = CASES[case]
    gen = torch.Generator().manual_seed(case)
    x = torch.randn([2, 3, 7, 6], generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter(f, normalize=False) if f is not None else None
    y = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip_filter, gain=1.5)
    pad4 = (pad, pad, pad, pad) if isinstance(pad, int) else pad
    ref = naive_upfirdn2d(x, f, up=up, down=down, pad=pad4, flip_filter=flip_filter, gain=1.5)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-4)  # the gain is folded into the float32 filter


def test_resample_helpers_shapes_and_dc_gain():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.ones([1, 2, 8, 8])
    up = upfirdn2d.upsample2d(x, f)
    down = upfirdn2d.downsample2d(x, f)
    filt = upfirdn2d.filter2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and filt.shape == (1, 2, 8, 8)
    for y in (up, down, filt):  # constant signal keeps its value away from the zero-padded border
        torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.ones_like(y[:, :, 2:-2, 2:-2]))
    assert upfirdn2d.upsample2d(x, f, padding=1).shape == (1, 2, 18, 18)
    assert upfirdn2d.upsample2d(x, f, up=[2, 1]).shape == (1, 2, 8, 16)


def test_upfirdn2d_gradgradcheck():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([1, 1, 4, 3], generator=gen, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for kw in [dict(up=2, padding=[2, 1, 2, 1]), dict(down=2, padding=1), dict(up=2, down=2, padding=[1, 0, 1, 0])]:
        fn = lambda x: upfirdn2d.upfirdn2d(x, f, **kw)
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)

#----------------------------------------------------------------------------
# conv2d_resample

CONV_CASES = list(itertools.product([1, 3, 4], [(1, 1), (2, 1), (1, 2), (2, 2)], [1, 2], [True, False]))

@pytest.mark.parametrize('k,updown,groups,flip_weight', CONV_CASES)
def test_conv2d_resample_matches_definition(k, updown, groups, flip_weight):
    up, down = updown
    gen = torch.Generator().manual_seed(k * 100 + up * 10 + down + groups)
    x = torch.randn([2, 4, 6, 5], generator=gen)
    w = torch.randn([6, 4 // groups, k, k], generator=gen)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for pad, flip_filter in [(k // 2, False), ([1, 0, 2, 1], True), (0, False)]:
        y = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=pad, groups=groups,
            flip_weight=flip_weight, flip_filter=flip_filter)
        pad4 = upfirdn2d._parse_padding(pad)
        ref = naive_conv2d_resample(x, w, f, up, down, pad4, groups, flip_weight, flip_filter)
        torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)


def test_conv2d_resample_gradgradcheck():
    gen = torch.Generator().manual_seed(3)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 2, 3, 3], generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn([1, 2, 3, 3], generator=gen, dtype=torch.float64, requires_grad=True)
    for up, down in [(1, 1), (2, 1), (1, 2)]:
        fn = lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=1, flip_weight=(up == 1))
        assert torch.autograd.gradcheck(fn, (x, w), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x, w), fast_mode=True)


def test_conv2d_resample_errors():
    with pytest.raises(ValueError, match='dtype'):
        conv2d_resample.conv2d_resample(torch.zeros([1, 1, 4, 4]), torch.zeros([1, 1, 3, 3], dtype=torch.float64))

#----------------------------------------------------------------------------
# fma and misc

def test_fma_broadcast_and_grad():
    a = torch.randn([2, 3, 1, 1], dtype=torch.float64, requires_grad=True)
    b = torch.randn([2, 3, 4, 4], dtype=torch.float64, requires_grad=True)
    c = torch.randn([2, 1, 4, 4], dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(fma.fma(a, b, c), a * b + c)
    assert torch.autograd.gradgradcheck(fma.fma, (a, b, c))


def test_assert_shape():
    misc.assert_shape(torch.zeros([2, 3]), [None, 3])
    with pytest.raises(AssertionError, match='dimension 1'):
        misc.assert_shape(torch.zeros([2, 3]), [2, 4])
    with pytest.raises(AssertionError, match='number of dimensions'):
        misc.assert_shape(torch.zeros([2, 3]), [2])


def test_constant_is_cached():
    a = misc.constant([1.0, 2.0], shape=[3, 2])
    assert a.shape == (3, 2) and a.is_contiguous() and a[2].tolist() == [1.0, 2.0]
    assert misc.constant([1.0, 2.0], shape=[3, 2]) is a
    assert misc.constant([1.0, 2.0], shape=[3, 2], dtype=torch.float64) is not a


def test_copy_params_and_buffers():
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    dst.register_buffer('extra', torch.zeros([1]))
    misc.copy_params_and_buffers(src, dst)
    assert torch.equal(src.weight, dst.weight) and dst.weight.requires_grad
    assert len(misc.named_params_and_buffers(dst)) == 3 and len(misc.params_and_buffers(src)) == 2
    with pytest.raises(KeyError, match='extra'):
        misc.copy_params_and_buffers(src, dst, require_all=True)


def test_ddp_sync_plain_module_and_summary(capsys):
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    with misc.ddp_sync(m, sync=False):
        out = misc.print_module_summary(m, [torch.zeros([2, 3])])
    assert out.shape == (2, 4)
    text = capsys.readouterr().out
    assert 'Total' in text and '16' in text

#----------------------------------------------------------------------------
