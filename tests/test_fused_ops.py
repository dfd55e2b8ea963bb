"""The fused Triton kernels (run on the CPU by Triton's interpreter) against the reference ops:
values, gradients, double backward, layouts, dtypes, NaN; and the switch, the self-check fallback and
a missing Triton."""
import itertools
import os
import sys
import warnings

import pytest
import torch

from torch_utils.ops import bias_act, conv2d_resample, fused, upfirdn2d

pytest.importorskip('triton')

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def interpreted_kernels(monkeypatch):
    """Fused ops on, kernels run by Triton's interpreter on CPU tensors; state restored afterwards."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    sys.modules.pop('torch_utils.ops.triton_kernels', None)  # decorate the kernels in interpreter mode
    fused.reset()
    fused.set_enabled(True)
    yield
    fused.set_enabled(False)
    fused.reset()
    sys.modules.pop('torch_utils.ops.triton_kernels', None)


def _grads(fn, inputs, create_graph=False, seed=1):
    """Outputs and input gradients of a fixed random projection of fn(*inputs)."""
    y = fn(*inputs)
    proj = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(y.dtype)
    wrt = [t for t in inputs if t is not None and t.requires_grad]
    return y, torch.autograd.grad((y * proj).sum(), wrt, create_graph=create_graph)


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]


def _assert_close(a, b, dtype):
    tol = dict(rtol=1e-2, atol=1e-2) if dtype == torch.float16 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.float(), b.float(), **tol)


def _ran_fused(op):
    """Every self-check of `op` so far passed, and there was at least one."""
    results = [ok for key, ok in fused.status().items() if key[0] == op]
    return bool(results) and all(results)

#----------------------------------------------------------------------------
# bias_act

@pytest.mark.parametrize('act,clamp,with_bias,dim', [
    ('lrelu', None, True, 1), ('lrelu', 0.7, True, 1), ('relu', None, True, 2), ('relu', 0.5, False, 1),
    ('linear', None, True, 1), ('linear', 0.3, True, 0), ('lrelu', None, True, 3), ('linear', None, False, 1)])
def test_bias_act_matches_reference_to_second_order(act, clamp, with_bias, dim):
    torch.manual_seed(0)
    x = torch.randn([3, 5, 4, 6])
    b = torch.randn([x.shape[dim]]) if with_bias else None
    run = lambda impl: (lambda x_, b_: bias_act.bias_act(x_, b_, dim=dim, act=act, clamp=clamp, impl=impl))
    inputs, inputs_ref = _leaves(x, b), _leaves(x, b)
    y, g = _grads(run('auto'), inputs, create_graph=True)
    y_ref, g_ref = _grads(run('ref'), inputs_ref, create_graph=True)
    assert _ran_fused('bias_act')
    _assert_close(y, y_ref, torch.float32)
    for a, r in zip(g, g_ref):
        _assert_close(a, r, torch.float32)
    # Double backward (R1 / path length need it): gradient of |grad_x|^2 with respect to x and b.
    gg, gg_ref = (_second_order(grads[0], [t for t in leaves if t is not None]) for grads, leaves in ((g, inputs), (g_ref, inputs_ref)))
    for a, r in zip(gg, gg_ref):
        _assert_close(a, r, torch.float32)


def _second_order(grad, wrt):
    """d |grad|^2 / d wrt, zeros where grad does not depend on an input."""
    if not grad.requires_grad:
        return [torch.zeros_like(t) for t in wrt]
    out = torch.autograd.grad(grad.square().sum(), wrt, allow_unused=True)
    return [torch.zeros_like(t) if o is None else o for o, t in zip(out, wrt)]


def test_bias_act_fp16_channels_last_and_nan():
    torch.manual_seed(1)
    x = torch.randn([2, 6, 5, 5]).to(torch.float16).contiguous(memory_format=torch.channels_last)
    x[0, 1, 2, 3] = float('nan')
    b = torch.randn([6]).to(torch.float16)
    y = bias_act.bias_act(x, b, act='lrelu', gain=1.4, clamp=2.0)
    y_ref = bias_act.bias_act(x, b, act='lrelu', gain=1.4, clamp=2.0, impl='ref')
    assert _ran_fused('bias_act')
    assert y.dtype == torch.float16 and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.isnan(y[0, 1, 2, 3]) and int(torch.isnan(y).sum()) == 1
    _assert_close(torch.nan_to_num(y), torch.nan_to_num(y_ref), torch.float16)


def test_bias_act_falls_back_where_the_kernel_does_not_apply():
    x = torch.randn([4, 3])
    for kwargs in (dict(act='tanh'), dict(act='lrelu', b=torch.randn([3], dtype=torch.float64)), dict(act='lrelu', gain=-1.0)):
        b = kwargs.pop('b', None)
        y = bias_act.bias_act(x, b, **kwargs)
        torch.testing.assert_close(y, bias_act.bias_act(x, b, impl='ref', **kwargs))
    assert fused.status() == {}  # none of them reached the kernel

#----------------------------------------------------------------------------
# upfirdn2d

GEOMETRIES = [  # up, down, padding
    (1, 1, [1, 2, 1, 2]), (2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]), (2, 2, [0, 3, 1, 2]),
    (1, 1, [1, 2, -1, 0]), (3, 2, [0, 0, 3, -2]), ([2, 1], [1, 2], [2, 1, 0, 1])]


@pytest.mark.parametrize('geometry,taps,flip_filter', list(itertools.product(GEOMETRIES, ([1, 3, 3, 1], [1, 2, 1]), (False, True))))
def test_upfirdn2d_matches_reference_to_second_order(geometry, taps, flip_filter):
    up, down, padding = geometry
    torch.manual_seed(2)
    f = upfirdn2d.setup_filter(taps) * torch.linspace(0.5, 1.5, len(taps)) if flip_filter else upfirdn2d.setup_filter(taps)
    x = torch.randn([2, 3, 7, 6])
    run = lambda impl: (lambda x_: upfirdn2d.upfirdn2d(x_, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.7, impl=impl))
    (xf,), (xr,) = _leaves(x), _leaves(x)
    y, (g,) = _grads(run('auto'), [xf], create_graph=True)
    y_ref, (g_ref,) = _grads(run('ref'), [xr], create_graph=True)
    assert _ran_fused('upfirdn2d')
    _assert_close(y, y_ref, torch.float32)
    _assert_close(g, g_ref, torch.float32)
    # Second order: the gradient is linear in the projection, so differentiate a function of it through x.
    (gg,), (gg_ref,) = (torch.autograd.grad((g * v.detach()).sum() + y.square().sum(), [v]) for g, y, v in ((g, y, xf), (g_ref, y_ref, xr)))
    _assert_close(gg, gg_ref, torch.float32)


def test_upfirdn2d_random_geometries_match_reference():
    """40 random configurations: factors 1-3 per axis, padding -2..4 per side, filters 1x1..5x4, both layouts."""
    rng = torch.Generator().manual_seed(11)
    ri = lambda lo, hi: int(torch.randint(lo, hi + 1, [1], generator=rng))
    for _ in range(40):
        up, down = [ri(1, 3), ri(1, 3)], [ri(1, 3), ri(1, 3)]
        padding = [ri(-2, 4) for _ in range(4)]
        f = torch.rand([ri(1, 4), ri(1, 5)], generator=rng) + 0.1
        x = torch.randn([ri(1, 2), ri(1, 3), ri(3, 7), ri(3, 7)], generator=rng)
        if ri(0, 1):
            x = x.contiguous(memory_format=torch.channels_last)
        out_h = (x.shape[2] * up[1] + padding[2] + padding[3] - f.shape[0]) // down[1] + 1
        out_w = (x.shape[3] * up[0] + padding[0] + padding[1] - f.shape[1]) // down[0] + 1
        if out_h <= 0 or out_w <= 0:
            continue
        fused.reset()
        (xf,), (xr,) = _leaves(x), _leaves(x)
        y, (g,) = _grads(lambda v: upfirdn2d.upfirdn2d(v, f, up=up, down=down, padding=padding, gain=0.7), [xf])
        y_ref, (g_ref,) = _grads(lambda v: upfirdn2d.upfirdn2d(v, f, up=up, down=down, padding=padding, gain=0.7, impl='ref'), [xr])
        config = f'up={up} down={down} padding={padding} filter={list(f.shape)} x={list(x.shape)}'
        assert _ran_fused('upfirdn2d'), config
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5, msg=config)
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5, msg=config)


def test_upfirdn2d_separable_filter_fp16_and_channels_last():
    torch.manual_seed(3)
    f = upfirdn2d.setup_filter([1, 2, 3, 4, 4, 3, 2, 1])  # >= 8 taps: separable
    assert f.ndim == 1
    x = torch.randn([2, 4, 9, 8]).to(torch.float16).contiguous(memory_format=torch.channels_last)
    y = upfirdn2d.upsample2d(x, f)
    y_ref = upfirdn2d.upsample2d(x, f, impl='ref')
    assert _ran_fused('upfirdn2d')
    assert y.dtype == torch.float16 and y.is_contiguous(memory_format=torch.channels_last)
    _assert_close(y, y_ref, torch.float16)


@pytest.mark.parametrize('up,down,kernel', [(2, 1, 3), (1, 2, 3), (1, 2, 1), (2, 1, 1)])
def test_conv2d_resample_through_the_fused_filter(up, down, kernel):
    torch.manual_seed(4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x, w = torch.randn([2, 4, 8, 8]), torch.randn([5, 4, kernel, kernel])
    (xf, wf), (xr, wr) = _leaves(x, w), _leaves(x, w)
    fused_out, fused_grads = _grads(lambda a, b: conv2d_resample.conv2d_resample(a, b, f=f, up=up, down=down, padding=kernel // 2), [xf, wf])
    fused.set_enabled(False)
    ref_out, ref_grads = _grads(lambda a, b: conv2d_resample.conv2d_resample(a, b, f=f, up=up, down=down, padding=kernel // 2), [xr, wr])
    assert _ran_fused('upfirdn2d')
    _assert_close(fused_out, ref_out, torch.float32)
    for a, r in zip(fused_grads, ref_grads):
        _assert_close(a, r, torch.float32)

#----------------------------------------------------------------------------
# Whole networks: G forward/backward, D with the R1 penalty (double backward), fp16 blocks in channels-last.

@pytest.mark.parametrize('fp16', [False, True])
def test_networks_with_fused_ops_match_the_reference(monkeypatch, fp16):
    from tests.test_networks import labels, make_D, make_G
    from training import fast_path, networks
    if fp16:
        monkeypatch.setattr(networks, 'fp16_supported', lambda device: True)
    G, D = make_G(res=16, c_dim=2, num_fp16_res=2 if fp16 else 0), make_D(res=16, c_dim=2, architecture='resnet', num_fp16_res=2 if fp16 else 0)
    if fp16:
        fast_path.set_channels_last(G, True)
        fast_path.set_channels_last(D, True)
    z, c = torch.randn([2, 8], generator=torch.Generator().manual_seed(5)), labels(2, 2)

    def run():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        img = G(z, c, noise_mode='const')
        (img * torch.linspace(-1, 1, img.numel()).reshape(img.shape)).sum().backward()
        real = img.detach().requires_grad_(True)
        logits = D(real, c)
        r1_grads, = torch.autograd.grad(logits.sum(), [real], create_graph=True)
        (logits.sum() + r1_grads.square().sum()).backward()
        return img.detach(), {name: p.grad.clone() for name, p in [*G.named_parameters(), *D.named_parameters()] if p.grad is not None}

    try:
        img, grads = run()
        fused.set_enabled(False)
        img_ref, grads_ref = run()
    except (RuntimeError, NotImplementedError) as e:
        if 'Half' in str(e) or 'half' in str(e):
            pytest.skip(f'this PyTorch build lacks a float16 CPU kernel: {e}')
        raise
    assert _ran_fused('bias_act') and _ran_fused('upfirdn2d')
    assert {key[0] for key in fused.status()} == {'bias_act', 'upfirdn2d'}
    assert any(torch.float16 in key for key in fused.status()) == fp16
    tol = dict(rtol=2e-2, atol=2e-2) if fp16 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(img, img_ref, **tol)
    assert grads.keys() == grads_ref.keys() and len(grads) > 20
    for name in grads:  # global relative error per tensor
        err = float((grads[name] - grads_ref[name]).norm() / (grads_ref[name].norm() + 1e-12))
        assert err < (5e-2 if fp16 else 1e-4), name

#----------------------------------------------------------------------------
# Switch, self-check, missing Triton.

def test_self_check_covers_gradients_even_under_inference_mode():
    x = torch.randn([2, 3, 6, 6])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with torch.inference_mode():
        y = upfirdn2d.upsample2d(x, f)
        z = bias_act.bias_act(x, torch.randn([3]), act='lrelu', clamp=1.0)
    assert _ran_fused('upfirdn2d') and _ran_fused('bias_act') and len(fused.status()) == 2
    torch.testing.assert_close(y, upfirdn2d.upsample2d(x, f, impl='ref'))
    # The same configuration later needs a gradient: no second check, the kernel's backward is used.
    xg = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(upfirdn2d.upsample2d(xg, f).square().sum(), [xg])
    xr = x.clone().requires_grad_(True)
    g_ref, = torch.autograd.grad(upfirdn2d.upsample2d(xr, f, impl='ref').square().sum(), [xr])
    torch.testing.assert_close(g, g_ref)
    assert len(fused.status()) == 2 and z.shape == x.shape


def test_forward_mode_ad_and_func_transforms_use_the_reference():
    """torch.func.jvp (CG-GAN's 'jvp' estimator) and forward_ad see the reference ops; no self-check
    is spent (or failed) inside them, and the kernels still serve ordinary calls afterwards."""
    from training.cg_regularizers import _jvp
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    b = torch.randn([3])
    fn = lambda impl: (lambda x: upfirdn2d.upsample2d(bias_act.bias_act(x, b, act='lrelu', clamp=1.0, impl=impl), f, impl=impl))
    x, t = torch.randn([2, 3, 5, 5]), torch.randn([2, 3, 5, 5])
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        torch.testing.assert_close(torch.func.jvp(fn('auto'), (x,), (t,))[1], torch.func.jvp(fn('ref'), (x,), (t,))[1])
        with torch.autograd.forward_ad.dual_level():
            tangent = torch.autograd.forward_ad.unpack_dual(fn('auto')(torch.autograd.forward_ad.make_dual(x, t))).tangent
        torch.testing.assert_close(tangent, _jvp(fn('ref'), x, t))
    assert fused.status() == {}
    fn('auto')(x)
    assert _ran_fused('bias_act') and _ran_fused('upfirdn2d')


def test_switched_off_never_touches_the_kernels(monkeypatch):
    fused.set_enabled(False)
    monkeypatch.setattr(fused, 'kernels', lambda: pytest.fail('kernels imported while switched off'))
    bias_act.bias_act(torch.randn([2, 3]), torch.randn([3]), act='lrelu')
    upfirdn2d.upsample2d(torch.randn([1, 2, 4, 4]), upfirdn2d.setup_filter([1, 3, 3, 1]))
    assert fused.status() == {}


def test_a_wrong_kernel_fails_its_self_check_once_and_the_reference_runs(monkeypatch):
    kernels = fused.kernels()
    real = kernels.UpFirDn2d.apply
    calls = []
    def wrong(x, g, up, down, pad):
        calls.append(1)
        return real(x, g, up, down, pad) * 1.1
    monkeypatch.setattr(kernels.UpFirDn2d, 'apply', wrong)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn([2, 3, 6, 6])
    with pytest.warns(RuntimeWarning, match='upfirdn2d failed its self-check.*output relative error'):
        y = upfirdn2d.downsample2d(x, f)
    torch.testing.assert_close(y, upfirdn2d.downsample2d(x, f, impl='ref'))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning, no second try
        torch.testing.assert_close(upfirdn2d.downsample2d(x, f), y)
    assert len(calls) == 1 and list(fused.status().values()) == [False]


def test_a_kernel_with_a_wrong_gradient_is_caught(monkeypatch):
    kernels = fused.kernels()
    monkeypatch.setattr(kernels.BiasActGrad, 'apply', lambda dy, y, *opts: dy * 0.5)
    x, b = torch.randn([4, 6], requires_grad=True), torch.randn([6], requires_grad=True)
    with pytest.warns(RuntimeWarning, match='bias_act failed its self-check.*gradient 0'):
        y = bias_act.bias_act(x, b, act='lrelu')
    gx, = torch.autograd.grad(y.sum(), [x])
    x2 = x.detach().requires_grad_(True)
    gx_ref, = torch.autograd.grad(bias_act.bias_act(x2, b, act='lrelu', impl='ref').sum(), [x2])
    torch.testing.assert_close(gx, gx_ref)


def test_missing_triton_is_one_warning_and_the_reference(monkeypatch):
    monkeypatch.setitem(sys.modules, 'triton', None)  # import triton -> ImportError
    sys.modules.pop('torch_utils.ops.triton_kernels', None)
    fused.reset()
    x = torch.randn([2, 3, 4, 4])
    with pytest.warns(RuntimeWarning, match='Fused ops unavailable'):
        y = bias_act.bias_act(x, torch.randn([3]), act='lrelu')
    assert y.shape == x.shape
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        upfirdn2d.upsample2d(x, upfirdn2d.setup_filter([1, 3, 3, 1]))
    assert fused.status() == {}


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    assert not fused.applicable(torch.zeros(1))
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    assert fused.applicable(torch.zeros(1))


def test_impl_names():
    with pytest.raises(ValueError, match='impl must be'):
        bias_act.bias_act(torch.zeros(2), impl='triton')
    with pytest.raises(ValueError, match='impl must be'):
        upfirdn2d.upfirdn2d(torch.zeros([1, 1, 2, 2]), None, impl='fast')

#----------------------------------------------------------------------------
