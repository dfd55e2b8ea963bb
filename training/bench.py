"""Time training steps (or sampling) on the current device; prints JSON (s/kimg median and spread, peak memory).

  python -m training.bench --cfg=auto --res=256 --batch=16
  python -m training.bench --cfg=tiny --res=32 --model=cg-gan --threads=2
  python -m training.bench --cfg=auto --res=256 --batch=16 --compile=default --channels-last=1 --compare=1
  python -m training.bench --cfg=auto --res=256 --batch=16 --fused-ops=1 --channels-last=1 --compare=1
  python -m training.bench --cfg=auto --res=256 --batch=32 --sample=1 --compile=reduce-overhead --compare=1

One measurement = one full lazy-regularisation cycle (lcm of the G, D and CG-GAN L_s intervals, 16 steps
by default: Gmain and Dmain every step, Greg every 4th, Dreg every 16th), with synthetic inputs, after
warm-up steps. `--sparse-interval=N` applies CG-GAN's Jacobian term every N steps (weight x N).
"""
import json
import math
import resource
import time

import click
import numpy as np
import torch

import dnnlib
from torch_utils import training_stats
from torch_utils.ops import fused
from training import fast_path, presets

#----------------------------------------------------------------------------

def build(cfg, res, batch, model, device, fp32, domains, aug, sparse_interval=None):
    spec = presets.resolve(cfg, res, 1)
    G_kwargs, D_kwargs = presets.network_kwargs(spec, fp16=(device.type == 'cuda' and not fp32))
    loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec.gamma, pl_weight=spec.pl, style_mixing_prob=spec.mixing)
    if model != 'stylegan2-ada':
        G_kwargs.mapping_kwargs.update(presets.flow_mapping_kwargs(spec, cfg))
        loss_kwargs.lambda_sparse = 0.1
        if model == 'cg-gan':
            loss_kwargs.update(lambda_imgsparse=0.1, imgsparse_kwargs=dict(delta=0.1, style_mixing_prob=spec.mixing),
                               sparse_interval=sparse_interval or spec.sparse_interval)
    common = dict(c_dim=domains, img_resolution=res, img_channels=3)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(device)
    augment_pipe = None
    if aug:
        from training.augment import AUGPIPE_SPECS
        augment_pipe = dnnlib.util.construct_class_by_name(class_name='training.augment.AugmentPipe', **AUGPIPE_SPECS['bgc']).to(device)
        augment_pipe.p.fill_(0.2)
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    phases = []
    for name, module, interval in [('G', G, 4), ('D', D, 16)]:
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=spec.lrate * ratio, betas=[0.0, 0.99 ** ratio], eps=1e-8)
        phases += [dnnlib.EasyDict(name=name + 'main', module=module, opt=opt, interval=1),
                   dnnlib.EasyDict(name=name + 'reg', module=module, opt=opt, interval=interval)]
    return G, D, loss, phases


def step(G, D, loss, phases, batch, domains, device, batch_idx):
    real = torch.rand([batch, 3, G.img_resolution, G.img_resolution], device=device) * 2 - 1
    c = torch.nn.functional.one_hot(torch.randint(domains, [batch], device=device), domains).float() if domains else torch.zeros([batch, 0], device=device)
    for phase in phases:
        if batch_idx % phase.interval != 0:
            continue
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        z = torch.randn([batch, G.z_dim], device=device)
        loss.accumulate_gradients(phase=phase.name, real_img=real, real_c=c, gen_z=z, gen_c=c, gain=phase.interval, cur_step=batch_idx)
        phase.module.requires_grad_(False)
        loss.finish_phase(phase.name)
        phase.opt.step()


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _reset_peak(device):
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _spread(values):
    return dict(median=float(np.median(values)), min=float(np.min(values)), max=float(np.max(values)), all=[float(v) for v in values])

#----------------------------------------------------------------------------

def cycle_steps(phases, loss):
    """Steps in one lazy-regularisation cycle: lcm of the phase intervals and CG-GAN's L_s interval."""
    return math.lcm(*(p.interval for p in phases), getattr(loss, 'sparse_interval', 1))


def time_training(G, D, loss, phases, batch, domains, device, cycles, warmup):
    """Warm-up steps (timed apart: compilation lands here), then `cycles` lazy-regularisation cycles."""
    cycle = cycle_steps(phases, loss)
    _reset_peak(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(G, D, loss, phases, batch, domains, device, i)
    _sync(device)
    warmup_s = time.perf_counter() - t0
    _reset_peak(device)
    times = []
    for _ in range(cycles):
        _sync(device)
        t0 = time.perf_counter()
        for i in range(cycle):
            step(G, D, loss, phases, batch, domains, device, i)
        _sync(device)
        times.append((time.perf_counter() - t0) / (cycle * batch) * 1000)
    training_stats.reset()
    return dict(sec_per_kimg=_spread(times), warmup_s=warmup_s, peak_memory_gb=float(_peak(device)))


def time_sampling(G_fn, G, batch, domains, device, cycles, warmup, batches_per_cycle=16):
    """Images/s of G(z, c, truncation_psi=1, noise_mode='const') without gradients."""
    def sample():
        z = torch.randn([batch, G.z_dim], device=device)
        c = torch.nn.functional.one_hot(torch.randint(domains, [batch], device=device), domains).float() if domains else torch.zeros([batch, 0], device=device)
        return G_fn(z, c, truncation_psi=1, noise_mode='const')
    with torch.no_grad():
        _reset_peak(device)
        t0 = time.perf_counter()
        for _ in range(warmup):
            sample()
        _sync(device)
        warmup_s = time.perf_counter() - t0
        _reset_peak(device)
        rates = []
        for _ in range(cycles):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(batches_per_cycle):
                sample()
            _sync(device)
            rates.append(batches_per_cycle * batch / (time.perf_counter() - t0))
    return dict(images_per_sec=_spread(rates), warmup_s=warmup_s, peak_memory_gb=float(_peak(device)))

#----------------------------------------------------------------------------

@click.command()
@click.option('--cfg',           help='Preset', type=click.Choice(sorted(presets.PRESETS)), default='auto', show_default=True)
@click.option('--res',           help='Resolution', type=click.IntRange(min=4), default=256, show_default=True)
@click.option('--batch',         help='Batch size (one pass)', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--model',         help='Model', type=click.Choice(presets.MODELS), default='stylegan2-ada', show_default=True)
@click.option('--domains',       help='Number of domains (label length)', type=click.IntRange(min=0), default=2, show_default=True)
@click.option('--sparse-interval', help='CG-GAN: Jacobian term every N steps (weight x N) [default: from --cfg]', type=click.IntRange(min=1))
@click.option('--aug',           help='Run the bgc augment pipe (p=0.2)', type=bool, default=False, show_default=True)
@click.option('--cycles',        help='Timed cycles (training: 16-step lazy-regularisation cycles; sampling: 16 batches)', type=click.IntRange(min=1), default=3, show_default=True)
@click.option('--warmup',        help='Untimed steps (or batches) first; compilation happens here', type=click.IntRange(min=0), default=4, show_default=True)
@click.option('--threads',       help='CPU threads (default: torch default)', type=click.IntRange(min=1))
@click.option('--fp32',          help='Disable fp16 on CUDA', type=bool, default=False, show_default=True)
@click.option('--tf32',          help='Allow TF32 matmul/convolutions on CUDA', type=bool, default=True, show_default=True)
@click.option('--compile',       help='torch.compile mode of the fast path', type=click.Choice(fast_path.COMPILE_MODES), default='none', show_default=True)
@click.option('--backend',       help='torch.compile backend', type=click.Choice(['inductor', 'aot_eager', 'eager']), default='inductor', show_default=True)
@click.option('--channels-last', help='channels-last in the fp16 blocks', type=bool, default=False, show_default=True)
@click.option('--fused-ops',     help='Fused Triton kernels for bias_act / upfirdn2d (CUDA)', type=bool, default=False, show_default=True)
@click.option('--compare',       help='Also time the reference path first, in the same process', type=bool, default=False, show_default=True)
@click.option('--sample',        help='Time sampling (G_ema-like, no grad) instead of training', type=bool, default=False, show_default=True)
@click.option('--seed',          help='Random seed', type=int, default=0, show_default=True)
def main(cfg, res, batch, model, domains, sparse_interval, aug, cycles, warmup, threads, fp32, tf32, compile, backend, channels_last, fused_ops, compare, sample, seed): # pylint: disable=redefined-builtin
    """Time training steps (all phases in their lazy proportions) or sampling, and print JSON."""
    if res & (res - 1):
        raise click.BadParameter(f'{res} is not a power of two; pick e.g. 32, 64 or 256.', param_hint='--res')
    if model != 'stylegan2-ada' and domains == 0:
        raise click.BadParameter('flow models need domains; pass --domains=2 or more.', param_hint='--domains')
    if threads is not None:
        torch.set_num_threads(threads)
    device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(seed)
    G, D, loss, phases = build(cfg, res, batch, model, device, fp32, domains, aug, sparse_interval)
    config = fast_path.FastPathConfig(compile=compile, backend=backend, channels_last=channels_last, fused_ops=fused_ops)
    result = dict(
        config=dict(cfg=cfg, res=res, batch=batch, model=model, domains=domains, aug=aug, sparse_interval=loss.sparse_interval if model == 'cg-gan' else None,
                    cycle_steps=cycle_steps(phases, loss),
                    cycles=cycles, warmup=warmup, threads=torch.get_num_threads(), fp32=fp32 or device.type != 'cuda', tf32=tf32 and device.type == 'cuda',
                    sample=sample, G_params=sum(p.numel() for p in G.parameters()), D_params=sum(p.numel() for p in D.parameters())),
        fast_path=config.to_dict(),
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)',
        torch=torch.__version__,
    )
    key = 'images_per_sec' if sample else 'sec_per_kimg'

    def run(fast):
        fused.set_enabled(fast and config.fused_ops)
        if sample:
            G.eval()
            G_fn = G
            if fast:
                fast_path.set_channels_last(G, config.channels_last)
                G_fn = fast_path.compile_module(G, config, 'G')
            out = time_sampling(G_fn, G, batch, domains, device, cycles, warmup)
            out['status'] = fast_path.fast_path_report(dnnlib.EasyDict(fast=dict(G=G_fn))) if fast else {}
            return out
        if fast:
            fast_path.apply_to_loss(loss, config)
        out = time_training(G, D, loss, phases, batch, domains, device, cycles, warmup)
        out['status'] = fast_path.fast_path_report(loss) if fast else {}
        return out

    if compare:
        result['reference'] = run(fast=False)
        result['fast'] = run(fast=True)
        ref, fast = result['reference'][key]['median'], result['fast'][key]['median']
        result['fast_over_reference'] = fast / ref   # < 1 is faster for s/kimg, > 1 is faster for images/s
        result['speedup'] = ref / fast if key == 'sec_per_kimg' else fast / ref
        result.update({key: result['fast'][key], 'peak_memory_gb': result['fast']['peak_memory_gb']})
    else:
        result.update(run(fast=config.enabled))
    result['peak_memory_kind'] = 'cuda max_memory_allocated' if device.type == 'cuda' else 'process max RSS'
    print(json.dumps(result, indent=2))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
