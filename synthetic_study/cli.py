"""Command line of the synthetic study: one run, a resumable sweep, and the report (tables, figure).

  python synthetic.py run    --model=ivae --benchmark=dense --domains=40
  python synthetic.py sweep  --outdir=synthetic-out            # the study grid (hours on one CPU core)
  python synthetic.py report --outdir=synthetic-out            # redraw tables and figure
"""
import json
import os
import time

import click
import torch
import tqdm

import dnnlib

#----------------------------------------------------------------------------

GRID = dict(models='cg_vae,cg_vae_nosparse,sparse_only,ivae,beta_vae', domains='2,3,4,6,8,1,11',
            benchmarks='hard,easy,dense', seeds='0,1,2,3,4')
GRID_AXES = ('benchmark', 'model', 'K', 'seed')  # what a sweep varies; every other setting is one per folder
STUDY_KEYS = ('n', 'samples', 'steps', 'alpha', 'beta', 'batch', 'lr', 'lr_schedule', 'posterior', 'layers', 'mean_mode')
DATA_KEYS = ('m', 'density', 'min_row', 'standardise', 'max_cond', 'min_weight')  # set by the benchmark and n
SETTING_KEYS = STUDY_KEYS + DATA_KEYS

#----------------------------------------------------------------------------

def run_one(benchmark: str, model: str, K: int, seed: int, study: dict, progress: bool = False, curve: bool = False) -> dict:
    """Draw the data, train one model, score it; returns one results line holding every setting.

    curve=True adds the training negative ELBO (recon + KL, no L_s) averaged over each 1000 steps.
    """
    from synthetic_study.data import benchmark_settings, make_synthetic_dataset
    from synthetic_study.mcc import mean_corr_coef
    from synthetic_study.models import negative_elbo, posterior_mean, train_synthetic_vae
    start = time.time()
    data_kwargs = benchmark_settings(benchmark, study['n'])
    data = make_synthetic_dataset(n=study['n'], num_domains=K, samples=study['samples'], num_layers=study['layers'],
                                  mean_mode=study['mean_mode'], seed=seed, **data_kwargs)
    net, stats = train_synthetic_vae(data.x_train, data.u_train, model=model, num_domains=K, z_dim=study['n'],
                                     alpha=study['alpha'], beta=study['beta'], steps=study['steps'], batch=study['batch'],
                                     lr=study['lr'], lr_schedule=study['lr_schedule'], seed=seed, progress=progress,
                                     posterior=study['posterior'])
    z_test = posterior_mean(net, data.x_test, data.u_test)
    z_train = posterior_mean(net, data.x_train, data.u_train)
    extra = {}
    if curve:  # history holds the minibatch of every 100th step (and of the last one, left out here)
        nelbo = [h['recon'] + study['beta'] * h['kl'] for h in stats['history'][:(study['steps'] + 99) // 100]]
        extra['train_nelbo_per_1000_steps'] = [round(sum(c) / len(c), 3) for c in (nelbo[i:i + 10] for i in range(0, len(nelbo), 10))]
    return dict(**extra, benchmark=benchmark, model=model, K=K, seed=seed, **study, **data_kwargs,
                alpha_used=stats['alpha'], support_density=round(data.density, 4),
                heldout_nelbo=round(negative_elbo(net, data.x_test, data.u_test, beta=study['beta']), 4),
                mcc_heldout=round(mean_corr_coef(data.z_test, z_test), 4),
                mcc_train=round(mean_corr_coef(data.z_train, z_train), 4),
                mcc_heldout_spearman=round(mean_corr_coef(data.z_test, z_test, method='spearman'), 4),
                mcc_observed=round(mean_corr_coef(data.z_test, data.x_test), 4),  # reference: read x as zhat
                seconds=round(time.time() - start, 2))


def run_key(row: dict) -> str:
    """Resume key: the grid axes and every setting."""
    return json.dumps({k: row[k] for k in GRID_AXES + SETTING_KEYS}, sort_keys=True)


def conflicting_setting(row: dict, study: dict, data_kwargs: dict):
    """First (name, value in row, value asked) where a stored run differs from this sweep's settings, else None."""
    asked = dict(study, **data_kwargs.get(row['benchmark'], {}))
    for k in SETTING_KEYS:
        if k in asked and row[k] != asked[k]:
            return k, row[k], asked[k]
    return None

#----------------------------------------------------------------------------

def read_results(path: str) -> list:
    """Rows of a results.jsonl; a line that is not a JSON object with every setting is an error."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path) as f:
        for num, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise click.ClickException(f'line {num} of {path} is not JSON') from None
            missing = [k for k in GRID_AXES + SETTING_KEYS + ('mcc_heldout', 'mcc_observed') if not isinstance(row, dict) or k not in row]
            if missing:
                raise click.ClickException(f'line {num} of {path} lacks "{missing[0]}"; it was not written by this version of synthetic.py sweep')
            rows.append(row)
    return rows


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

_common = [
    click.option('--n',           help='Number of latents', type=click.IntRange(min=4, max=64), default=5, show_default=True),
    click.option('--samples',     help='Samples per domain (20% held out)', type=click.IntRange(min=10, max=100000), default=1000, show_default=True),
    click.option('--steps',       help='Adam steps per run', type=click.IntRange(min=1, max=10**7), default=6000, show_default=True),
    click.option('--alpha',       help='Weight of the decoder-Jacobian L1 (cg_vae, sparse_only)', type=click.FloatRange(min=0), default=1.0, show_default=True),
    click.option('--beta',        help='KL weight', type=click.FloatRange(min=0), default=1.0, show_default=True),
    click.option('--batch',       help='Minibatch size', type=click.IntRange(min=1, max=100000), default=256, show_default=True),
    click.option('--lr',          help='Adam learning rate', type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True),
    click.option('--lr-schedule', help='Learning-rate schedule', type=click.Choice(['constant', 'cosine']), default='cosine', show_default=True),
    click.option('--posterior',   help='q(z|x): full-covariance or diagonal Gaussian', type=click.Choice(['full', 'diag']), default='full', show_default=True),
    click.option('--layers',      help='Layers of the mixing MLP', type=click.IntRange(min=1, max=8), default=2, show_default=True),
    click.option('--mean-mode',   help='Per-domain latent means', type=click.Choice(['uniform', 'zero']), default='uniform', show_default=True),
    click.option('--threads',     help='torch CPU threads (1 is fastest for these small nets)', type=click.IntRange(min=1), default=1, show_default=True),
]

def common_options(f):
    for option in reversed(_common):
        f = option(f)
    return f


MAX_SAMPLES = 10**7  # samples per domain x domains, bounded before any data is drawn


def study_settings(threads, max_domains, **kwargs) -> dict:
    dnnlib.util.check_finite_options()                  # click's FloatRange lets NaN through
    if kwargs['samples'] * max_domains > MAX_SAMPLES:
        raise click.BadParameter(f'{kwargs["samples"]} samples x {max_domains} domains is over the limit of {MAX_SAMPLES} samples in all',
                                 param_hint='--samples/--domains')
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return {k: kwargs[k] for k in STUDY_KEYS}

#----------------------------------------------------------------------------

@click.group()
def main():
    """Synthetic identifiability study (CG-VAE, iVAE, beta-VAE): MCC versus number of domains."""

#----------------------------------------------------------------------------

@main.command()
@click.option('--model',     help='Model', type=click.Choice(['cg_vae', 'cg_vae_nosparse', 'sparse_only', 'ivae', 'beta_vae']), default='cg_vae', show_default=True)
@click.option('--benchmark', help='Mixing (see docs/synthetic.md)', type=click.Choice(['hard', 'easy', 'dense']), default='hard', show_default=True)
@click.option('--domains',   help='Number of domains K', type=click.IntRange(min=1, max=10000), default=4, show_default=True)
@click.option('--seed',      help='Random seed (data and model)', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--curve',     help='Add the training negative ELBO per 1000 steps (convergence check)', is_flag=True)
@common_options
def run(model, benchmark, domains, seed, curve, threads, **kwargs):
    """Train one model on one data set and print its results line as JSON."""
    study = study_settings(threads, domains, **kwargs)
    click.echo(json.dumps(run_one(benchmark, model, domains, seed, study, progress=True, curve=curve)))

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir',     help='Where to write results.jsonl, results.md, mcc_vs_domains.png', metavar='DIR', required=True)
@click.option('--models',     help=f'Comma-separated models [default: {GRID["models"]}]', callback=parse_list(str), default=None)
@click.option('--domains',    help=f'Comma-separated numbers of domains, run in this order [default: {GRID["domains"]}]', callback=parse_list(int), default=None)
@click.option('--benchmarks', help=f'Comma-separated benchmarks, run in this order [default: {GRID["benchmarks"]}]', callback=parse_list(str), default=None)
@click.option('--seeds',      help=f'Comma-separated seeds [default: {GRID["seeds"]}]', callback=parse_list(int), default=None)
@common_options
def sweep(outdir, models, domains, benchmarks, seeds, threads, **kwargs):
    """Grid over benchmarks x domains x seeds x models, in that order; runs already in results.jsonl are skipped."""
    from synthetic_study.data import BENCHMARKS, benchmark_settings
    from synthetic_study.models import MODELS
    from synthetic_study.report import write_report
    models = models or GRID['models'].split(',')
    domains = domains or [int(v) for v in GRID['domains'].split(',')]
    study = study_settings(threads, max(domains), **kwargs)
    benchmarks = benchmarks or GRID['benchmarks'].split(',')
    seeds = seeds if seeds is not None else [int(v) for v in GRID['seeds'].split(',')]
    for name, values, allowed in (('--models', models, MODELS), ('--benchmarks', benchmarks, BENCHMARKS)):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise click.BadParameter(f'unknown name "{bad[0]}"; choose from {", ".join(allowed)}', param_hint=name)
    if any(not 1 <= k <= 10000 for k in domains) or any(s < 0 for s in seeds):
        raise click.BadParameter('every number of domains must be in 1..10000 and every seed >= 0', param_hint='--domains/--seeds')
    path = os.path.join(outdir, 'results.jsonl')
    rows = read_results(path)
    data_kwargs = {b: benchmark_settings(b, study['n']) for b in BENCHMARKS}
    for row in rows:
        clash = conflicting_setting(row, study, data_kwargs)
        if clash:
            raise click.ClickException(f'{path} holds runs with {clash[0]}={clash[1]!r}, this sweep asks {clash[0]}={clash[2]!r}; '
                                       f'use another --outdir (runs with different settings are never merged)')
    done = {run_key(r) for r in rows}
    todo = [(b, k, s, mo) for b in benchmarks for k in domains for s in seeds for mo in models
            if run_key(dict(benchmark=b, model=mo, K=k, seed=s, **study, **data_kwargs[b])) not in done]
    os.makedirs(outdir, exist_ok=True)
    click.echo(f'{len(todo)} runs to do, {len(rows)} already in {path}')
    for b, k, s, mo in (bar := tqdm.tqdm(todo, desc='sweep')):
        bar.set_postfix_str(f'{b} K={k} seed={s} {mo}')
        rows.append(run_one(b, mo, k, s, study))
        with dnnlib.util.atomic_write(path, 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in rows))
    if not rows:
        raise click.ClickException('nothing to report: the grid is empty')
    click.echo(write_report(outdir, rows))
    click.echo(f'Wrote {path}, results.md, results_summary.jsonl and mcc_vs_domains.png in {outdir}')

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir', help='Folder holding results.jsonl', metavar='DIR', required=True)
def report(outdir):
    """Redraw results.md, results_summary.jsonl and mcc_vs_domains.png from results.jsonl."""
    from synthetic_study.report import write_report
    rows = read_results(os.path.join(outdir, 'results.jsonl'))
    if not rows:
        raise click.ClickException(f'no results in {os.path.join(outdir, "results.jsonl")}; run "synthetic.py sweep --outdir={outdir}" first')
    click.echo(write_report(outdir, rows))

#----------------------------------------------------------------------------
