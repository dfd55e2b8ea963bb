"""The fast path on CPU: off == reference exactly, compile plumbing (cheap dynamo backend) == eager,
self-check fallback with one warning, RNG and buffers untouched by the check, bench/gpu_check CLIs."""
import importlib.util
import json
import os
import sys
import warnings

import pytest
import torch
from click.testing import CliRunner

import dnnlib
from training import bench, fast_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#----------------------------------------------------------------------------

def _setup(res=8, batch=4, model='stylegan2-ada'):
    torch.manual_seed(0)
    return bench.build('tiny', res, batch, model, torch.device('cpu'), True, 2, False)


def _steps(setup, n, batch=4):
    G, D, loss, phases = setup
    for i in range(n):
        torch.manual_seed(100 + i)
        bench.step(G, D, loss, phases, batch, 2, torch.device('cpu'), i)


def _params(setup):
    return [p.detach().clone() for m in setup[:2] for p in m.parameters()]

#----------------------------------------------------------------------------

def test_resolve_fast_choices():
    assert not fast_path.resolve_fast('auto', 'cpu').enabled
    assert not fast_path.resolve_fast('off', 'cuda').enabled
    cfg = fast_path.resolve_fast('auto', 'cuda')
    assert cfg.compile == fast_path.AUTO_COMPILE_MODE and cfg.channels_last
    assert cfg.fused_ops and not fast_path.resolve_fast('reduce-overhead', 'cpu').fused_ops
    cfg = fast_path.resolve_fast('fused', 'cuda')
    assert cfg.fused_ops and cfg.channels_last and cfg.compile == 'none' and cfg.enabled
    assert not fast_path.resolve_fast('fused', 'cpu').channels_last
    assert fast_path.resolve_fast('reduce-overhead', 'cpu').compile == 'reduce-overhead'
    assert fast_path.resolve_fast(dict(compile='default', backend='eager'), 'cpu').backend == 'eager'
    with pytest.raises(ValueError, match='fast must be one of'):
        fast_path.resolve_fast('turbo', 'cpu')


def test_apply_to_loss_sets_the_fused_switch_both_ways():
    from torch_utils.ops import fused
    loss = dnnlib.EasyDict(device=torch.device('cpu'), G=None, D=None)
    fused.reset()
    try:
        fast_path.apply_to_loss(loss, 'fused')
        assert fused.is_enabled() and loss.fast is None
        assert fast_path.fast_path_report(loss) == {'fused_ops': 'on, unused (no CUDA tensors reached the kernels)'}
        fast_path.apply_to_loss(loss, 'off')
        assert not fused.is_enabled() and fast_path.fast_path_report(loss) == {}
    finally:
        fused.set_enabled(False)


def test_fast_path_off_is_the_reference_exactly():
    ref, off = _setup(), _setup()
    assert fast_path.apply_to_loss(off[2], 'off').enabled is False and off[2].fast is None
    _steps(ref, 2)
    _steps(off, 2)
    assert all(torch.equal(a, b) for a, b in zip(_params(ref), _params(off)))


def test_compiled_training_steps_match_eager():
    """All phases of one lazy cycle's first step (Gmain, Greg, Dmain, Dreg) through torch.compile's
    plumbing (dynamo with the eager backend): same random numbers, same losses, same weights."""
    ref, fast = _setup(), _setup()
    cfg = fast_path.FastPathConfig(compile='default', backend='eager')
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)   # no fallback warning allowed
        fast_path.apply_to_loss(fast[2], cfg)
        _steps(ref, 2)
        _steps(fast, 2)
    report = fast_path.fast_path_report(fast[2])
    assert set(report) == {'mapping', 'synthesis', 'D'} and all(v.startswith('ok') for v in report.values()), report
    for a, b in zip(_params(ref), _params(fast)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ref[2].pl_mean, fast[2].pl_mean)
    torch._dynamo.reset()


def test_aot_autograd_gradients_match_eager():
    """D forward + backward through AOTAutograd (aot_eager backend) gives eager's gradients."""
    G, D, _loss, _phases = _setup()
    D.requires_grad_(True)
    img = torch.randn([4, 3, 8, 8], generator=torch.Generator().manual_seed(1))
    c = torch.nn.functional.one_hot(torch.arange(4) % 2, 2).float()
    fn = fast_path.compile_module(D, fast_path.FastPathConfig(compile='default', backend='aot_eager'), 'D')
    grads = []
    for f in (D, fn):
        D.zero_grad(set_to_none=True)
        torch.nn.functional.softplus(f(img, c)).mean().backward()
        grads.append([p.grad.clone() for p in D.parameters()])
    assert fn.failed is None and len(fn.checked) == 1
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    torch._dynamo.reset()

#----------------------------------------------------------------------------

class _Noisy(torch.nn.Module):
    """Draws random numbers and updates a buffer, like synthesis (noise) and mapping (w_avg)."""
    def __init__(self):
        super().__init__()
        self.register_buffer('count', torch.zeros([]))

    def forward(self, x, scale=1.0):
        self.count.add_(1)
        return x * scale + torch.randn_like(x)


def test_self_check_keeps_rng_and_buffers():
    m_ref, m_fast = _Noisy(), _Noisy()
    fn = fast_path.CheckedCallable('noisy', m_fast, lambda x, scale=1.0: m_fast(x, scale), module=m_fast)
    x = torch.ones([5])
    torch.manual_seed(3)
    ref = [m_ref(x), m_ref(x, scale=2.0), m_ref(x)]
    torch.manual_seed(3)
    out = [fn(x), fn(x, scale=2.0), fn(x)]
    assert all(torch.equal(a, b) for a, b in zip(ref, out))
    assert float(m_fast.count) == float(m_ref.count) == 3
    assert len(fn.checked) == 2 and fn.failed is None


def test_failing_self_check_falls_back_with_one_warning():
    m = _Noisy()
    fn = fast_path.CheckedCallable('noisy', m, lambda x, scale=1.0: m(x, scale) + 1, module=m)
    x = torch.ones([5])
    torch.manual_seed(4)
    ref = [_Noisy()(x) for _ in range(3)]
    torch.manual_seed(4)
    with pytest.warns(RuntimeWarning, match='noisy falls back to the reference path') as record:
        out = [fn(x) for _ in range(3)]
    assert len(record) == 1 and 'self-check failed' in str(record[0].message)
    assert all(torch.equal(a, b) for a, b in zip(ref, out))


def test_raising_compiled_call_reruns_eager_from_the_same_rng_state():
    m = _Noisy()
    def broken(x, scale=1.0):
        torch.randn([100])   # consumes random numbers before failing
        raise RuntimeError('inductor exploded\nlong details')
    fn = fast_path.CheckedCallable('noisy', m, broken, module=m, config=fast_path.FastPathConfig(self_check=False))
    x = torch.ones([5])
    torch.manual_seed(5)
    ref = _Noisy()(x)
    torch.manual_seed(5)
    with pytest.warns(RuntimeWarning, match=r'RuntimeError: inductor exploded\)') as record:
        out = fn(x)
        fn(x)
    assert len(record) == 1 and torch.equal(out, ref) and fn.failed


def test_nonfinite_fast_output_fails_the_check():
    ok, _worst, reason = fast_path.compare_outputs(torch.tensor([1.0, float('nan')]), torch.tensor([1.0, 2.0]), 1e-2, 0)
    assert not ok and 'non-finite' in reason
    ok, worst, _reason = fast_path.compare_outputs(torch.tensor([1.0, 2.001]), torch.tensor([1.0, 2.0]), 1e-2, 0)
    assert ok and worst == pytest.approx(5e-4, rel=1e-2)


def test_channels_last_marks_fp16_blocks_and_keeps_values():
    import dnnlib
    from training import presets
    spec = presets.resolve('tiny', 16, 1)
    _G_kwargs, D_kwargs = presets.network_kwargs(spec)
    D_kwargs.update(num_fp16_res=2, conv_clamp=256)
    torch.manual_seed(0)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, c_dim=0, img_resolution=16, img_channels=3)
    img = torch.randn([4, 3, 16, 16])
    ref = D(img, None)
    fast_path.set_channels_last(D, True)
    fp16_blocks = [m for m in D.modules() if getattr(m, 'use_fp16', False)]
    assert fp16_blocks and all(m.channels_last for m in fp16_blocks)
    w = [p for m in fp16_blocks for p in m.parameters() if p.ndim == 4]
    assert w and all(p.is_contiguous(memory_format=torch.channels_last) for p in w)
    assert torch.allclose(D(img, None), ref, atol=1e-6)

#----------------------------------------------------------------------------
# Issue 8: a compiled forward that matches eager but whose backward is wrong must not train anything.

class _ScaleGrad(torch.autograd.Function):
    """Identity forward, backward scaled: a correct forward with a wrong backward."""
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * 3


def _wrong_backwards(D):
    """Compiled stand-ins for D with eager's forward and a broken backward, as issue 8 saw on the GPU."""
    frozen = lambda img, c: torch.func.functional_call(D, {k: v.detach() for k, v in D.named_parameters()}, (img, c))
    return dict(
        scaled=lambda img, c: _ScaleGrad.apply(D(img, c)),                 # wrong gradients everywhere
        detached=lambda img, c: D(img, c).detach(),                          # no graph at all
        frozen=frozen,                                                       # graph traced with frozen parameters
        input_only=lambda img, c: D(_ScaleGrad.apply(img), c),              # parameters right, input gradient wrong
    )


def test_compare_grads_reasons():
    g = [torch.ones([3]), torch.ones([2])]
    names = ['input 0', 'param:w']
    assert fast_path.compare_grads(g, g, names, 1e-2)[0]
    ok, worst, reason = fast_path.compare_grads([None, g[1]], g, names, 1e-2)
    assert not ok and worst == float('inf') and 'input 0 missing' in reason
    ok, _worst, reason = fast_path.compare_grads([g[0], torch.tensor([1.0, float('inf')])], g, names, 1e-2)
    assert not ok and 'non-finite gradient of param:w' in reason
    ok, worst, reason = fast_path.compare_grads([g[0], g[1] * 1.05], g, names, 1e-1)
    assert ok and worst == pytest.approx(0.05)
    ok, _worst, reason = fast_path.compare_grads([g[0], g[1] * 1.5], g, names, 1e-1)
    assert not ok and 'parameters off by 0.5' in reason


@pytest.mark.parametrize('kind', ['scaled', 'detached', 'frozen', 'input_only'])
def test_wrong_compiled_backward_falls_back_before_training(kind):
    """Gmain + Dmain with requires_grad toggled as the training loop does; D's compiled twin has a
    correct forward but a broken backward: one warning, and every gradient equals the reference's."""
    ref, fast = _setup(), _setup()
    cfg = fast_path.FastPathConfig(compile='default', backend='eager')
    fast_path.apply_to_loss(fast[2], cfg)
    fast[2].fast.D = fast_path.CheckedCallable('D', fast[1], _wrong_backwards(fast[1])[kind], module=fast[1], config=cfg)
    grads = []
    with pytest.warns(RuntimeWarning, match='D falls back to the reference path') as record:
        for G, D, loss, _phases in (ref, fast):
            real = torch.rand([4, 3, 8, 8], generator=torch.Generator().manual_seed(5)) * 2 - 1
            c = torch.nn.functional.one_hot(torch.arange(4) % 2, 2).float()
            z = torch.randn([4, G.z_dim], generator=torch.Generator().manual_seed(6))
            for phase, module in [('Gmain', G), ('Dmain', D)]:
                module.requires_grad_(True)
                torch.manual_seed(7)
                loss.accumulate_gradients(phase=phase, real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1)
                module.requires_grad_(False)
            grads.append([p.grad for m in (G, D) for p in m.parameters()])
    assert len([r for r in record if 'fast path' in str(r.message)]) == 1
    assert 'self-check failed' in fast[2].fast.D.failed
    for a, b in zip(*grads):
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))
    torch._dynamo.reset()


def test_inductor_gradients_with_requires_grad_toggled():
    """The real compiler on a tiny D: frozen parameters + input grad (as in Gmain), then parameters
    needing grad + plain input (as in Dmain), then frozen again; each call's gradients equal eager's."""
    G, D, _loss, _phases = _setup()
    fn = fast_path.compile_module(D, fast_path.FastPathConfig(compile='default', backend='inductor'), 'D')
    img = torch.randn([4, 3, 8, 8], generator=torch.Generator().manual_seed(1))
    c = torch.nn.functional.one_hot(torch.arange(4) % 2, 2).float()
    for params_grad, img_grad in [(False, True), (True, False), (False, True)]:
        D.requires_grad_(params_grad)
        results = []
        for f in (D, fn):
            D.zero_grad(set_to_none=True)
            x = img.clone().requires_grad_(img_grad)
            torch.nn.functional.softplus(f(x, c)).mean().backward()
            results.append([x.grad] + [p.grad for p in D.parameters()])
        for a, b in zip(*results):
            assert (a is None) == (b is None)
            assert a is None or torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    D.requires_grad_(False)
    assert fn.failed is None and len(fn.checked) == 2 and fn.grad_error < 1e-4
    torch._dynamo.reset()

#----------------------------------------------------------------------------

def test_bench_sample_compare_prints_json():
    r = CliRunner().invoke(bench.main, ['--cfg=tiny', '--res=8', '--batch=2', '--sample=1', '--compare=1', '--compile=default',
                                        '--backend=eager', '--cycles=1', '--warmup=1'])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index('{'):])
    assert out['reference']['images_per_sec']['median'] > 0 and out['fast']['images_per_sec']['median'] > 0
    assert out['fast']['status']['G'].startswith('ok') and out['speedup'] > 0
    torch._dynamo.reset()


def _gpu_check():
    spec = importlib.util.spec_from_file_location('gpu_check', os.path.join(ROOT, 'tools', 'gpu_check.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_cli_without_cuda(monkeypatch):
    mod = _gpu_check()
    runner = CliRunner()
    r = runner.invoke(mod.main, ['--help'])
    assert r.exit_code == 0 and '--quick' in r.output and '--budget' in r.output
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    r = runner.invoke(mod.main, [])
    assert r.exit_code == 0 and 'no CUDA' in r.output
    r = runner.invoke(mod.main, ['--device=cuda'])
    assert r.exit_code != 0 and 'Traceback' not in r.output and 'no CUDA device' in r.output


def test_gpu_check_section_failures_are_one_line(tmp_path, capsys):
    mod = _gpu_check()
    chk = mod.Checker(budget=60, json_path=str(tmp_path / 'out.json'))
    chk.run('broken', lambda limit: 1 / 0, 30)
    chk.run('fine', lambda limit: dict(ok=True, summary='all good'), 30)
    chk.deadline = 0
    chk.run('late', lambda limit: dict(ok=True), 30)
    saved = json.loads((tmp_path / 'out.json').read_text())['sections']
    assert saved['broken']['ok'] is False and 'ZeroDivisionError' in saved['broken']['summary']
    assert saved['fine']['ok'] is True and saved['late']['summary'].startswith('skipped')
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and 'FAIL' in lines[0] and 'PASS' in lines[1]


def test_gpu_check_diff_report_names_missing_and_nonfinite():
    mod = _gpu_check()
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    a.weight.grad, b.weight.grad = torch.ones([2, 3]), torch.ones([2, 3])
    a.bias.grad = torch.tensor([1.0, float('inf')])
    out = mod._diff_report(a, b)
    assert out['missing'] == ['bias (ref has none)'] and out['global_rel'] == 0
    b.bias.grad = torch.zeros([2])
    out = mod._diff_report(a, b)
    assert out['nonfinite'] == ['bias (fast)'] and out['global_rel'] == float('inf')
    with torch.no_grad():
        a.bias.fill_(0.1)
        b.bias.zero_()   # a zero tensor on one side: the global error stays finite (no per-tensor 1e-30 floor)
    out = mod._diff_report(a, b, grads=False)
    assert 0 < out['global_rel'] < 1 and out['worst'][0].startswith('bias')

#----------------------------------------------------------------------------


def test_gpu_check_fused_section_dry_run_on_cpu():
    pytest.importorskip('triton')
    from torch_utils.ops import fused
    mod = _gpu_check()
    ctx = dnnlib.EasyDict(device='cpu', small=dict(cfg='tiny', res=16, batch=2))
    before = os.environ.get('TRITON_INTERPRET')
    sys.modules.pop('torch_utils.ops.triton_kernels', None)
    try:
        out = mod.check_fused_ops(ctx)
    finally:
        sys.modules.pop('torch_utils.ops.triton_kernels', None)
        fused.reset()
    assert os.environ.get('TRITON_INTERPRET') == before and not fused.is_enabled()
    assert out['ok'] is True, out['summary']
    assert out['fp32']['grads_global_rel'] < 1e-4 and len(out['configurations']) >= 4
