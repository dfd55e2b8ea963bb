"""One GPU session's worth of checks for the fast path: timings of both paths, then correctness.

    python tools/gpu_check.py --quick          # 256^2/16 timings + both correctness checks, about 5 minutes on one H100
    python tools/gpu_check.py                  # everything (--budget caps it; sections that would start late are skipped)
    python tools/gpu_check.py --device=cpu     # dry run of the script itself on tiny nets (no GPU)

Order (cheap and decisive first): environment; G/D fp32 on CUDA vs CPU (same weights, TF32 off); fp16
(num_fp16_res=4, conv_clamp=256) vs fp32 on CUDA; timings, one `python -m training.bench` subprocess
each with a hard limit, the reference path first (no compiling: its numbers come in ~30 s), then the
fast path alone (--compile-cap seconds at most); the fast path vs the reference on small nets
(auto 32^2, batch 16): first with fp32 nets (the compiler alone), then fp16 + channels-last as trained,
judged against an eager fp32 copy with the same weights (the fp16 noise floor is |eager fp16 - fp32|):
gradients of one Gmain + Dmain round with requires_grad toggled as in training, then --steps full
training steps, as global relative errors with the worst tensors by name and any missing or non-finite
gradient; whether a compiled D supports double backward; CG-GAN L_s finite differences vs jvp; sampling
and CG-GAN timings, other compile modes while time is left. Every section prints one line; a failing
section prints its error and the script goes on. A table comes last; all results go to
$OUT/gpu_check.json (or --json) as they arrive.
"""
import copy
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import click

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#----------------------------------------------------------------------------

class SectionTimeout(Exception):
    pass


class Checker:
    """Runs sections under a global deadline, records results, writes JSON after each section."""

    def __init__(self, budget, json_path):
        self.start = time.time()
        self.deadline = self.start + budget
        self.json_path = json_path
        self.results = dict(sections=dict(), started=time.strftime('%Y-%m-%d %H:%M:%S'))

    def left(self):
        return self.deadline - time.time()

    def save(self):
        if not self.json_path:
            return
        folder = os.path.dirname(os.path.abspath(self.json_path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
        with os.fdopen(fd, 'w') as f:
            json.dump(self.results, f, indent=2, default=str)
        os.replace(tmp, self.json_path)

    def run(self, name, fn, limit, min_time=10):
        """fn() -> dict with 'ok' (bool or None) and 'summary' (str). Time limit: min(limit, what is left)."""
        limit = int(min(limit, self.left()))
        if limit < min_time:
            out = dict(ok=None, summary=f'skipped: {max(self.left(), 0):.0f} s of the budget left')
        else:
            t0 = time.time()
            handler = signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(limit)
            try:
                out = fn(limit)
            except SectionTimeout:
                out = dict(ok=False, summary=f'timed out after {limit} s')
            except Exception as e: # pylint: disable=broad-except
                out = dict(ok=False, summary=f'{type(e).__name__}: {_first_line(e)}', traceback=traceback.format_exc()[-3000:])
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, handler)
            out['seconds'] = round(time.time() - t0, 1)
        self.results['sections'][name] = out
        verdict = {True: 'PASS', False: 'FAIL', None: 'INFO'}[out.get('ok')]
        print(f'[{time.time() - self.start:6.0f}s] {name:<28s} {verdict:<4s} {out.get("summary", "")}', flush=True)
        self.save()
        return out


def _alarm(signum, frame):
    raise SectionTimeout()


def _first_line(e):
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else 'no message'

#----------------------------------------------------------------------------
# Helpers on tensors.

def _max_abs(a, b):
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def _rel(a, b):
    """||a - b|| / ||b|| (0 when both are 0)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def _global_rel(named_a, named_b):
    """||a - b|| / ||b|| over all tensors together (per-tensor ratios explode on near-zero tensors)."""
    import torch # pylint: disable=import-outside-toplevel
    err = sum(float((a.detach().double().cpu() - b.detach().double().cpu()).square().sum()) for a, b in zip(named_a, named_b))
    scale = sum(float(b.detach().double().cpu().square().sum()) for b in named_b)
    return math.sqrt(err) / max(math.sqrt(scale), 1e-30) if all(bool(torch.isfinite(t).all()) for t in list(named_a) + list(named_b)) else math.inf


def _diff_report(m_fast, m_ref, grads=True):
    """Gradients (or parameters) of two modules of the same structure: global relative error, the
    worst tensors by name, and which tensors are missing (None) or non-finite on either side."""
    import torch # pylint: disable=import-outside-toplevel
    fast, ref, missing, nonfinite, rows = [], [], [], [], []
    for (name, p1), p2 in zip(m_fast.named_parameters(), m_ref.parameters()):
        a, b = (p1.grad, p2.grad) if grads else (p1, p2)
        if a is None and b is None:
            continue
        if (a is None) != (b is None):
            missing.append(f'{name} ({"fast" if a is None else "ref"} has none)')
            continue
        for side, t in (('fast', a), ('ref', b)):
            if not bool(torch.isfinite(t).all()):
                nonfinite.append(f'{name} ({side})')
        fast.append(a)
        ref.append(b)
        rows.append((_rel(a, b), float(b.detach().float().norm()), name))
    rows.sort(key=lambda r: -r[0] if r[0] == r[0] else -math.inf)
    return dict(global_rel=_global_rel(fast, ref), missing=missing, nonfinite=nonfinite,
                worst=[f'{n}: {r:.2g} rel (|ref| {sc:.2g})' for r, sc, n in rows[:4]])


def _finite(*tensors):
    import torch # pylint: disable=import-outside-toplevel
    return all(bool(torch.isfinite(t).all()) for t in tensors)

#----------------------------------------------------------------------------
# Network builders.

def _nets(sizes, fp16, seed=0):
    import torch # pylint: disable=import-outside-toplevel
    import dnnlib # pylint: disable=import-outside-toplevel
    from training import presets # pylint: disable=import-outside-toplevel
    spec = presets.resolve(sizes['cfg'], sizes['res'], 1)
    G_kwargs, D_kwargs = presets.network_kwargs(spec, fp16=fp16)
    common = dict(c_dim=2, img_resolution=sizes['res'], img_channels=3)
    torch.manual_seed(seed)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).eval().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).eval().requires_grad_(False)
    return G, D


def _inputs(G, batch, device, seed=1):
    import torch # pylint: disable=import-outside-toplevel
    g = torch.Generator().manual_seed(seed)
    z = torch.randn([batch, G.z_dim], generator=g)
    c = torch.nn.functional.one_hot(torch.arange(batch) % 2, 2).float()
    img = torch.rand([batch, 3, G.img_resolution, G.img_resolution], generator=g) * 2 - 1
    return z.to(device), c.to(device), img.to(device)


def _r1(D, img, c):
    """R1 penalty and its gradient wrt D's parameters (double backward)."""
    import torch # pylint: disable=import-outside-toplevel
    img = img.detach().requires_grad_(True)
    logits = D(img, c)
    grad, = torch.autograd.grad(logits.sum(), [img], create_graph=True)
    penalty = grad.square().sum([1, 2, 3]).mean()
    params = [p for p in D.parameters() if p.requires_grad]
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    return penalty, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

#----------------------------------------------------------------------------
# Correctness sections.

def check_cuda_vs_cpu(ctx):
    import torch # pylint: disable=import-outside-toplevel
    G, D = _nets(ctx.small, fp16=False)
    Gd, Dd = copy.deepcopy(G).to(ctx.device), copy.deepcopy(D).to(ctx.device)
    z, c, img = _inputs(G, 4, 'cpu')
    with torch.no_grad():
        ref_img = G(z, c, noise_mode='const')
        dev_img = Gd(z.to(ctx.device), c.to(ctx.device), noise_mode='const')
        ref_logits = D(img, c)
        dev_logits = Dd(img.to(ctx.device), c.to(ctx.device))
    D.requires_grad_(True)
    Dd.requires_grad_(True)
    ref_pen, ref_grads = _r1(D, img, c)
    dev_pen, dev_grads = _r1(Dd, img.to(ctx.device), c.to(ctx.device))
    out = dict(G_max_abs=_max_abs(dev_img, ref_img), D_max_abs=_max_abs(dev_logits, ref_logits),
               D_scale=float(ref_logits.abs().max()), r1_rel=abs(float(dev_pen.detach()) - float(ref_pen.detach())) / max(abs(float(ref_pen.detach())), 1e-30),
               r1_grad_rel=max(_rel(a, b) for a, b in zip(dev_grads, ref_grads)), r1_finite=_finite(dev_pen, *dev_grads))
    out['ok'] = out['G_max_abs'] < 1e-3 and out['D_max_abs'] < 1e-3 * max(out['D_scale'], 1) and out['r1_rel'] < 1e-3 and out['r1_grad_rel'] < 1e-2 and out['r1_finite']
    out['summary'] = f"G {out['G_max_abs']:.2e} abs, D {out['D_max_abs']:.2e} abs, R1 {out['r1_rel']:.1e} rel, R1 grads {out['r1_grad_rel']:.1e} rel (fp32, TF32 off)"
    return out


def check_fp16(ctx):
    import torch # pylint: disable=import-outside-toplevel
    G32, D32 = _nets(ctx.small, fp16=False)
    G16, D16 = _nets(ctx.small, fp16=True)
    G16.load_state_dict(G32.state_dict())
    D16.load_state_dict(D32.state_dict())
    G32, D32, G16, D16 = (m.to(ctx.device) for m in (G32, D32, G16, D16))
    z, c, img = _inputs(G32, 8, ctx.device)
    with torch.no_grad():
        a, b = G16(z, c, noise_mode='const'), G32(z, c, noise_mode='const')
        la, lb = D16(img, c), D32(img, c)
    D16.requires_grad_(True)
    pen, grads = _r1(D16, img, c)
    out = dict(G_rel=_rel(a, b), G_max_abs=_max_abs(a, b), D_rel=_rel(la, lb), r1_fp16_finite=_finite(pen, *grads), r1_fp16=float(pen.detach()))
    out['ok'] = out['G_rel'] < 5e-2 and out['D_rel'] < 5e-2 and out['r1_fp16_finite']
    out['summary'] = f"G {out['G_rel']:.1e} rel ({out['G_max_abs']:.1e} abs), D {out['D_rel']:.1e} rel, R1 fp16 finite={out['r1_fp16_finite']}"
    return out


def check_fused_ops(ctx):
    """Fused Triton ops vs the reference ops on real nets (ctx.small): G forward + backward, D with the
    R1 penalty (double backward), in fp32 and in fp16 + channels-last as trained; every configuration
    must pass the kernels' own self-check. Then micro-timings of each op, fused vs reference. On the
    CPU (dry run) the kernels run in Triton's interpreter."""
    from torch_utils.ops import fused # pylint: disable=import-outside-toplevel
    out = dict()
    interpret_before = os.environ.get('TRITON_INTERPRET')
    if ctx.device == 'cpu':
        os.environ['TRITON_INTERPRET'] = '1'
    fused.reset()
    try:
        for precision in ('fp32', 'fp16') if ctx.device == 'cuda' else ('fp32',):  # the CPU builds fp16 blocks in float32
            out[precision] = _fused_vs_reference(ctx, fp16=(precision == 'fp16'))
        if ctx.device == 'cuda':
            out['timing_fwd_bwd'] = _fused_op_timings(ctx)
    finally:
        fused.set_enabled(False)
        if ctx.device == 'cpu':
            os.environ.pop('TRITON_INTERPRET') if interpret_before is None else os.environ.update(TRITON_INTERPRET=interpret_before)
    status = fused.status()
    out['configurations'] = {str(k): v for k, v in status.items()}
    out['ok'] = bool(status) and all(status.values()) and out['fp32']['img_rel'] < 1e-4 and out['fp32']['grads_global_rel'] < 1e-3 \
        and out.get('fp16', dict(grads_global_rel=0))['grads_global_rel'] < 5e-2
    out['summary'] = (f"{sum(status.values())}/{len(status)} configs passed self-check; "
                      + '; '.join(f"{p} img {out[p]['img_rel']:.1e}, grads {out[p]['grads_global_rel']:.1e} rel" for p in ('fp32', 'fp16') if p in out)
                      + ''.join(f"; {k} x{v['ref_ms'] / v['fused_ms']:.2f}" for k, v in out.get('timing_fwd_bwd', {}).items()))
    return out


def _fused_vs_reference(ctx, fp16):
    """G image + gradients of a fixed projection, R1 penalty + its D gradients: fused on vs off."""
    import torch # pylint: disable=import-outside-toplevel
    from torch_utils.ops import fused # pylint: disable=import-outside-toplevel
    from training import fast_path # pylint: disable=import-outside-toplevel
    G, D = _nets(ctx.small, fp16=fp16)
    G, D = G.to(ctx.device).requires_grad_(True), D.to(ctx.device).requires_grad_(True)
    if fp16:
        fast_path.set_channels_last(G, True)
        fast_path.set_channels_last(D, True)
    z, c, _ = _inputs(G, 8 if ctx.device == 'cuda' else 2, ctx.device)
    runs = []
    for enabled in (True, False):
        fused.set_enabled(enabled)
        G.zero_grad(set_to_none=True)
        img = G(z, c, noise_mode='const')
        (img.float() * torch.linspace(-1, 1, img.numel(), device=img.device).reshape(img.shape)).sum().backward()
        pen, r1_grads = _r1(D, img.detach().float(), c)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in G.parameters()] + list(r1_grads)
        runs.append((img.detach(), pen.detach(), [g.detach().clone() for g in grads]))
    fused.set_enabled(False)
    (img, pen, grads), (img_ref, pen_ref, grads_ref) = runs
    return dict(img_rel=_rel(img, img_ref), r1_rel=_rel(pen, pen_ref), grads_global_rel=_global_rel(grads, grads_ref))


def _fused_op_timings(ctx):
    """ms per forward + backward at a 256^2 layer's size (batch 16, 128 channels at 128^2, fp16 channels-last)."""
    import torch # pylint: disable=import-outside-toplevel
    from torch_utils.ops import bias_act, fused, upfirdn2d # pylint: disable=import-outside-toplevel
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=ctx.device)
    x = torch.randn([16, 128, 128, 128], device=ctx.device, dtype=torch.float16).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    b = torch.randn([128], device=ctx.device, dtype=torch.float16)
    cases = dict(bias_act_lrelu_clamp=lambda impl: bias_act.bias_act(x, b, act='lrelu', clamp=256, impl=impl),
                 upsample2d=lambda impl: upfirdn2d.upsample2d(x, f, impl=impl),
                 downsample2d=lambda impl: upfirdn2d.downsample2d(x, f, impl=impl),
                 filter_after_transposed_conv=lambda impl: upfirdn2d.upfirdn2d(x, f, padding=[1, 1, 1, 1], gain=4, impl=impl))
    fused.set_enabled(True)
    timing = {name: dict(ref_ms=_cuda_ms(lambda fn=fn: fn('ref').float().sum().backward()),
                         fused_ms=_cuda_ms(lambda fn=fn: fn('auto').float().sum().backward())) for name, fn in cases.items()}
    fused.set_enabled(False)
    return timing


def _cuda_ms(fn, reps=10):
    import torch # pylint: disable=import-outside-toplevel
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def check_fast_vs_reference(ctx, fp32=False):
    """Copies of the real training setup (ctx.track size, same weights): ref (eager, the judged
    precision), fast (compiled), and truth (eager fp32: the fp16 noise floor is |ref - truth|).
    Mainline gradients of one Gmain + Dmain round with requires_grad toggled as in training, then
    ctx.steps full training steps (all phases); global relative errors, worst tensors by name."""
    import torch # pylint: disable=import-outside-toplevel
    from torch_utils.ops import fused # pylint: disable=import-outside-toplevel
    from training import bench, fast_path # pylint: disable=import-outside-toplevel
    s = ctx.track
    device = torch.device(ctx.device)

    def make(fp32_copy):
        torch.manual_seed(0)
        return bench.build(s['cfg'], s['res'], s['batch'], 'stylegan2-ada', device, fp32_copy, 2, False)
    copies = dict(ref=make(fp32), fast=make(fp32), truth=make(True))
    for i in (0, 1):
        copies['truth'][i].load_state_dict(copies['ref'][i].state_dict())
    cfg = fast_path.FastPathConfig(compile=ctx.mode, backend=ctx.backend, channels_last=(device.type == 'cuda' and not fp32), fused_ops=(device.type == 'cuda'))
    t0 = time.time()
    fast_path.apply_to_loss(copies['fast'][2], cfg)
    use_fused = lambda name: fused.set_enabled(cfg.fused_ops and name == 'fast')  # a process-wide switch: only the fast copy uses the kernels

    for name, (G, D, loss, _phases) in copies.items():
        use_fused(name)
        real = torch.rand([s['batch'], 3, s['res'], s['res']], generator=torch.Generator().manual_seed(5)).to(device) * 2 - 1
        c = torch.nn.functional.one_hot(torch.arange(s['batch']) % 2, 2).float().to(device)
        z = torch.randn([s['batch'], G.z_dim], generator=torch.Generator().manual_seed(6)).to(device)
        for phase, module in [('Gmain', G), ('Dmain', D)]:
            module.requires_grad_(True)
            torch.manual_seed(7)
            loss.accumulate_gradients(phase=phase, real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1)
            module.requires_grad_(False)
    compile_s = time.time() - t0
    out = dict(mode=ctx.mode, backend=ctx.backend, size=s, steps=ctx.steps, fp32=fp32, compile_and_first_round_s=round(compile_s, 1))
    for k, i in (('G', 0), ('D', 1)):
        out[f'{k}_grads_fast_vs_ref'] = _diff_report(copies['fast'][i], copies['ref'][i])
        out[f'{k}_grads_fast_vs_truth'] = _diff_report(copies['fast'][i], copies['truth'][i])
        out[f'{k}_grads_ref_vs_truth'] = _diff_report(copies['ref'][i], copies['truth'][i])
    for G, D, _loss, _phases in copies.values():
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = None
    use_fused('fast')
    status_after_grads = fast_path.fast_path_report(copies['fast'][2])

    # Full training steps, all phases in their lazy proportions, same seeds.
    for i in range(ctx.steps):
        for name, (G, D, loss, phases) in copies.items():
            use_fused(name)
            torch.manual_seed(1000 + i)
            bench.step(G, D, loss, phases, s['batch'], 2, device, i)
    for k, i in (('G', 0), ('D', 1)):
        out[f'{k}_params_fast_vs_truth'] = _diff_report(copies['fast'][i], copies['truth'][i], grads=False)
        out[f'{k}_params_ref_vs_truth'] = _diff_report(copies['ref'][i], copies['truth'][i], grads=False)
    use_fused('fast')
    status = fast_path.fast_path_report(copies['fast'][2])
    fused.set_enabled(False)
    fell_back = any(v.startswith('fallback') for v in status.values())
    out.update(status_after_grads=status_after_grads, status=status, fell_back=fell_back)

    # Verdict: the fast path may not be further from fp32 truth than the reference is (x3, with a floor).
    ok, notes = not fell_back, []
    for k in ('G', 'D'):
        for what, floor_min in (('grads', 1e-2 if not fp32 else 1e-3), ('params', 1e-3)):
            fast, ref = out[f'{k}_{what}_fast_vs_truth'], out[f'{k}_{what}_ref_vs_truth']
            tol = max(3 * ref['global_rel'], floor_min) if not fp32 else floor_min
            good = fast['global_rel'] <= tol and not fast['missing'] and not fast['nonfinite']
            ok = ok and good
            notes.append(f"{k} {what} {fast['global_rel']:.1e} (ref {ref['global_rel']:.1e})" + ('' if good else ' BAD'))
    out['ok'] = ok
    out['summary'] = (f"{ctx.mode}{' fp32' if fp32 else ''} vs eager fp32: " + ', '.join(notes) +
                      f"; {'FELL BACK ' + str(status) if fell_back else 'no fallback'}; compile {compile_s:.0f} s")
    ctx.fast_copy = copies['fast']
    return out


def check_compiled_double_backward(ctx):
    """Does a compiled D support R1's double backward? (The fast path assumes not and keeps R1 eager.)"""
    import torch # pylint: disable=import-outside-toplevel
    if getattr(ctx, 'fast_copy', None) is None or not ctx.fast_copy[2].fast:
        return dict(ok=None, summary='no compiled D from the previous section')
    G, D, loss, _phases = ctx.fast_copy
    s = ctx.track
    img = torch.rand([s['batch'], 3, s['res'], s['res']], device=ctx.device) * 2 - 1
    c = torch.nn.functional.one_hot(torch.arange(s['batch']) % 2, 2).float().to(ctx.device)
    D.requires_grad_(True)
    try:
        _pen_eager, g_eager = _r1(D, img, c)
        try:
            compiled = loss.fast.D.compiled
            img_t = img.detach().requires_grad_(True)
            grad, = torch.autograd.grad(compiled(img_t, c).sum(), [img_t], create_graph=True)
            pen = grad.square().sum([1, 2, 3]).mean()
            g_fast = torch.autograd.grad(pen, [p for p in D.parameters() if p.requires_grad], allow_unused=True)
            diff = max(_rel(a, b) for a, b in zip(g_fast, g_eager) if a is not None)
            return dict(ok=None, supported=True, r1_grad_rel=diff, summary=f'compiled D double backward works (R1 grads {diff:.1e} rel vs eager); R1 could be compiled too')
        except Exception as e: # pylint: disable=broad-except
            return dict(ok=None, supported=False, summary=f'not supported, as assumed (R1 stays eager): {type(e).__name__}: {_first_line(e)[:120]}')
    finally:
        D.requires_grad_(False)


def check_cg_jvp_vs_fd(ctx):
    import torch # pylint: disable=import-outside-toplevel
    import dnnlib # pylint: disable=import-outside-toplevel
    from training import cg_regularizers, presets # pylint: disable=import-outside-toplevel
    s = ctx.small
    spec = presets.resolve(s['cfg'], s['res'], 1)
    G_kwargs, _ = presets.network_kwargs(spec, fp16=False)
    G_kwargs.mapping_kwargs.update(presets.flow_mapping_kwargs(spec, s['cfg']))
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, c_dim=2, img_resolution=s['res'], img_channels=3).eval().requires_grad_(False).to(ctx.device)
    z, c, _img = _inputs(G, 4, ctx.device)
    cols = cg_regularizers.style_columns(G.mapping, device=ctx.device)[:4].tolist()
    fd = cg_regularizers.jacobian_column_l1(G, z, c, cols, estimator='fd', delta=1e-2)
    jvp = cg_regularizers.jacobian_column_l1(G, z, c, cols, estimator='jvp')
    torch.manual_seed(3)
    pen = cg_regularizers.jacobian_sparsity_penalty(G, z, c, delta=0.1, estimator='jvp')
    rel = float(((fd - jvp).abs() / jvp.abs().clamp(min=1e-12)).max())
    out = dict(columns=cols, fd=fd.tolist(), jvp=jvp.tolist(), max_rel=rel, penalty_jvp=float(pen.detach()), finite=_finite(fd, jvp, pen))
    out['ok'] = rel < 5e-2 and out['finite']
    out['summary'] = f'{len(cols)} columns, fd (delta 1e-2) vs jvp {rel:.1e} rel (fp32, {ctx.device}), L_s jvp {float(pen.detach()):.3g}'
    return out

#----------------------------------------------------------------------------
# Timing sections: subprocesses of training.bench.

def bench(ctx, limit, args):
    cmd = [sys.executable, '-m', 'training.bench', *args]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(limit - 2, 1), env=os.environ)
    except subprocess.TimeoutExpired:
        return dict(ok=False, summary=f'timed out after {limit} s', command=' '.join(cmd[1:]))
    warns = [line.strip() for line in r.stderr.splitlines() if 'fast path:' in line]
    if r.returncode != 0:
        return dict(ok=False, summary=f'exit {r.returncode}: {r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else ""}',
                    stderr_tail=r.stderr[-3000:], command=' '.join(cmd[1:]))
    res = json.loads(r.stdout)
    res['command'] = ' '.join(cmd[1:])
    res['fast_path_warnings'] = warns
    return res


def _median(res, key):
    return res.get(key, {}).get('median') if isinstance(res, dict) else None


def time_training(ctx, limit, size, model, mode=None, ref=None, fused_ops=True, extra=()):
    """One bench subprocess: mode 'none' without fused ops times the reference path (no compiling:
    numbers in ~30 s); otherwise the fast path alone (a compile mode and/or the fused ops), compared
    with `ref` (that size's reference section)."""
    mode = mode or ctx.mode
    fast = mode != 'none' or fused_ops
    label = '+'.join(([mode] if mode != 'none' else []) + (['fused'] if fused_ops else [])) or 'reference'
    args = [f'--cfg={size["cfg"]}', f'--res={size["res"]}', f'--batch={size["batch"]}', f'--model={model}', f'--cycles={ctx.cycles}',
            f'--warmup={ctx.warmup if fast else 2}', f'--compile={mode}', f'--backend={ctx.backend}', f'--fused-ops={int(fused_ops)}',
            f'--channels-last={int(ctx.device == "cuda" and fast)}', '--compare=0', *extra, *ctx.bench_extra]
    res = bench(ctx, limit, args)
    t = _median(res, 'sec_per_kimg')
    if t is None:
        return res
    ref_t = _median(ref, 'sec_per_kimg')
    res['ok'] = None if not res['fast_path_warnings'] else False
    spread = res['sec_per_kimg']
    res['summary'] = (f"{label} {t:.2f} s/kimg [{spread['min']:.2f}-{spread['max']:.2f}] ({res['peak_memory_gb']:.1f} GB, warm-up {res['warmup_s']:.0f} s)"
                      + (f", x{ref_t / t:.2f} vs reference {ref_t:.2f}" if fast and ref_t else '')
                      + (f"; status {res.get('status')}" if fast else '')
                      + (f"; WARN {res['fast_path_warnings'][0][:120]}" if res['fast_path_warnings'] else ''))
    if fast and ref_t:
        res['speedup'] = ref_t / t
    return res


def time_sampling(ctx, limit, size, mode=None):
    mode = mode or ctx.sample_mode
    args = [f'--cfg={size["cfg"]}', f'--res={size["res"]}', f'--batch={size["sample_batch"]}', '--sample=1', f'--cycles={ctx.cycles}',
            f'--warmup={ctx.warmup}', f'--compile={mode}', f'--backend={ctx.backend}', f'--channels-last={int(ctx.device == "cuda")}',
            f'--fused-ops={int(ctx.device == "cuda")}', '--compare=1', *ctx.bench_extra]
    res = bench(ctx, limit, args)
    if 'images_per_sec' not in res:
        return res
    res['ok'] = None if not res['fast_path_warnings'] else False
    res['summary'] = (f"ref {res['reference']['images_per_sec']['median']:.0f} img/s -> {mode} {res['fast']['images_per_sec']['median']:.0f} img/s "
                      f"(x{res['speedup']:.2f}, batch {size['sample_batch']}, warm-up {res['fast']['warmup_s']:.0f} s)")
    return res

#----------------------------------------------------------------------------

def environment(ctx):
    import torch # pylint: disable=import-outside-toplevel
    info = dict(python=sys.version.split()[0], torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        info.update(device=torch.cuda.get_device_name(0), capability='.'.join(map(str, torch.cuda.get_device_capability(0))),
                    cudnn=torch.backends.cudnn.version(), memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    try:
        import triton # pylint: disable=import-outside-toplevel
        info['triton'] = triton.__version__
    except Exception: # pylint: disable=broad-except
        info['triton'] = None
    info['ok'] = None
    info['summary'] = f"torch {info['torch']}, CUDA {info['cuda']}, {info.get('device', 'cpu')}, triton {info['triton']}"
    return info


def _table(results):
    rows = [('section', 'verdict', 'result')]
    for name, out in results['sections'].items():
        rows.append((name, {True: 'PASS', False: 'FAIL', None: 'info'}[out.get('ok')], str(out.get('summary', ''))))
    w = max(len(r[0]) for r in rows)
    lines = [f'{a:<{w}s}  {b:<7s}  {c}' for a, b, c in rows]
    return '\n'.join([lines[0], '-' * min(max(len(line) for line in lines), 160)] + lines[1:])


def _targets(results):
    """The issue's targets (H100 figures), from the best fast-path timing present per row (fused, or compiled + fused)."""
    sec = results['sections']
    def best(prefix):
        times = [(_median(sec.get(prefix + suffix, {}), 'sec_per_kimg'), prefix + suffix) for suffix in ('_fused', '_fast')]
        times = [t for t in times if t[0] is not None]
        return min(times) if times else (None, None)
    t = dict()
    for prefix, target in [('time_sg2_256_b16', 6.8), ('time_sg2_64_b64', 1.4)]:
        v, name = best(prefix)
        if v is not None:
            t[prefix] = dict(fast_s_per_kimg=v, best=name, target=target, met=v <= target)
    for sg2, cg in [('time_sg2_256_b16', 'time_cg_256_b16'), ('time_sg2_64_b64', 'time_cg_64_b64')]:
        (a, _), (b, _) = best(sg2), best(cg)
        if a is not None and b is not None:
            t[cg + '_overhead'] = dict(ratio=b / a, target=1.2, met=b / a <= 1.2)
    return t

#----------------------------------------------------------------------------

@click.command()
@click.option('--device',  help='cuda, cpu (dry run on tiny nets), or auto (cuda if present, else exit)', type=click.Choice(['auto', 'cuda', 'cpu']), default='auto', show_default=True)
@click.option('--quick',   help='Correctness on small nets + the 256^2/16 timing only', is_flag=True)
@click.option('--budget',  help='Wall-clock budget in seconds; sections that would start later are skipped', type=click.IntRange(min=30), default=470, show_default=True)
@click.option('--mode',    help='torch.compile mode of the fast path', type=click.Choice(['default', 'reduce-overhead', 'max-autotune-no-cudagraphs', 'max-autotune']), default='default', show_default=True)
@click.option('--sample-mode', help='torch.compile mode for sampling', type=click.Choice(['default', 'reduce-overhead', 'max-autotune-no-cudagraphs', 'max-autotune']), default='reduce-overhead', show_default=True)
@click.option('--extra-modes', help='Comma-separated modes to time at 256^2/16 (fast path only) if time is left', default='reduce-overhead,max-autotune-no-cudagraphs', show_default=True)
@click.option('--steps',   help='Full training steps of the tracking check', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--compile-cap', help='Seconds at most for a section that compiles', type=click.IntRange(min=30), default=150, show_default=True)
@click.option('--json',    'json_path', help='Results file [default: $OUT/gpu_check.json if $OUT is set]', type=str)
def main(device, quick, budget, mode, sample_mode, extra_modes, steps, compile_cap, json_path):
    """Check the fast path against the reference path on the GPU, then time both; table last."""
    import torch # pylint: disable=import-outside-toplevel
    if device == 'auto':
        if not torch.cuda.is_available():
            print('no CUDA: nothing to check here (use --device=cpu for a dry run of the script on tiny nets).')
            return
        device = 'cuda'
    if device == 'cuda' and not torch.cuda.is_available():
        raise click.ClickException('--device=cuda but no CUDA device is visible; run on a GPU machine or pass --device=cpu for a dry run.')
    if json_path is None and os.environ.get('OUT'):
        json_path = os.path.join(os.environ['OUT'], 'gpu_check.json')

    from dnnlib import EasyDict # pylint: disable=import-outside-toplevel
    ctx = EasyDict(device=device, mode=mode, sample_mode=sample_mode, steps=steps, fast_copy=None)
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # correctness sections: plain fp32
        ctx.update(backend='inductor', cycles=2, warmup=6, bench_extra=[],
                   small=dict(cfg='auto', res=64, batch=64), big=dict(cfg='auto', res=256, batch=16, sample_batch=64),
                   track=dict(cfg='auto', res=32, batch=16), compile_cap=compile_cap)
    else:
        torch.set_num_threads(min(torch.get_num_threads(), 2))
        ctx.update(backend='eager', cycles=1, warmup=1, bench_extra=['--threads=1'], steps=min(steps, 2),
                   small=dict(cfg='tiny', res=16, batch=4), big=dict(cfg='tiny', res=16, batch=4, sample_batch=4),
                   track=dict(cfg='tiny', res=16, batch=4), compile_cap=compile_cap)
    small_t = dict(ctx.small, sample_batch=ctx.big['sample_batch'])

    chk = Checker(budget, json_path)
    print(f'gpu_check: device={device}, budget {budget} s, mode {mode}, quick={quick}', flush=True)
    chk.run('environment', lambda limit: environment(ctx), 30, min_time=1)
    chk.results['environment'] = chk.results['sections']['environment']
    chk.run('cuda_vs_cpu_fp32', lambda limit: check_cuda_vs_cpu(ctx), 60)
    chk.run('fp16_vs_fp32', lambda limit: check_fp16(ctx), 40)
    chk.run('fused_ops_vs_reference', lambda limit: check_fused_ops(ctx), 90)
    # Timings first (each its own subprocess with a hard limit; the reference needs no compiling).
    ref = chk.run('time_sg2_256_b16_ref', lambda limit: time_training(ctx, limit, ctx.big, 'stylegan2-ada', mode='none', fused_ops=False), 90, min_time=30)
    chk.run('time_sg2_256_b16_fused', lambda limit: time_training(ctx, limit, ctx.big, 'stylegan2-ada', mode='none', ref=ref), 90, min_time=30)
    chk.run('time_sg2_256_b16_fast', lambda limit: time_training(ctx, limit, ctx.big, 'stylegan2-ada', ref=ref), ctx.compile_cap, min_time=60)
    if not quick:
        ref = chk.run('time_sg2_64_b64_ref', lambda limit: time_training(ctx, limit, small_t, 'stylegan2-ada', mode='none', fused_ops=False), 60, min_time=20)
        chk.run('time_sg2_64_b64_fused', lambda limit: time_training(ctx, limit, small_t, 'stylegan2-ada', mode='none', ref=ref), 60, min_time=20)
        chk.run('time_sg2_64_b64_fast', lambda limit: time_training(ctx, limit, small_t, 'stylegan2-ada', ref=ref), ctx.compile_cap, min_time=60)
    # Correctness of the fast path (small nets): fp32 first (the compiler alone), then fp16 + channels-last as trained.
    chk.run('fast_vs_reference_fp32', lambda limit: check_fast_vs_reference(ctx, fp32=True), ctx.compile_cap, min_time=30)
    ctx.fast_copy = None
    chk.run('fast_vs_reference', lambda limit: check_fast_vs_reference(ctx), ctx.compile_cap, min_time=30)
    if not quick:
        chk.run('compiled_double_backward', lambda limit: check_compiled_double_backward(ctx), 60)
        chk.run('cg_jvp_vs_fd', lambda limit: check_cg_jvp_vs_fd(ctx), 40)
    ctx.fast_copy = None
    if device == 'cuda':
        torch.cuda.empty_cache()
    if not quick:
        chk.run('time_sample_256', lambda limit: time_sampling(ctx, limit, ctx.big), 120, min_time=30)
        ref = chk.run('time_cg_256_b16_ref', lambda limit: time_training(ctx, limit, ctx.big, 'cg-gan', mode='none', fused_ops=False), 90, min_time=30)
        chk.run('time_cg_256_b16_fused', lambda limit: time_training(ctx, limit, ctx.big, 'cg-gan', mode='none', ref=ref), 90, min_time=30)
        chk.run('time_cg_256_b16_fast', lambda limit: time_training(ctx, limit, ctx.big, 'cg-gan', ref=ref), ctx.compile_cap, min_time=60)
        chk.run('time_cg_64_b64_fused', lambda limit: time_training(ctx, limit, small_t, 'cg-gan', mode='none'), 60, min_time=20)
        chk.run('time_cg_64_b64_fused_lazy4', lambda limit: time_training(ctx, limit, small_t, 'cg-gan', mode='none', extra=['--sparse-interval=4']), 60, min_time=20)
        for extra in [m for m in extra_modes.split(',') if m and m != mode]:
            chk.run(f'time_sg2_256_b16_{extra}', lambda limit, extra=extra: time_training(ctx, limit, ctx.big, 'stylegan2-ada', mode=extra), ctx.compile_cap, min_time=60)
    chk.results['targets'] = _targets(chk.results)
    chk.results['total_seconds'] = round(time.time() - chk.start, 1)
    chk.save()
    print()
    print(_table(chk.results))
    for name, t in chk.results['targets'].items():
        print(f'target {name}: ' + ', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}' for k, v in t.items()))
    print(f'total {chk.results["total_seconds"]:.0f} s' + (f'; JSON: {json_path}' if json_path else ''))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
