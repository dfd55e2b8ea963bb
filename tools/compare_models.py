"""Compare StyleGAN2-ADA (concat conditioning), i-StyleGAN and CG-GAN trained the same way.

  python tools/compare_models.py --data=/tmp/cmp/shapes-32.zip --kimg=40 --outdir=/tmp/cmp/out --seed=0
  python tools/compare_models.py --data=/tmp/cmp/shapes-32.zip --outdir=/tmp/cmp/out \
      --network=stylegan2-ada=runs/a/network-snapshot-000040.pt --network=cg-gan=runs/b/network-snapshot-000040.pt

Either trains each model with train.py's `tiny` preset (same --seed, so the same reals order, latents
and labels in every run; one torch thread per run) or takes existing snapshots, then measures the final
G_ema of each and writes <outdir>/results.json and <outdir>/results.md.

Measures (all on G_ema with constant noise, no truncation, no style mixing):
  active dims       style dims with importance r > 0.1, for G and G_ema (the baseline has no mask).
  Jacobian columns  J e_k = d img / d x_k, x the latent that enters the z -> w MLP (the same x that
                    L_s perturbs), for N eps in every domain.
                    Style columns = the active style dims; content columns = every other z dim. The
                    baseline has no mask: its "style" columns are the first i_dim dims and its content
                    columns the rest (same indices as the flow models; the names mean nothing there).
                    Exact forward-mode products (torch.func.jvp), float32 (synthesis runs in float32).
    l1              mean |J_ik| over the pixels i (paper Eq. 9 up to the constant number of pixels).
                    NOT scale-free: a generator that makes every image change smaller lowers it.
    l1/l2           ||J e_k||_1 / (sqrt(n) ||J e_k||_2) in [1/sqrt(n), 1]: the scale-free L1; 1 = the
                    change is spread evenly over all n pixel values, small = concentrated (sparse).
    hoyer           (sqrt(n) - ||.||_1/||.||_2) / (sqrt(n) - 1) in [0, 1] (Hoyer 2004), 1 = one non-zero.
    small           fraction of entries with |J_ik| < tau * max_i |J_ik| (tau = --tau), scale-free.
    style/content   mean l1 of the style columns / mean l1 of the content columns (scale-free share).
  swap metrics      metrics/swap.py (the swap1k metric): probe-judged domain accuracy and content kappa.
  L_s gradient      cg-gan runs: |grad of lambda*interval*L_s| / |grad of the adversarial G loss| over
                    G's parameters on one batch (is the sparsity term felt at all?).
  s/kimg            median Timing/sec_per_kimg of the run's ticks after tick 0 (stats.jsonl), and with
                    --bench the uncontended training.bench figure (one thread).
"""
import json
import math
import os
import re
import subprocess
import sys
import time

import click
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import dnnlib # noqa: E402
from metrics.generator_jacobian import active_dims, column_split, domain_columns, eval_copy, jacobian_columns, latent_fn, render  # noqa: E402,F401

MODELS = ('stylegan2-ada', 'istylegan', 'cg-gan')

class UserError(Exception):
    pass

#----------------------------------------------------------------------------
# Training.

def train_command(model, data, kimg, seed, outdir, python=sys.executable):
    """argv of one tiny-preset training run (metrics off: they are measured here afterwards)."""
    return [python, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data}', '--cfg=tiny', f'--model={model}',
            f'--kimg={kimg:g}', f'--seed={seed}', '--metrics=none', '--snap=1']


def find_run_dir(outdir):
    """Newest run folder (NNNNN-...) under outdir holding a training_options.json."""
    runs = sorted(d for d in os.listdir(outdir) if re.match(r'^\d{5}-', d) and os.path.isfile(os.path.join(outdir, d, 'training_options.json'))) if os.path.isdir(outdir) else []
    if not runs:
        raise UserError(f'no training run found under "{outdir}"; see its log file for the error.')
    return os.path.join(outdir, runs[-1])


def final_snapshot(run_dir):
    snaps = sorted(f for f in os.listdir(run_dir) if re.match(r'^network-snapshot-\d+\.pt$', f))
    if not snaps:
        raise UserError(f'run "{run_dir}" wrote no network-snapshot-*.pt; it may have failed, see its log.txt.')
    return os.path.join(run_dir, snaps[-1])


def train_models(models, data, kimg, seed, outdir, parallel):
    """Train every model with the tiny preset (OMP/MKL threads = 1 each); returns {model: snapshot path}."""
    from tqdm import tqdm
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = {}
    for model in tqdm(models, desc='training', disable=parallel):
        sub = os.path.join(outdir, 'runs', model)
        os.makedirs(sub, exist_ok=True)
        logf = open(os.path.join(outdir, 'runs', f'{model}.out'), 'w')
        procs[model] = (subprocess.Popen(train_command(model, data, kimg, seed, sub), cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT), logf)
        if not parallel:
            procs[model][0].wait()
    for model, (p, logf) in procs.items():
        p.wait()
        logf.close()
        if p.returncode != 0:
            raise UserError(f'training {model} failed (exit code {p.returncode}); see {os.path.join(outdir, "runs", model + ".out")}.')
    return {m: final_snapshot(find_run_dir(os.path.join(outdir, 'runs', m))) for m in models}

#----------------------------------------------------------------------------
# Jacobian columns (metrics/generator_jacobian.py) and their sparsity.

def column_sparsity(J, tau=0.05):
    """Per-column statistics of J [cols, B, n], each averaged over the B samples -> dict of [cols] arrays."""
    n = J.shape[-1]
    a = J.abs()
    l1 = a.mean(-1)                                                                       # mean |J_ik|
    l2 = a.square().mean(-1).sqrt()                                                       # rms
    ratio = l1 / l2.clamp(min=1e-30)                                                      # ||.||_1 / (sqrt(n) ||.||_2)
    hoyer = (math.sqrt(n) - ratio * math.sqrt(n)) / (math.sqrt(n) - 1)                    # Hoyer (2004)
    small = (a < tau * a.amax(-1, keepdim=True)).to(J.dtype).mean(-1)
    return {k: v.mean(1).cpu().numpy() for k, v in dict(l1=l1, l1_l2=ratio, hoyer=hoyer, small=small).items()}


def measure_generator(G, num_latents=32, seed=0, tau=0.05, i_dim=None, columns=None):
    """All Jacobian numbers of one generator: N eps rendered in every domain (same eps across domains).
    `columns`: domain_columns(G, ...) already computed (its num_latents and seed then hold)."""
    cols = columns if columns is not None else domain_columns(G, num_latents, seed, i_dim)
    style, content, note = cols['style'], cols['content'], cols['note']
    out = dict(columns_note=note, style_columns=style, content_columns=content, num_latents=cols['num_latents'],
               num_domains=max(int(G.c_dim), 1), tau=tau, estimator='jvp')
    per = column_sparsity(cols['J'], tau=tau)
    ns = len(style)
    for group, sl in (('style', slice(0, ns)), ('content', slice(ns, None))):
        for key, arr in per.items():
            vals = arr[sl]
            out[f'{group}_{key}'] = float(np.mean(vals)) if len(vals) else float('nan')
            out[f'{group}_{key}_per_column'] = [float(v) for v in vals]
    out['style_content_l1_ratio'] = out['style_l1'] / out['content_l1'] if out['content_l1'] > 0 else float('nan')
    return out


def ls_gradient_share(G, D, lambda_imgsparse, sparse_interval=1, delta=0.1, batch=32, seed=0):
    """Is L_s felt? Gradient norms over G's parameters, on one batch, of the adversarial G loss
    softplus(-D(G(z, c), c)) (no augmentation) and of the weighted L_s term as the loss adds it,
    lambda_imgsparse * sparse_interval * L_s (its expected pull per step equals lambda * L_s)."""
    import copy
    from training.cg_regularizers import jacobian_sparsity_penalty
    G = copy.deepcopy(G).train().requires_grad_(True).cpu()
    D = copy.deepcopy(D).eval().requires_grad_(False).cpu()
    gen = torch.Generator().manual_seed(seed)
    K = max(int(G.c_dim), 1)
    z = torch.randn([batch, G.z_dim], generator=gen)
    c = torch.eye(K)[torch.randint(0, K, [batch], generator=gen)]
    params = [p for p in G.parameters()]
    def norm(loss):
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return float(torch.sqrt(sum(g.square().sum() for g in grads if g is not None)))
    adv = torch.nn.functional.softplus(-D(G(z, c, noise_mode='const'), c)).mean()
    ls = jacobian_sparsity_penalty(G, z, c, delta=delta, style_mixing_prob=0, generator=torch.Generator().manual_seed(seed))
    g_adv, g_ls = norm(adv), norm(lambda_imgsparse * sparse_interval * ls)
    adv, ls = adv.detach(), ls.detach()
    return dict(adv_loss=float(adv), ls_value=float(ls), grad_norm_adv=g_adv, grad_norm_ls_weighted=g_ls,
                grad_ratio_ls_to_adv=g_ls / g_adv if g_adv > 0 else float('nan'))

def ls_mechanism(G, num_pairs=4, batch=16, delta=0.1, seed=0):
    """What limits L_s (one batch, G in train mode, no augmentation):
    grad_cos_style_content  mean cosine between the parameter gradients of a style column's L1 and a
                            content column's L1 (near 1: shrinking a style column shrinks content ones too)
    ls_mixed_over_unmixed   L_s with style mixing at every pass / without it, mean over cutoffs (the
                            penalty sees only the layers before the cut); grad_mixed_over_unmixed: the
                            same for the norm of its parameter gradient."""
    import copy
    from training import cg_regularizers as cg
    G = copy.deepcopy(G).train().requires_grad_(True).cpu()
    style, content, _ = column_split(G)
    if not style:
        return dict(grad_cos_style_content=float('nan'), ls_mixed_over_unmixed=float('nan'), grad_mixed_over_unmixed=float('nan'))
    gen = torch.Generator().manual_seed(seed)
    K = max(int(G.c_dim), 1)
    z = torch.randn([batch, G.z_dim], generator=gen)
    c = torch.eye(K)[torch.randint(0, K, [batch], generator=gen)]
    params = [p for p in G.parameters() if p.requires_grad]
    def grad_of(loss):
        g = torch.autograd.grad(loss, params, allow_unused=True)
        return torch.cat([(gi if gi is not None else torch.zeros_like(p)).flatten() for gi, p in zip(g, params)])
    def col_l1(k, cutoff=None, w2=None):
        x = G.mapping.latent(z, c)
        e = torch.zeros_like(x)
        e[:, k] = delta
        out = cg._render(G, torch.cat([x, x + e]), cutoff if w2 is not None else G.mapping.num_ws, w2, 'const')
        return cg.column_l1((out[batch:] - out[:batch]) / delta)
    rnd = np.random.RandomState(seed)
    cos = []
    for _ in range(num_pairs):
        gs, gc = grad_of(col_l1(int(rnd.choice(style)))), grad_of(col_l1(int(rnd.choice(content))))
        cos.append(float(torch.nn.functional.cosine_similarity(gs, gc, dim=0)))
    ratios, gratios = [], []
    for cutoff in range(1, G.mapping.num_ws):
        k = int(rnd.choice(style))
        with torch.no_grad():
            w2 = G.mapping.mlp(G.mapping.latent(torch.randn(z.shape, generator=gen), c))
        plain, mixed = col_l1(k), col_l1(k, cutoff, w2)
        ratios.append(float(mixed) / max(float(plain), 1e-30))
        gratios.append(float(grad_of(mixed).norm()) / max(float(grad_of(col_l1(k)).norm()), 1e-30))
    return dict(grad_cos_style_content=float(np.mean(cos)), ls_mixed_over_unmixed=float(np.mean(ratios)),
                grad_mixed_over_unmixed=float(np.mean(gratios)))

#----------------------------------------------------------------------------
# Run logs.

def run_stats(run_dir):
    """s/kimg (median over ticks after tick 0), L_s applications and values, active-dim trajectory."""
    path = os.path.join(run_dir, 'stats.jsonl') if run_dir else None
    if not path or not os.path.isfile(path):
        return {}
    ticks = [json.loads(line) for line in open(path) if line.strip()]
    spk = [t['Timing/sec_per_kimg']['mean'] for t in ticks[1:] if 'Timing/sec_per_kimg' in t]
    ls = [t['Loss/G/imgsparse'] for t in ticks if 'Loss/G/imgsparse' in t]
    act = [t['Progress/active_dims']['mean'] for t in ticks if 'Progress/active_dims' in t]
    out = dict(sec_per_kimg=float(np.median(spk)) if spk else float('nan'), ticks=len(ticks),
               kimg=float(ticks[-1]['Progress/kimg']['mean']) if ticks and 'Progress/kimg' in ticks[-1] else float('nan'))
    if ls:
        n = sum(t['num'] for t in ls)
        out['ls_applications'] = int(n)
        out['ls_mean'] = float(sum(t['num'] * t['mean'] for t in ls) / n)
        out['ls_last_tick'] = float(ls[-1]['mean'])
    if act:
        out['active_dims_per_tick'] = [int(a) for a in act]
    opts = os.path.join(run_dir, 'training_options.json')
    if os.path.isfile(opts):
        o = json.load(open(opts))
        lk = o.get('loss_kwargs', {})
        out['options'] = dict(seed=o.get('random_seed'), batch=o.get('batch_size'), total_kimg=o.get('total_kimg'),
                              lambda_sparse=lk.get('lambda_sparse', 0), lambda_imgsparse=lk.get('lambda_imgsparse', 0),
                              sparse_interval=lk.get('sparse_interval', 1), imgsparse_kwargs=lk.get('imgsparse_kwargs', {}))
    return out


def bench(model, res, domains):
    """Uncontended s/kimg from training.bench (tiny preset, one thread)."""
    cmd = [sys.executable, '-m', 'training.bench', '--cfg=tiny', f'--res={res}', f'--model={model}', f'--domains={domains}', '--threads=1']
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    if p.returncode != 0:
        return dict(error=(p.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(p.stdout)['sec_per_kimg']

#----------------------------------------------------------------------------
# Report.

COLUMNS = [
    ('active style dims G / G_ema', lambda r: '-' if r.get('active_G') is None else f"{r['active_G']} / {r['active_G_ema']}"),
    ('style L1 (raw)',              lambda r: f"{r['style_l1']:.4g}"),
    ('content L1 (raw)',            lambda r: f"{r['content_l1']:.4g}"),
    ('style/content L1',            lambda r: f"{r['style_content_l1_ratio']:.3f}"),
    ('style L1/L2',                 lambda r: f"{r['style_l1_l2']:.4f}"),
    ('content L1/L2',               lambda r: f"{r['content_l1_l2']:.4f}"),
    ('style small frac',            lambda r: f"{r['style_small']:.3f}"),
    ('content small frac',          lambda r: f"{r['content_small']:.3f}"),
    ('style Hoyer',                 lambda r: f"{r['style_hoyer']:.4f}"),
    ('swap domain acc',             lambda r: _fmt(r.get('swap_domain_acc'), '.3f')),
    ('swap content kappa',          lambda r: _fmt(r.get('swap_content_kappa'), '.3f')),
    ('s/kimg (run)',                lambda r: _fmt(r.get('sec_per_kimg'), '.1f')),
    ('s/kimg (bench, 1 thread)',    lambda r: _fmt((r.get('bench') or {}).get('median'), '.1f')),
]

def _fmt(v, spec):
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown_table(results):
    """One row per model, the columns above."""
    lines = ['| model | ' + ' | '.join(name for name, _ in COLUMNS) + ' |', '|---' * (len(COLUMNS) + 1) + '|']
    for name, r in results.items():
        lines.append(f'| {name} | ' + ' | '.join(fn(r) for _, fn in COLUMNS) + ' |')
    notes = [f'- {name}: {r["columns_note"]}' for name, r in results.items()]
    return '\n'.join(lines + [''] + notes) + '\n'


def write_atomic(path, text):
    with dnnlib.util.atomic_write(path, 'w') as f:  # our temp naming: a killed run's leftover is recognised
        f.write(text)

#----------------------------------------------------------------------------

def parse_networks(items):
    nets = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise click.BadParameter(f'"{item}" is not NAME=PATH; write e.g. --network=cg-gan=runs/x/network-snapshot-000040.pt.', param_hint='--network')
        if not os.path.isfile(path):
            raise click.BadParameter(f'snapshot "{path}" does not exist; check the path.', param_hint='--network')
        nets[name] = path
    return nets


def evaluate(nets, data, num_latents, swap_samples, seed, tau, do_bench, i_dim=None):
    """{name: result dict} for {name: snapshot path}."""
    from tqdm import tqdm
    from training.training_loop import load_weights
    results, probe, dataset = {}, None, None
    for name, path in tqdm(nets.items(), desc='measuring'):
        snap = load_weights(path)
        G, G_ema = snap['G'], snap['G_ema']
        r = dict(snapshot=os.path.abspath(path), active_G=active_dims(G), active_G_ema=active_dims(G_ema))
        t0 = time.time()
        r.update(measure_generator(G_ema, num_latents=num_latents, seed=seed, tau=tau, i_dim=i_dim))
        r['jacobian_sec'] = time.time() - t0
        run_dir = os.path.dirname(os.path.abspath(path))
        r.update(run_stats(run_dir))
        o = r.get('options') or {}
        if o.get('lambda_imgsparse') and snap.get('D') is not None:
            r['ls_gradient'] = ls_gradient_share(G, snap['D'], o['lambda_imgsparse'], o.get('sparse_interval', 1),
                                                 (o.get('imgsparse_kwargs') or {}).get('delta', 0.1), seed=seed)
        if swap_samples > 0 and G_ema.c_dim >= 2:
            from metrics import swap
            if dataset is None:
                kw = dnnlib.EasyDict(snap.get('training_set_kwargs') or dict(class_name='training.dataset.ImageFolderDataset'))
                if data is not None:
                    kw.path = data
                kw.update(use_labels=True, max_size=None, xflip=False)
                from torch_utils import allowlist
                dataset = allowlist.construct('dataset', kw, f'{path}: training_set_kwargs')  # the snapshot names it
                probe = swap.train_swap_probe(dataset, device='cpu', seed=0)
            Ge = G_ema.eval().requires_grad_(False)
            r.update({k: v for k, v in swap.calc_swap_metrics(Ge, num_samples=swap_samples, probe=probe, seed=seed).items()
                      if isinstance(v, (int, float))})
        if do_bench:
            r['bench'] = bench(_model_kind(G_ema, name), G_ema.img_resolution, max(int(G_ema.c_dim), 1))
        results[name] = r
    return results


def _model_kind(G, name):
    if name in MODELS:
        return name
    return 'istylegan' if getattr(G.mapping, 'has_importance', False) else 'stylegan2-ada'

#----------------------------------------------------------------------------

@click.command()
@click.option('--data',          help='Labelled training data (builtin:shapes zip)', metavar='ZIP', type=str)
@click.option('--outdir',        help='Where to write runs/, results.json, results.md', metavar='DIR', type=str, required=True)
@click.option('--models',        help='Models to train', metavar='A,B,C', type=str, default=','.join(MODELS), show_default=True)
@click.option('--kimg',          help='Training length of each model', metavar='KIMG', type=click.FloatRange(min=0, min_open=True), default=40, show_default=True)
@click.option('--seed',          help='Training and measurement seed', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--network',       help='Use this snapshot instead of training (repeatable)', metavar='NAME=PATH', multiple=True)
@click.option('--parallel',      help='Train the models at the same time', type=bool, default=False, show_default=True)
@click.option('--num-latents',   help='Latents (x every domain) for the Jacobian', metavar='INT', type=click.IntRange(min=1), default=32, show_default=True)
@click.option('--tau',           help='Small-entry threshold relative to the column max', metavar='FLOAT', type=click.FloatRange(min=0, max=1, min_open=True), default=0.05, show_default=True)
@click.option('--swap-samples',  help='Eps per domain for the swap metrics (0 = skip)', metavar='INT', type=click.IntRange(min=0), default=1000, show_default=True)
@click.option('--bench',         help='Also time each model with training.bench', type=bool, default=False, show_default=True)
@click.option('--threads',       help='Torch threads for the measurements', metavar='INT', type=click.IntRange(min=1), default=1, show_default=True)
def main(data, outdir, models, kimg, seed, network, parallel, num_latents, tau, swap_samples, bench, threads):
    """Train (or load) StyleGAN2-ADA, i-StyleGAN and CG-GAN and compare their Jacobian sparsity,
    active style dims, swap metrics and speed; writes results.json and results.md."""
    dnnlib.util.check_finite_options()
    torch.set_num_threads(threads)
    try:
        if network:
            nets = parse_networks(network)
        else:
            if data is None:
                raise click.BadParameter('training needs the data set; pass --data=<zip> (or give snapshots with --network).', param_hint='--data')
            if not os.path.exists(data):
                raise click.BadParameter(f'"{data}" does not exist; build it with dataset_tool.py --source=builtin:shapes.', param_hint='--data')
            chosen = [m.strip() for m in models.split(',') if m.strip()]
            bad = [m for m in chosen if m not in MODELS]
            if bad or not chosen:
                raise click.BadParameter(f'unknown model(s) {bad}; choose from {", ".join(MODELS)}.', param_hint='--models')
            os.makedirs(outdir, exist_ok=True)
            t0 = time.time()
            nets = train_models(chosen, data, kimg, seed, outdir, parallel)
            print(f'trained {len(nets)} models in {time.time() - t0:.0f} s')
        results = evaluate(nets, data, num_latents, swap_samples, seed, tau, bench)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # a snapshot that is refused or unreadable (LegacyError, SnapshotError, RefusedError)
        raise click.ClickException(str(e)) from None
    os.makedirs(outdir, exist_ok=True)
    write_atomic(os.path.join(outdir, 'results.json'), json.dumps(results, indent=2) + '\n')
    table = markdown_table(results)
    write_atomic(os.path.join(outdir, 'results.md'), table)
    print(table)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
