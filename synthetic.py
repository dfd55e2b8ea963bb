"""Synthetic identifiability study: CG-VAE vs iVAE vs beta-VAE, MCC versus number of domains.

  python synthetic.py run   --model=ivae --domains=40 --samples=1000 --density=1.0
  python synthetic.py sweep --outdir=synthetic-out          # default grid, minutes on a CPU
  python synthetic.py sweep --outdir=synthetic-full --full  # paper-sized grid
  python synthetic.py report --outdir=synthetic-out         # redraw table and figure
"""
import json
import os
import time

import click
import numpy as np
import torch
import tqdm

import dnnlib

#----------------------------------------------------------------------------

DEFAULT_GRID = dict(models='cg_vae,ivae', domains='1,2,5,11', densities='1.0,0.4', seeds='0,1', samples=1000, steps=3000)
FULL_GRID = dict(models='cg_vae,cg_vae_nosparse,ivae,beta_vae,sparse_only', domains='1,2,3,5,7,9,11',
                 densities='1.0,0.4', seeds='0,1,2,3,4', samples=2000, steps=10000)

#----------------------------------------------------------------------------

def atomic_write(path: str, text: str):
    with dnnlib.util.atomic_write(path, 'w') as f:
        f.write(text)


def parse_list(kind):
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            items = [kind(v) for v in str(value).split(',') if v.strip()]
        except ValueError:
            raise click.BadParameter(f'expected a comma-separated list of {kind.__name__}, e.g. "1,2,5"') from None
        if not items:
            raise click.BadParameter('the list is empty')
        return items
    return callback

#----------------------------------------------------------------------------

def run_one(model, n, m, num_domains, density, seed, samples, steps, alpha, beta, batch, lr, num_layers, mean_mode,
            posterior='full', lr_schedule='constant', progress=False):
    """Generate data, train one model, measure MCC on held-out and training samples; returns a dict."""
    from datasets.synthetic_latents import make_synthetic_dataset
    from metrics.mcc import mean_corr_coef
    from training.cg_vae import posterior_mean, train_synthetic_vae
    start = time.time()
    data = make_synthetic_dataset(n=n, m=m, num_domains=num_domains, samples=samples, density=density,
                                  num_layers=num_layers, mean_mode=mean_mode, seed=seed)
    net, stats = train_synthetic_vae(data.x_train, data.u_train, model=model, num_domains=num_domains, z_dim=n,
                                     alpha=alpha, beta=beta, steps=steps, batch=batch, lr=lr, lr_schedule=lr_schedule,
                                     seed=seed, progress=progress, posterior=posterior)
    z_test = posterior_mean(net, data.x_test, data.u_test)
    z_train = posterior_mean(net, data.x_train, data.u_train)
    return dict(model=model, n=n, m=data.m, K=num_domains, density=density, support_density=round(data.density, 4),
                seed=seed, samples=samples, steps=steps, alpha=stats['alpha'], beta=beta, posterior=posterior,
                lr=lr, lr_schedule=lr_schedule,
                mcc_heldout=round(mean_corr_coef(data.z_test, z_test), 4),
                mcc_train=round(mean_corr_coef(data.z_train, z_train), 4),
                mcc_heldout_spearman=round(mean_corr_coef(data.z_test, z_test, method='spearman'), 4),
                mcc_observed=round(mean_corr_coef(data.z_test, data.x_test), 4),  # reference: read x as zhat
                seconds=round(time.time() - start, 2))

#----------------------------------------------------------------------------

def summarise(rows):
    """Group by (model, density, K): mean and std over seeds of the held-out and training MCC."""
    groups = {}
    for r in rows:
        groups.setdefault((r['model'], r['density'], r['K']), []).append(r)
    out = []
    for (model, density, k), rs in sorted(groups.items()):
        h = np.array([r['mcc_heldout'] for r in rs])
        t = np.array([r['mcc_train'] for r in rs])
        o = np.array([r.get('mcc_observed', np.nan) for r in rs])
        out.append(dict(model=model, density=density, K=k, seeds=len(rs), heldout_mean=h.mean(), heldout_std=h.std(), observed_mean=o.mean(),
                        train_mean=t.mean(), train_std=t.std(), seconds=np.mean([r['seconds'] for r in rs])))
    return out


def markdown_table(summary) -> str:
    lines = ['| model | mixing density | K | seeds | MCC held-out | MCC train | MCC of x itself | s/run |',
             '|---|---|---|---|---|---|---|---|']
    for s in summary:
        lines.append(f"| {s['model']} | {s['density']:g} | {s['K']} | {s['seeds']} | {s['heldout_mean']:.3f} ± {s['heldout_std']:.3f} "
                     f"| {s['train_mean']:.3f} ± {s['train_std']:.3f} | {s['observed_mean']:.3f} | {s['seconds']:.1f} |")
    return '\n'.join(lines) + '\n'


def draw_figure(summary, path: str):
    """MCC (held-out) versus number of domains, one line per model, one panel per mixing density."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    densities = sorted({s['density'] for s in summary}, reverse=True)
    models = sorted({s['model'] for s in summary})
    fig, axes = plt.subplots(1, len(densities), figsize=(4.2 * len(densities), 3.4), sharey=True, squeeze=False)
    for ax, density in zip(axes[0], densities):
        for model in models:
            pts = sorted((s['K'], s['heldout_mean'], s['heldout_std']) for s in summary if s['model'] == model and s['density'] == density)
            if pts:
                k, mean, std = map(np.array, zip(*pts))
                ax.errorbar(k, mean, yerr=std, marker='o', capsize=3, label=model)
        obs = sorted({(s['K'], s['observed_mean']) for s in summary if s['density'] == density and s['model'] == models[0]})
        if obs and np.isfinite([v for _, v in obs]).all():
            ax.plot(*zip(*obs), color='gray', linestyle='--', label='x itself (no model)')
        ax.set_title('dense mixing' if density >= 1 else f'sparse mixing (density {density:g})')
        ax.set_xlabel('number of domains K')
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel('MCC (held-out)')
    axes[0, 0].set_ylim(0, 1.02)
    axes[0, -1].legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    with dnnlib.util.atomic_write(path) as f:
        fig.savefig(f, dpi=80, format='png')
    plt.close(fig)


def write_report(outdir: str, rows):
    summary = summarise(rows)
    atomic_write(os.path.join(outdir, 'results.md'), markdown_table(summary))
    draw_figure(summary, os.path.join(outdir, 'mcc_vs_domains.png'))
    return summary


def read_results(path: str):
    rows = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows

#----------------------------------------------------------------------------

_common = [
    click.option('--n',           help='Number of latents', type=click.IntRange(min=1), default=5, show_default=True),
    click.option('--m',           help='Observed dims (>= n) [default: n]', type=click.IntRange(min=1), default=None),
    click.option('--alpha',       help='Weight of the decoder-Jacobian L1 (cg_vae, sparse_only)', type=click.FloatRange(min=0), default=1.0, show_default=True),
    click.option('--beta',        help='KL weight', type=click.FloatRange(min=0), default=1.0, show_default=True),
    click.option('--batch',       help='Minibatch size', type=click.IntRange(min=1), default=256, show_default=True),
    click.option('--lr',          help='Adam learning rate', type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True),
    click.option('--lr-schedule', help='Learning-rate schedule', type=click.Choice(['constant', 'cosine']), default='constant', show_default=True),
    click.option('--posterior',   help='q(z|x): full-covariance or diagonal Gaussian', type=click.Choice(['full', 'diag']), default='full', show_default=True),
    click.option('--layers',      help='Layers of the mixing MLP', type=click.IntRange(min=1), default=2, show_default=True),
    click.option('--mean-mode',   help='Per-domain latent means', type=click.Choice(['uniform', 'zero']), default='uniform', show_default=True),
    click.option('--threads',     help='torch CPU threads (1 is fastest for these small nets)', type=click.IntRange(min=1), default=1, show_default=True),
]

def common_options(f):
    for option in reversed(_common):
        f = option(f)
    return f


def check_common(n, m, threads):
    dnnlib.util.check_finite_options()
    if m is not None and m < n:
        raise click.BadParameter(f'--m={m} is smaller than --n={n}; use m >= n observed dims', param_hint='--m')
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)

#----------------------------------------------------------------------------

@click.group()
def main():
    """Synthetic identifiability study (CG-VAE, iVAE, beta-VAE): MCC versus number of domains."""

#----------------------------------------------------------------------------

@main.command()
@click.option('--model',     help='Model', type=click.Choice(['cg_vae', 'cg_vae_nosparse', 'ivae', 'beta_vae', 'sparse_only']), default='cg_vae', show_default=True)
@click.option('--domains',   help='Number of domains K', type=click.IntRange(min=1), default=40, show_default=True)
@click.option('--density',   help='Jacobian support density of the mixing (1 = dense)', type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option('--seed',      help='Random seed (data and model)', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--samples',   help='Samples per domain (20% held out)', type=click.IntRange(min=10), default=1000, show_default=True)
@click.option('--steps',     help='Adam steps', type=click.IntRange(min=1), default=3000, show_default=True)
@common_options
def run(model, domains, density, seed, samples, steps, n, m, alpha, beta, batch, lr, lr_schedule, posterior, layers, mean_mode, threads):
    """Train one model on one data set and print its result as JSON."""
    check_common(n, m, threads)
    result = run_one(model, n, m, domains, density, seed, samples, steps, alpha, beta, batch, lr, layers, mean_mode,
                     posterior=posterior, lr_schedule=lr_schedule, progress=True)
    click.echo(json.dumps(result))

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir',    help='Where to write results.jsonl, results.md, mcc_vs_domains.png', metavar='DIR', required=True)
@click.option('--full',      help='Paper-sized grid (5 models, K = 1..11, 5 seeds, longer training)', is_flag=True)
@click.option('--models',    help=f'Comma-separated models [default: {DEFAULT_GRID["models"]}]', callback=parse_list(str), default=None)
@click.option('--domains',   help=f'Comma-separated numbers of domains [default: {DEFAULT_GRID["domains"]}]', callback=parse_list(int), default=None)
@click.option('--densities', help=f'Comma-separated mixing densities [default: {DEFAULT_GRID["densities"]}]', callback=parse_list(float), default=None)
@click.option('--seeds',     help=f'Comma-separated seeds [default: {DEFAULT_GRID["seeds"]}]', callback=parse_list(int), default=None)
@click.option('--samples',   help=f'Samples per domain [default: {DEFAULT_GRID["samples"]}]', type=click.IntRange(min=10), default=None)
@click.option('--steps',     help=f'Adam steps per run [default: {DEFAULT_GRID["steps"]}]', type=click.IntRange(min=1), default=None)
@common_options
def sweep(outdir, full, models, domains, densities, seeds, samples, steps, n, m, alpha, beta, batch, lr, lr_schedule, posterior, layers, mean_mode, threads):
    """Grid over models x domains x mixing density x seeds; runs already in results.jsonl are skipped."""
    from training.cg_vae import MODELS
    check_common(n, m, threads)
    grid = FULL_GRID if full else DEFAULT_GRID
    models = models or grid['models'].split(',')
    domains = domains or [int(v) for v in grid['domains'].split(',')]
    densities = densities or [float(v) for v in grid['densities'].split(',')]
    seeds = seeds if seeds is not None else [int(v) for v in grid['seeds'].split(',')]
    samples = samples or grid['samples']
    steps = steps or grid['steps']
    bad = [v for v in models if v not in MODELS]
    if bad:
        raise click.BadParameter(f'unknown model "{bad[0]}"; choose from {", ".join(MODELS)}', param_hint='--models')
    if any(not 0 < d <= 1 for d in densities):
        raise click.BadParameter('every density must be in (0, 1]', param_hint='--densities')
    if any(k < 1 for k in domains):
        raise click.BadParameter('every number of domains must be >= 1', param_hint='--domains')
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, 'results.jsonl')
    rows = read_results(path)
    done = {(r['model'], r['K'], r['density'], r['seed'], r['n'], r['steps'], r['samples'], r.get('posterior', 'diag')) for r in rows}
    todo = [(mo, k, d, s) for d in densities for k in domains for mo in models for s in seeds
            if (mo, k, d, s, n, steps, samples, posterior) not in done]
    click.echo(f'{len(todo)} runs to do, {len(rows)} already in {path}')
    for mo, k, d, s in (bar := tqdm.tqdm(todo, desc='sweep')):
        bar.set_postfix_str(f'{mo} K={k} density={d:g} seed={s}')
        rows.append(run_one(mo, n, m, k, d, s, samples, steps, alpha, beta, batch, lr, layers, mean_mode, posterior, lr_schedule))
        atomic_write(path, ''.join(json.dumps(r) + '\n' for r in rows))
    if not rows:
        raise click.ClickException('nothing to report: the grid is empty')
    summary = write_report(outdir, rows)
    click.echo(markdown_table(summary))
    click.echo(f'Wrote {path}, results.md and mcc_vs_domains.png in {outdir}')

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir',    help='Folder holding results.jsonl', metavar='DIR', required=True)
def report(outdir):
    """Redraw results.md and mcc_vs_domains.png from results.jsonl."""
    rows = read_results(os.path.join(outdir, 'results.jsonl'))
    if not rows:
        raise click.ClickException(f'no results in {os.path.join(outdir, "results.jsonl")}; run "synthetic.py sweep --outdir={outdir}" first')
    click.echo(markdown_table(write_report(outdir, rows)))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
