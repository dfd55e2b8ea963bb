"""Does CG-GAN's sparsity term do anything? i-StyleGAN to convergence, then fine-tuned with L_s at several
weights and seeds, scored against the ground-truth factors of builtin:shapes (docs/cg-gan-results.md).

  python tools/cg_experiment.py --outdir=out/cg-exp                  # everything, resumable
  python tools/cg_experiment.py --outdir=out/cg-exp --base-run=runs/00000-shapes-16-tiny-istylegan-...

Stages (each skipped when its output exists, so a killed run continues where it stopped):
  1. data     builtin:shapes at --res (--images images, seed 0) -> <outdir>/shapes-<res>.zip
  2. oracle   the factor oracle of metrics/factor_oracle.py, trained on the reals (held-out scores printed)
  3. base     i-StyleGAN (`--base-args`, seed 0) trained in chunks of --base-step kimg, each chunk an exact
              resume of the previous one (the same trajectory as one long run); after every chunk the G_ema
              is scored; training stops when fd_oracle has not improved by --min-gain over the best so far
              for --patience chunks (or at --base-max), and the fine-tunes start from the best-scored
              snapshot. With --base-run, that run's snapshots are scored with the same rule instead.
  4. tune     for every lambda in --lambdas and seed in --seeds: the base continued for --finetune-kimg more
              kimg with L_s at that weight (lambda 0 = i-StyleGAN continued; the same --seed shares reals
              and latents across lambdas, so differences are paired)
  5. score    ground-truth metrics (--samples eps, each in every domain), Jacobian sparsity of style and
              content columns, active style dims, L_s gradient share, s/kimg
  6. report   results.json, results.md (mean +- std over seeds, paired differences to lambda 0 with their
              standard errors), the default-lambda rule, trade-off plot, swap grids

Default-lambda rule (fixed before any run, never looks at ground truth): the largest lambda whose mean
fd_oracle (a quality score of the images alone) is at most (1 + --margin) times that of lambda = 0.
"""
import glob
import json
import math
import os
import re
import subprocess
import sys

import click
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tools'))

import dnnlib  # noqa: E402

SNAP_RE = re.compile(r'network-snapshot-(\d{6})\.pt$')
REPORT_METRICS = [  # (key, label, format)
    ('fd_oracle', 'fd_oracle (quality, lower = better)', '.1f'),
    ('precision_oracle', 'precision', '.3f'), ('recall_oracle', 'recall', '.3f'),
    ('recognised_shape', 'shape recognised', '.3f'),
    ('content_kept', 'content kept under swap', '.3f'), ('content_shape_kappa', 'shape kappa under swap', '.3f'),
    ('style_in_range', 'style in target range', '.3f'),
    ('mig_content', 'MIG content dims', '.3f'), ('mig_style', 'MIG style dims', '.3f'),
    ('style_l1', 'style col. L1', '.4f'), ('content_l1', 'content col. L1', '.4f'),
    ('style_l1_l2', 'style col. L1/L2', '.3f'), ('style_small', 'style col. small share', '.3f'),
    ('style_content_l1_ratio', 'style/content L1', '.3f'),
    ('active_dims', 'active style dims', '.1f'), ('ls_value', 'L_s value', '.4f'),
    ('grad_ratio_ls_to_adv', 'L_s grad / adv grad', '.3f'), ('sec_per_kimg', 's/kimg', '.1f'),
]

class UserError(Exception):
    pass

#----------------------------------------------------------------------------

def snapshots(folder):
    """{kimg: path} of the complete snapshots under folder (recursively)."""
    out = {}
    for p in glob.glob(os.path.join(folder, '**', 'network-snapshot-*.pt'), recursive=True):
        m = SNAP_RE.search(p)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def run_train(args, threads, log):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), *args]
    log('$ ' + ' '.join(cmd[1:]))
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise UserError(f'train.py failed (exit {r.returncode}): {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "no output"}')
    return r.stdout


def write(path, text):
    with dnnlib.util.atomic_write(path) as f:
        f.write(text.encode('utf-8'))


def read_jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.isfile(path) else []


def append_jsonl(path, rec):
    with open(path, 'a') as f:
        f.write(json.dumps(rec) + '\n')

#----------------------------------------------------------------------------

def score(snapshot, oracle, samples, lam, threads):
    """Every number of one snapshot (G_ema): ground truth, Jacobian sparsity, active dims, L_s share."""
    import torch
    torch.set_num_threads(threads)
    import compare_models
    from metrics import ground_truth
    from torch_utils.snapshot import load_snapshot
    data = load_snapshot(snapshot)
    G, D = data['G_ema'], data['D']
    res = ground_truth.evaluate(G, oracle, num_samples=samples, seed=0)
    jac = compare_models.measure_generator(G, num_latents=16, seed=0)
    res.update({k: v for k, v in jac.items() if isinstance(v, float)})
    res['active_dims'] = float(G.mapping.num_active()) if hasattr(G.mapping, 'num_active') else float('nan')
    share = compare_models.ls_gradient_share(data['G'], D, lam if lam > 0 else 1.0)
    res['ls_value'] = share['ls_value']
    res['grad_ratio_ls_to_adv'] = share['grad_ratio_ls_to_adv'] if lam > 0 else 0.0
    res['grad_ratio_ls_to_adv_at_1'] = share['grad_ratio_ls_to_adv'] / (lam if lam > 0 else 1.0)
    res['kimg'] = int(data['cur_nimg']) / 1000
    return res


def converged(curve, min_gain, patience):
    """True when fd_oracle has not improved by min_gain (relative) over the best so far for `patience` scores."""
    if len(curve) <= patience:
        return False
    best = min(r['fd_oracle'] for r in curve[:-patience])
    return all(r['fd_oracle'] > best * (1 - min_gain) for r in curve[-patience:])

#----------------------------------------------------------------------------

def stage_base(o, data, oracle, log):
    """Train (or score) the i-StyleGAN base; returns (snapshot path, its curve)."""
    curve_path = os.path.join(o.outdir, 'base_curve.jsonl')
    curve = read_jsonl(curve_path)
    scored = {r['kimg_name'] for r in curve}
    folder = o.base_run or os.path.join(o.outdir, 'base')
    def rescore():
        for kimg, path in snapshots(folder).items():
            if kimg > 0 and kimg not in scored:
                rec = dict(kimg_name=kimg, snapshot=path, **score(path, oracle, o.samples, 0, o.threads))
                append_jsonl(curve_path, rec)
                curve.append(rec)
                scored.add(kimg)
                log(f'base {kimg} kimg: fd_oracle {rec["fd_oracle"]:.1f}, shape recognised {rec["recognised_shape"]:.3f}, '
                    f'content kept {rec["content_kept"]:.3f}')
        curve.sort(key=lambda r: r['kimg_name'])
    rescore()
    while True:
        done = [r for r in curve if r['kimg_name'] % o.base_step == 0 or o.base_run]
        for i in range(len(done)):                     # the first snapshot at which the rule fires; its best score so far
            if converged(done[:i + 1], o.min_gain, o.patience):
                best = min(done[:i + 1], key=lambda r: r['fd_oracle'])
                log(f'base: fd_oracle stopped improving by {done[i]["kimg_name"]} kimg; fine-tuning from the best snapshot, '
                    f'{best["kimg_name"]} kimg.')
                return best, done[:i + 1]
        have = snapshots(folder)
        top = max(have) if have else 0
        if o.base_run or top >= o.base_max:
            if not done:
                raise UserError(f'no i-StyleGAN snapshot to start from in "{folder}".')
            log(f'base: not converged by the rule at {done[-1]["kimg_name"]} kimg (--base-max / end of --base-run); using it.')
            return done[-1], done
        target = (top // o.base_step + 1) * o.base_step
        args = [f'--outdir={folder}', f'--data={data}', '--model=istylegan', '--metrics=none', f'--kimg={target}', f'--tick={o.base_step / 2:g}',
                '--snap=2', '--seed=0']
        args += o.base_args.split() if top == 0 else [f'--resume={have[top]}']
        run_train(args, o.threads, log)
        rescore()


def stage_tune(o, data, base, log):
    runs = []
    for seed in o.seeds:
        for lam in o.lambdas:
            out = os.path.join(o.outdir, 'tune', f'lambda{lam:g}-seed{seed}')
            target = base['kimg_name'] + o.finetune_kimg
            have = snapshots(out)
            if target not in have:
                model = ['--model=cg-gan', f'--lambda-imgsparse={lam:g}', f'--sparse-interval={o.sparse_interval}'] if lam > 0 else ['--model=istylegan']
                run_train([f'--outdir={out}', f'--data={data}', f'--resume={base["snapshot"]}', *model, f'--seed={seed}',
                           f'--kimg={target}', '--tick=4', '--snap=1000', '--metrics=none'], o.threads, log)
                have = snapshots(out)
            runs.append(dict(lam=lam, seed=seed, snapshot=have[target], run_dir=os.path.dirname(have[target])))
    return runs


def stage_score(o, oracle, runs, log):
    import compare_models
    path = os.path.join(o.outdir, 'scores.jsonl')
    recs = {(r['lam'], r['seed']): r for r in read_jsonl(path) if r.get('samples') == o.samples}
    for run in runs:
        key = (run['lam'], run['seed'])
        if key not in recs:
            rec = dict(run, samples=o.samples, **score(run['snapshot'], oracle, o.samples, run['lam'], o.threads))
            rec['sec_per_kimg'] = compare_models.run_stats(run['run_dir']).get('sec_per_kimg', float('nan'))
            append_jsonl(path, rec)
            recs[key] = rec
            log(f'scored lambda {run["lam"]:g} seed {run["seed"]}: fd_oracle {rec["fd_oracle"]:.1f}, style col. L1 {rec["style_l1"]:.4f}')
    return [recs[(r['lam'], r['seed'])] for r in runs]

#----------------------------------------------------------------------------

def mean_std(vals):
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return float('nan'), float('nan')
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def choose_default(summary, margin):
    """The largest lambda > 0 whose mean fd_oracle is within (1 + margin) of lambda 0's (None if none)."""
    ref = summary[0.0]['fd_oracle'][0]
    ok = [lam for lam, s in summary.items() if lam > 0 and s['fd_oracle'][0] <= (1 + margin) * ref]
    return max(ok) if ok else None


def summarise(scores, lambdas):
    summary, paired = {}, {}
    for lam in lambdas:
        rows = [r for r in scores if r['lam'] == lam]
        summary[lam] = {k: mean_std([r.get(k) for r in rows]) for k, _, _ in REPORT_METRICS}
        base = {r['seed']: r for r in scores if r['lam'] == 0}
        if lam > 0:
            diffs = {}
            for k, _, _ in REPORT_METRICS:
                d = [r[k] - base[r['seed']][k] for r in rows if r['seed'] in base and k in r and k in base[r['seed']]]
                m, s = mean_std(d)
                diffs[k] = (m, s / math.sqrt(len(d)) if len(d) > 1 else float('nan'))
            paired[lam] = diffs
    return summary, paired


def markdown(o, oracle_scores, base, curve, summary, paired, default, seeds):
    lines = [f'Setting: builtin:shapes {o.res}x{o.res}, {o.images} images; base `{o.base_args}` (i-StyleGAN, seed 0) to '
             f'{base["kimg_name"]} kimg; each fine-tune {o.finetune_kimg} kimg more; seeds {", ".join(map(str, seeds))}; '
             f'{o.samples} eps per score, each rendered in every domain.', '',
             'Oracle on held-out reals: ' + ', '.join(f'{k.replace("oracle_", "").replace("_real", "")} {v:.3f}' for k, v in oracle_scores.items()), '',
             '**Base curve** (i-StyleGAN G_ema):', '', '| kimg | fd_oracle | shape recognised | content kept | style in range |', '|---|---|---|---|---|']
    lines += [f'| {r["kimg_name"]} | {r["fd_oracle"]:.1f} | {r["recognised_shape"]:.3f} | {r["content_kept"]:.3f} | {r["style_in_range"]:.3f} |' for r in curve]
    lams = sorted(summary)
    lines += ['', '**Fine-tunes**, mean ± std over seeds (λ = 0 is i-StyleGAN continued):', '',
              '| metric | ' + ' | '.join(f'λ = {l:g}' for l in lams) + ' |', '|---|' + '---|' * len(lams)]
    for k, label, fmt in REPORT_METRICS:
        lines.append(f'| {label} | ' + ' | '.join(f'{summary[l][k][0]:{fmt}} ± {summary[l][k][1]:{fmt}}' for l in lams) + ' |')
    lines += ['', '**Paired differences to λ = 0** (same seed: same reals and latents), mean ± standard error:', '',
              '| metric | ' + ' | '.join(f'λ = {l:g}' for l in lams if l > 0) + ' |', '|---|' + '---|' * (len(lams) - 1)]
    for k, label, fmt in REPORT_METRICS:
        lines.append(f'| {label} | ' + ' | '.join(f'{paired[l][k][0]:+{fmt}} ± {paired[l][k][1]:{fmt}}' for l in lams if l > 0) + ' |')
    rule = f'largest λ with mean fd_oracle ≤ (1 + {o.margin:g}) × λ = 0\'s ({(1 + o.margin) * summary[0.0]["fd_oracle"][0]:.1f})'
    lines += ['', f'Default-λ rule: {rule}: **{default if default is not None else "none qualifies"}**.']
    return '\n'.join(lines) + '\n'


def figures(o, summary, scores, default):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    lams = sorted(summary)
    xs = [l if l > 0 else min(x for x in lams if x > 0) / 10 for l in lams]
    keys = [('fd_oracle', 'fd_oracle (lower = better)'), ('style_l1', 'style column L1 (raw)'),
            ('style_l1_l2', 'style column L1/L2 (scale-free, lower = sparser)'), ('content_kept', 'content kept under swap')]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, (k, label) in zip(axes, keys):
        m = [summary[l][k][0] for l in lams]
        s = [summary[l][k][1] for l in lams]
        ax.errorbar(xs, m, yerr=s, marker='o', capsize=3)
        for l, x in zip(lams, xs):
            ax.scatter([x] * len([r for r in scores if r['lam'] == l]), [r[k] for r in scores if r['lam'] == l], s=8, color='grey', alpha=0.6)
        ax.set_xscale('log')
        ax.set_xticks(xs)
        ax.set_xticklabels([f'{l:g}' for l in lams])
        ax.set_xlabel('lambda (L_s weight)')
        ax.set_title(label, fontsize=9)
        if default is not None:
            ax.axvline(default, color='green', ls=':', lw=1)
    fig.tight_layout()
    fig.savefig(os.path.join(o.outdir, 'tradeoff.png'), dpi=120)
    plt.close(fig)

    import torch
    from torch_utils.snapshot import load_snapshot
    from training import domain_swap
    pick = [0.0] + ([default] if default is not None else [max(lams)])
    grids, headers = [], []
    for lam in pick:                                   # the same eps (generate.py seeds 0-7) for both models
        rec = next(r for r in scores if r['lam'] == lam and r['seed'] == o.seeds[0])
        G = load_snapshot(rec['snapshot'])['G_ema']
        grids.append(domain_swap.swap_grid(G, list(range(8)), truncation_psi=1.0))
        headers += [f'lam={lam:g} d{k}' for k in range(G.c_dim)]
    imgs = domain_swap.upscale(torch.cat(grids, dim=1))
    domain_swap.save_grid_png(imgs, os.path.join(o.outdir, 'swaps.png'), col_headers=headers)

#----------------------------------------------------------------------------

def _floats(s):
    return [float(x) for x in s.split(',') if x.strip()]

def _ints(s):
    return [int(x) for x in s.split(',') if x.strip()]

@click.command()
@click.option('--outdir', required=True, metavar='DIR', help='Where everything goes (resumable)')
@click.option('--res', type=click.Choice(['16', '32']), default='16', show_default=True, help='Resolution')
@click.option('--images', type=click.IntRange(min=100), default=10000, show_default=True, help='Images in the data set')
@click.option('--base-args', default='--cfg=tiny --cbase=512 --cmax=32 --aug=noaug', show_default=True, help='train.py options of the base')
@click.option('--base-run', metavar='DIR', help='Score the snapshots of this i-StyleGAN run instead of training one')
@click.option('--base-step', type=click.IntRange(min=1), default=20, show_default=True, help='kimg per base chunk')
@click.option('--base-max', type=click.IntRange(min=1), default=400, show_default=True, help='Longest base, kimg')
@click.option('--min-gain', type=click.FloatRange(min=0), default=0.05, show_default=True, help='Relative fd_oracle gain that counts as improving')
@click.option('--patience', type=click.IntRange(min=1), default=2, show_default=True, help='Chunks without gain before the base stops')
@click.option('--finetune-kimg', type=click.IntRange(min=1), default=12, show_default=True, help='kimg of every fine-tune')
@click.option('--lambdas', type=_floats, default='0,0.1,1,10,100', show_default=True, help='L_s weights (0 = i-StyleGAN continued)')
@click.option('--sparse-interval', type=click.IntRange(min=1), default=1, show_default=True, help='L_s every N steps (weight x N) in the fine-tunes')
@click.option('--seeds', type=_ints, default='0,1,2', show_default=True, help='Fine-tune seeds')
@click.option('--samples', type=click.IntRange(min=10), default=1000, show_default=True, help='eps per ground-truth score')
@click.option('--margin', type=click.FloatRange(min=0), default=0.10, show_default=True, help='Default-lambda rule: allowed fd_oracle increase')
@click.option('--threads', type=click.IntRange(min=1), default=1, show_default=True, help='torch threads per process')
def main(**kwargs):
    """CG-GAN vs i-StyleGAN on builtin:shapes, scored against ground truth (module docstring)."""
    o = dnnlib.EasyDict(kwargs)
    o.res = int(o.res)
    if 0.0 not in o.lambdas:
        raise click.ClickException('--lambdas must include 0 (i-StyleGAN continued), the reference of every comparison.')
    if any(l < 0 for l in o.lambdas):
        raise click.ClickException('--lambdas must be >= 0.')
    o.lambdas = sorted(set(o.lambdas))
    os.makedirs(o.outdir, exist_ok=True)
    log_file = open(os.path.join(o.outdir, 'log.txt'), 'a')
    def log(msg):
        print(msg, flush=True)
        print(msg, file=log_file, flush=True)
    try:
        import torch
        torch.set_num_threads(o.threads)
        import dataset_tool
        from metrics import factor_oracle
        data = os.path.join(o.outdir, f'shapes-{o.res}.zip')
        if not os.path.isfile(data):
            dataset_tool.convert_dataset('builtin:shapes', data, resolution=o.res, max_images=o.images, seed=0, progress=False)
        oracle = factor_oracle.load_or_train(data, cache_dir=os.path.join(o.outdir, 'oracle'), seed=0, progress=False)
        log('oracle, held-out reals: ' + ', '.join(f'{k} {v:.3f}' for k, v in oracle.scores.items()))
        base, curve = stage_base(o, data, oracle, log)
        runs = stage_tune(o, data, base, log)
        scores = stage_score(o, oracle, runs, log)
        summary, paired = summarise(scores, o.lambdas)
        default = choose_default(summary, o.margin)
        md = markdown(o, oracle.scores, base, curve, summary, paired, default, o.seeds)
        write(os.path.join(o.outdir, 'results.md'), md)
        result = dict(settings={k: v for k, v in o.items()}, oracle=oracle.scores, base=base, base_curve=curve, default_lambda=default,
                      summary={f'{l:g}': v for l, v in summary.items()}, paired={f'{l:g}': v for l, v in paired.items()}, runs=scores)
        write(os.path.join(o.outdir, 'results.json'), json.dumps(result, indent=1))
        figures(o, summary, scores, default)
        log(md)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    finally:
        log_file.close()

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
