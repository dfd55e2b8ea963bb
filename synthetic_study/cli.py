"""Command line of the synthetic study (docs/synthetic.md):

  python synthetic.py audit     --outdir=DIR                 # premise audit of the grid's data sets (no training)
  python synthetic.py calibrate --outdir=DIR --benchmark=sparse   # rule (a): alpha per sparse arm, seeds 100-104
  python synthetic.py plan      --outdir=DIR                 # the grid's order and estimated hours
  python synthetic.py sweep     --outdir=DIR                 # the grid, decision cells first; resumes after a kill
  python synthetic.py report    --outdir=DIR                 # tables, decision rule, figure
  python synthetic.py run       --model=ivae --benchmark=sparse --domains=3 --seeds=0,1
"""
import json
import os
import time

import click
import torch

import dnnlib
from synthetic_study.data import BENCHMARKS, DATA_OPTIONS, FIRST_LAYERS, LATENTS, MAX_M, benchmark_settings, parse_support
from synthetic_study.grid import (GridError, alpha_accepted, arm_alpha, calibrated_alpha, check_folder, plan_lines,
                                  read_lines, read_results, results_path, seconds_per_run, todo_cells)
from synthetic_study.models import ALPHA_ZERO_ARM, ARMS
from synthetic_study.settings import ALL_ARMS, CALIBRATION, MAX_SEED, STAGES, STUDY_KEYS, with_added_keys

#----------------------------------------------------------------------------

def parse_list(kind, minimum=None):
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            items = [kind(v) for v in str(value).split(',') if v.strip()]
        except ValueError:
            raise click.BadParameter(f'expected a comma-separated list of {kind.__name__}, e.g. "1,2,5"') from None
        if not items or len(items) > 1000:
            raise click.BadParameter('the list must hold 1 to 1000 items')
        if minimum is not None and any(not v >= minimum for v in items):
            raise click.BadParameter(f'every value must be >= {minimum}, got {min(items, key=lambda v: (v >= minimum, v))}')
        return items
    return callback


def names(allowed):
    def callback(ctx, param, value):
        items = parse_list(str)(ctx, param, value)
        bad = [v for v in items or [] if v not in allowed]
        if bad:
            raise click.BadParameter(f'unknown name "{bad[0]}"; choose from {", ".join(allowed)}')
        return items
    return callback

#----------------------------------------------------------------------------

_study = [
    click.option('--n',          help='Number of latents', type=click.IntRange(min=2, max=64), default=5, show_default=True),
    click.option('--samples',    help='Samples per domain (20% test, 10% validation)', type=click.IntRange(min=10, max=100000), default=1000, show_default=True),
    click.option('--mean-mode',  help='Per-domain latent means', type=click.Choice(['uniform', 'zero']), default='uniform', show_default=True),
    click.option('--batch',      help='Minibatch size', type=click.IntRange(min=1, max=100000), default=256, show_default=True),
    click.option('--l1-batch',   help='Points of each minibatch the L1 is estimated on (the Jacobian is the cost)', type=click.IntRange(min=1, max=100000), default=64, show_default=True),
    click.option('--lr',         help='Adam learning rate (constant)', type=click.FloatRange(min=0, min_open=True, max=1), default=1e-3, show_default=True),
    click.option('--max-steps',  help='Most Adam steps per run (plateau stops earlier)', type=click.IntRange(min=1, max=10**6), default=30000, show_default=True),
    click.option('--eval-every', help='Steps between validation evaluations', type=click.IntRange(min=1, max=10**5), default=250, show_default=True),
    click.option('--patience',   help='Evaluations without improvement before a run stops', type=click.IntRange(min=1, max=1000), default=8, show_default=True),
    click.option('--min-delta',  help='Improvement of the validation objective that counts (nats)', type=click.FloatRange(min=0), default=0.01, show_default=True),
    click.option('--beta',       help='KL weight', type=click.FloatRange(min=0), default=1.0, show_default=True),
    click.option('--tau',        help='Rule (b): allowed rise of validation nELBO over the alpha = 0 fit (nats)', type=click.FloatRange(min=0), default=0.1, show_default=True),
    click.option('--eta',        help='Rule (b): multiplier step (alpha per nat of slack per evaluation)', type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True),
    click.option('--alpha-max',  help='Rule (b): largest alpha', type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True),
    click.option('--hidden',     help='Hidden width of encoder and decoder', type=click.IntRange(min=1, max=4096), default=64, show_default=True),
    click.option('--threshold',  help='Jacobian support F1: on when >= this share of its row maximum', type=click.FloatRange(min=0, max=1, min_open=True), default=0.1, show_default=True),
    click.option('--threads',    help='torch CPU threads (1 is fastest for these small nets)', type=click.IntRange(min=1, max=256), default=1, show_default=True),
]
_data = [  # None = the benchmark's value
    click.option('--m',          help='Observed dims (>= n) [default: per benchmark]', type=click.IntRange(min=1, max=MAX_M)),
    click.option('--density',    help='Support density [default: per benchmark]', type=click.FloatRange(min=0, max=1, min_open=True)),
    click.option('--min-row',    help='Fewest parents per observed dim', type=click.IntRange(min=1, max=64)),
    click.option('--max-row',    help='Most parents per observed dim', type=click.IntRange(min=1, max=64)),
    click.option('--singletons', help='Observed dims that may keep a single parent', type=click.IntRange(min=0, max=MAX_M)),
    click.option('--structural/--no-structural', help='Redraw until structurally sparse', default=None),
    click.option('--standardise/--no-standardise', help='Standardise latents before mixing', default=None),
    click.option('--layers',     help='Layers of the mixing MLP', type=click.IntRange(min=1, max=8)),
    click.option('--max-cond',   help='Largest condition number of a mixing layer', type=click.FloatRange(min=1)),
    click.option('--min-weight', help='Mixing weights are +-U(min_weight, 1)', type=click.FloatRange(min=0, max=1, max_open=True)),
    click.option('--latent',     help='Noise of z given u', type=click.Choice(LATENTS)),
    click.option('--first-layer', help='First mixing layer: masked by the support, or dense (a dense Jacobian)', type=click.Choice(FIRST_LAYERS)),
    click.option('--support',    help='A fixed support: one 0/1 string per observed dim, e.g. 10,01,11', metavar='ROWS'),
]


def options(group):
    def wrap(f):
        for option in reversed(group):
            f = option(f)
        return f
    return wrap


MAX_SAMPLES = 10**7  # samples per domain x domains (x members), bounded before any data is drawn


def settings(kwargs: dict, benchmarks, max_domains: int, members: int = 1) -> tuple:
    """(study, {benchmark: data settings}) from the options; a usage error for bad or too large input."""
    dnnlib.util.check_finite_options()                  # click's FloatRange lets NaN through
    if kwargs['samples'] * max_domains * members > MAX_SAMPLES:
        raise click.BadParameter(f'{kwargs["samples"]} samples x {max_domains} domains x {members} runs is over the limit of '
                                 f'{MAX_SAMPLES} samples in all', param_hint='--samples/--domains')
    torch.set_num_threads(kwargs['threads'])
    torch.use_deterministic_algorithms(True)
    study = {k: kwargs[k] for k in STUDY_KEYS}
    overrides = {k: kwargs[k] for k in DATA_OPTIONS}
    if kwargs['support'] is not None:
        try:
            support = parse_support(kwargs['support'])
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint='--support') from None
        if support.shape[1] != study['n']:
            raise click.BadParameter(f'the support has {support.shape[1]} columns but --n={study["n"]}', param_hint='--support')
        overrides['m'] = support.shape[0]
    data = {}
    for b in benchmarks:
        s = benchmark_settings(b, study['n'], **overrides)
        s.support = kwargs['support']
        if s.m < study['n']:
            raise click.BadParameter(f'observed dims m={s.m} must be >= latents n={study["n"]}', param_hint='--m')
        if not 1 <= s.min_row <= s.max_row <= study['n']:
            raise click.BadParameter(f'need 1 <= min_row <= max_row <= n, got {s.min_row}, {s.max_row}, {study["n"]}', param_hint='--min-row/--max-row')
        data[b] = dict(s)
    return study, data


def fail(e):
    raise click.ClickException(str(e)) from None


def progress_printer(label):
    def show(step, done, size):
        if step % 5000 == 0:
            click.echo(f'  {label}: step {step}, {done} of {size} runs at their plateau', err=True)
    return show

#----------------------------------------------------------------------------

@click.group()
def main():
    """Synthetic identifiability study: do changes and sparse mixing together need fewer domains?"""

#----------------------------------------------------------------------------

@main.command()
@click.option('--model',       help='Arm', type=click.Choice(list(ARMS)), default='cg_vae', show_default=True)
@click.option('--benchmark',   help='Mixing (docs/synthetic.md)', type=click.Choice(list(BENCHMARKS)), default='sparse', show_default=True)
@click.option('--domains',     help='Number of domains K', type=click.IntRange(min=1, max=10000), default=3, show_default=True)
@click.option('--seeds',       help='Comma-separated seeds, trained together as one ensemble', callback=parse_list(int, 0), default='0')
@click.option('--alpha',       help='Fixed L1 weight for cg_vae, ivae_l1, sparse_only [default: rule (a) from --outdir]', type=click.FloatRange(min=0))
@click.option('--outdir',      help='Folder with the calibration (rule a)', metavar='DIR')
@click.option('--append',      help='Also append the lines to this file', metavar='FILE')
@options(_study)
@options(_data)
def run(model, benchmark, domains, seeds, alpha, outdir, append, **kwargs):
    """Train one arm on one data set per seed and print one results line (JSON) per seed."""
    study, data = settings(kwargs, [benchmark], domains, len(seeds))
    if max(seeds) > MAX_SEED:
        raise click.BadParameter(f'seeds must be <= {MAX_SEED}', param_hint='--seeds')
    try:
        calibration = read_lines(os.path.join(outdir, 'calibration.jsonl')) if outdir else []
        a = arm_alpha(model, benchmark, alpha, calibration)
        rows = run_cell(benchmark, model, domains, seeds, study, data[benchmark], a)
    except (GridError, ValueError, RuntimeError) as e:
        fail(e)
    text = ''.join(json.dumps(r) + '\n' for r in rows)
    click.echo(text, nl=False)
    if append:
        with open(append, 'a') as f:
            f.write(text)


def run_cell(benchmark, arm, K, seeds, study, data_kwargs, a):
    from synthetic_study.runner import run_members
    label = f'{benchmark} K={K} {arm} seeds {",".join(map(str, seeds))}'
    return run_members(benchmark, arm, K, [(s, a['alpha']) for s in seeds], study, data_kwargs, a['alpha_rule'], progress_printer(label))

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir',    help='Folder for calibration.jsonl', metavar='DIR', required=True)
@click.option('--benchmark', help='Mixing', type=click.Choice(list(BENCHMARKS)), default='sparse', show_default=True)
@click.option('--models',    help='Arms to calibrate', callback=names(list(ALPHA_ZERO_ARM)), default=','.join(ALPHA_ZERO_ARM), show_default=True)
@click.option('--domains',   help='K of the calibration', type=click.IntRange(min=1, max=10000), default=CALIBRATION['K'], show_default=True)
@click.option('--seeds',     help='Seeds outside the grid', callback=parse_list(int, 0), default=','.join(map(str, CALIBRATION['seeds'])), show_default=True)
@click.option('--alphas',    help='Alpha grid (must hold 0)', callback=parse_list(float, 0.0), default=','.join(map(str, CALIBRATION['alphas'])), show_default=True)
@click.option('--every-alpha', help='Train every alpha (default: alpha = 0, then from the largest down, stopping at the first the rule accepts: the same choice)', is_flag=True)
@options(_study)
@options(_data)
def calibrate(outdir, benchmark, models, domains, seeds, alphas, every_alpha, **kwargs):
    """Rule (a): per arm, take the largest alpha whose validation nELBO (seeds outside the grid) is within
    max(0.05 nats, 2 paired SE) of alpha = 0 (same arm). Trains alpha = 0, then the alphas from the largest
    down until one is accepted (--every-alpha trains them all)."""
    study, data = settings(kwargs, [benchmark], domains, len(seeds))
    if 0.0 not in alphas:
        raise click.BadParameter('the alpha grid must hold 0, the reference', param_hint='--alphas')
    if max(seeds) > MAX_SEED:
        raise click.BadParameter(f'seeds must be <= {MAX_SEED}', param_hint='--seeds')
    from synthetic_study.runner import run_members
    path = os.path.join(outdir, 'calibration.jsonl')
    try:
        rows = read_lines(path)
        check_folder(rows, study, data, path)
        for arm in models:
            done = {(r['seed'], r['alpha']) for r in rows if r['benchmark'] == benchmark and r['model'] == arm and r['K'] == domains}
            for a in [0.0] + sorted({a for a in alphas if a != 0.0}, reverse=True):  # one ensemble per alpha, saved when it ends: a killed calibration resumes
                members = [(s, a) for s in seeds if (s, a) not in done]
                if members:
                    start = time.time()
                    rows += run_members(benchmark, arm, domains, members, study, data[benchmark], 'calibration',
                                        progress_printer(f'calibrate {arm} alpha {a}'))
                    click.echo(f'{arm} alpha {a}: {len(members)} runs in {time.time() - start:.0f} s', err=True)
                    with dnnlib.util.atomic_write(path, 'w') as f:
                        f.write(''.join(json.dumps(r) + '\n' for r in rows))
                if a != 0.0 and not every_alpha and alpha_accepted(rows, benchmark, arm, a):
                    break
            alpha, table = calibrated_alpha(rows, benchmark, arm)
            click.echo(f'{benchmark} {arm}: alpha = {alpha} (' + ', '.join(f'{a}: {d:+.3f} ± {se:.3f}{"" if ok else " x"}'
                                                                         for a, (d, se, ok) in table.items()) + ')')
    except (GridError, ValueError, RuntimeError) as e:
        fail(e)

#----------------------------------------------------------------------------

def grid_stages(benchmarks, domains, seeds, models):
    """The default STAGES, or one stage from the lists given (benchmarks x K x models x seeds, in that order)."""
    if not any((benchmarks, domains, seeds, models)):
        return STAGES
    return tuple(('selected', b, tuple(domains or (2, 3, 4)), tuple(models or ALL_ARMS), tuple(seeds if seeds is not None else range(5)))
                 for b in benchmarks or ['sparse'])


def prepare_sweep(outdir, benchmarks, domains, seeds, models, alpha, ensemble, kwargs, shard=(0, 1)):
    stages = grid_stages(benchmarks, domains, seeds, models)
    benches = sorted({s[1] for s in stages})
    max_k = max(k for s in stages for k in s[2])
    study, data = settings(kwargs, benches, max_k, ensemble)
    if max(max(s[4]) for s in stages) > MAX_SEED:
        raise click.BadParameter(f'seeds must be <= {MAX_SEED}', param_hint='--seeds')
    try:
        rows = read_results(outdir)
        check_folder(rows, study, data, outdir)
        calibration = read_lines(os.path.join(outdir, 'calibration.jsonl'))
        check_folder(calibration, study, data, os.path.join(outdir, 'calibration.jsonl'))
        alphas = {}
        for _, b, _, arms, _ in stages:
            for arm in arms:
                try:
                    alphas[b, arm] = arm_alpha(arm, b, alpha, calibration)
                except GridError:
                    alphas[b, arm] = None
        for r in rows:
            a = alphas.get((r['benchmark'], r['model']))
            if a and (r['alpha_rule'], r['alpha']) != (a['alpha_rule'], a['alpha']):
                raise GridError(f'{outdir} holds {r["model"]} runs on {r["benchmark"]} with alpha {r["alpha_rule"]} {r["alpha"]}, '
                                f'this sweep asks {a["alpha_rule"]} {a["alpha"]}; use another --outdir')
    except GridError as e:
        fail(e)
    pending = {key: a or dict(alpha_rule='blind', alpha=None) for key, a in alphas.items()}  # for the estimate
    cells = [c for c in todo_cells(stages, rows, study, data, pending, ensemble, shard) if alphas[c[1], c[3]]]
    every = todo_cells(stages, rows, study, data, pending, ensemble)
    blocked = sorted({key for key, a in alphas.items() if a is None})
    note = [] if not blocked else [f'not runnable until calibrated (synthetic.py calibrate): '
                                   + ', '.join(f'{arm} on {b}' for b, arm in blocked)]
    return study, data, rows, alphas, cells, every, note


_grid = [
    click.option('--outdir',     help='Folder for results, calibration and report', metavar='DIR', required=True),
    click.option('--benchmarks', help='Comma-separated benchmarks [default: the stages of docs/synthetic.md]', callback=names(list(BENCHMARKS))),
    click.option('--domains',    help='Comma-separated numbers of domains', callback=parse_list(int, 1)),
    click.option('--seeds',      help='Comma-separated seeds', callback=parse_list(int, 0)),
    click.option('--models',     help='Comma-separated arms', callback=names(list(ARMS))),
    click.option('--alpha',      help='Fixed L1 weight for the rule-(a) arms instead of the calibration', type=click.FloatRange(min=0)),
    click.option('--ensemble',   help='Most seeds trained together in one ensemble', type=click.IntRange(min=1, max=64), default=10, show_default=True),
    click.option('--processes',  help='Sweep processes the estimate divides by', type=click.IntRange(min=1, max=2), default=2, show_default=True),
]


@main.command()
@options(_grid)
@click.option('--timing', help='Results lines whose seconds per run to use (e.g. from run --append)', metavar='FILE')
@options(_study)
@options(_data)
def plan(outdir, benchmarks, domains, seeds, models, alpha, ensemble, processes, timing, **kwargs):
    """Print the cells still to run, in order, and the estimated hours."""
    study, data, rows, alphas, _, cells, note = prepare_sweep(outdir, benchmarks, domains, seeds, models, alpha, ensemble, kwargs)
    runs = len(CALIBRATION['seeds']) * len(CALIBRATION['alphas'])  # what calibrate trains per arm with its defaults
    cells = [('calibration', b, CALIBRATION['K'], arm, range(runs)) for (b, arm), a in alphas.items() if a is None] + cells
    try:
        timed = seconds_per_run((read_lines(timing) if timing else []) + rows, study['max_steps'])
    except GridError as e:
        fail(e)
    click.echo('\n'.join(plan_lines(cells, timed, processes) + note))


@main.command()
@options(_grid)
@click.option('--shard', help='This process runs cell i of every n (two processes: 0/2 and 1/2)', default='0/1', show_default=True)
@click.option('--tag',   help='Write results-TAG.jsonl (two processes on disjoint selections)', type=click.Choice([str(i) for i in range(1, 10)]))
@options(_study)
@options(_data)
def sweep(outdir, benchmarks, domains, seeds, models, alpha, ensemble, processes, shard, tag, **kwargs):
    """Run the grid's cells not yet in outdir, decision cells first; a killed sweep resumes where it stopped."""
    try:
        index, count = (int(v) for v in shard.split('/'))
        assert 0 <= index < count <= 2
    except (ValueError, AssertionError):
        raise click.BadParameter('expected i/n with 0 <= i < n <= 2, e.g. 0/2', param_hint='--shard') from None
    study, data, rows, alphas, cells, _, note = prepare_sweep(outdir, benchmarks, domains, seeds, models, alpha, ensemble, kwargs,
                                                              (index, count))
    click.echo('\n'.join(plan_lines(cells, seconds_per_run(rows, study['max_steps']), processes) + [f'skipped: {m}' for m in note]))
    path = results_path(outdir, (index, count), tag)
    mine = read_lines(path)
    os.makedirs(outdir, exist_ok=True)
    for stage, b, k, arm, s in cells:
        start = time.time()
        try:
            mine += run_cell(b, arm, k, s, study, data[b], alphas[b, arm])
        except (ValueError, RuntimeError) as e:
            fail(e)
        with dnnlib.util.atomic_write(path, 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in mine))
        click.echo(f'[{stage}] {b} K={k} {arm} seeds {",".join(map(str, s))}: {time.time() - start:.0f} s', err=True)
    click.echo(f'{path} holds {len(mine)} runs; "synthetic.py report --outdir={outdir}" redraws the tables')

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir',     help='Folder for audit.jsonl', metavar='DIR', required=True)
@click.option('--benchmarks', help='Comma-separated benchmarks', callback=names(list(BENCHMARKS)), default=','.join(BENCHMARKS), show_default=True)
@click.option('--domains',    help='Comma-separated numbers of domains', callback=parse_list(int, 1), default='3', show_default=True)
@click.option('--seeds',      help='Comma-separated seeds', callback=parse_list(int, 0), default='0,1,2,3,4,5,6,7,8,9', show_default=True)
@options(_study)
@options(_data)
def audit(outdir, benchmarks, domains, seeds, **kwargs):
    """Premise audit without training: scaled L1 of the true g and of reading x per data set."""
    from synthetic_study.premise import audit_dataset, outside_premise
    from synthetic_study.runner import draw
    study, data = settings(kwargs, benchmarks, max(domains))
    if max(seeds) > MAX_SEED or len(benchmarks) * len(domains) * len(seeds) > 10000:
        raise click.BadParameter(f'at most 10000 data sets and seeds <= {MAX_SEED}', param_hint='--seeds')
    rows = []
    try:
        for b in benchmarks:
            for k in domains:
                for s in seeds:
                    a = audit_dataset(draw(data[b], study, k, s), s)
                    rows.append(dict(benchmark=b, K=k, seed=s, **study, **data[b], **a,
                                     outside_premise_readx=outside_premise(a['l1_true'], a['l1_readx'])))
    except (ValueError, RuntimeError) as e:
        fail(e)
    path = os.path.join(outdir, 'audit.jsonl')
    try:
        key = lambda r: json.dumps({k: r[k] for k in ('benchmark', 'K', 'seed') + tuple(study) + tuple(data[r['benchmark']])}, sort_keys=True)
        new = {key(r) for r in rows}
        kept = [r for r in read_audit(path) if r['benchmark'] not in data or key(r) not in new]  # earlier data sets stay
    except (GridError, KeyError):
        fail(GridError(f'{path} was not written by this version of synthetic.py audit'))
    with dnnlib.util.atomic_write(path, 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in kept + rows))
    from synthetic_study.report import audit_table
    click.echo(audit_table(kept + rows, []))

#----------------------------------------------------------------------------

@main.command()
@click.option('--outdir', help='Folder holding results*.jsonl', metavar='DIR', required=True)
def report(outdir):
    """Write results.md (tables, premise audit, decision rule), summary.jsonl and mcc_vs_domains.png."""
    from synthetic_study.report import write_report
    try:
        rows = read_results(outdir)
        audit_rows = read_audit(os.path.join(outdir, 'audit.jsonl'))
        calibration = read_lines(os.path.join(outdir, 'calibration.jsonl'))
    except GridError as e:
        fail(e)
    if not rows:
        raise click.ClickException(f'no results in {outdir}; run "synthetic.py sweep --outdir={outdir}" first')
    click.echo(write_report(outdir, rows, audit_rows, calibration))


def read_audit(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        try:
            rows = [json.loads(line) for line in f if line.strip()][:MAX_SAMPLES]
        except json.JSONDecodeError:
            raise GridError(f'{path} is not JSON lines') from None
    if not all(isinstance(r, dict) for r in rows):
        raise GridError(f'{path} holds a line that is not a JSON object')
    return [with_added_keys(r) for r in rows]

#----------------------------------------------------------------------------
