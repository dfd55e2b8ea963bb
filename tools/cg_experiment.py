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
    ('leakage', 'off-region leakage of a swap', '.3f'), ('swap_in_region', 'swap change in the regions', '.3f'),
    ('style_in_region_share', 'style dims: Jacobian mass in the regions', '.3f'),
    ('content_in_region_share', 'content dims: Jacobian mass in the regions', '.3f'),
    ('dci_disentanglement', 'DCI disentanglement', '.3f'), ('dci_completeness', 'DCI completeness', '.3f'),
    ('dci_informativeness', 'DCI informativeness', '.3f'),
    ('style_l1', 'style col. L1', '.4f'), ('content_l1', 'content col. L1', '.4f'),
    ('style_l1_l2', 'style col. L1/L2', '.3f'), ('style_small', 'style col. small share', '.3f'),
    ('style_content_l1_ratio', 'style/content L1', '.3f'),
    ('active_dims', 'active style dims', '.1f'), ('ls_value', 'L_s value', '.4f'),
    ('grad_ratio_ls_to_adv', 'L_s grad / adv grad', '.3f'),
    ('grad_cos_style_content', 'cos(grad style-col. L1, grad content-col. L1)', '.3f'),
    ('ls_mixed_over_unmixed', 'L_s with style mixing / without', '.3f'),
    ('grad_mixed_over_unmixed', 'L_s grad norm with mixing / without', '.3f'), ('sec_per_kimg', 's/kimg', '.1f'),
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

def score(snapshot, oracle, samples, lam, threads, masks=None):
    """Every number of one snapshot (G_ema): ground truth, Jacobian sparsity, active dims, L_s share and,
    with region masks, the mechanism metrics (metrics/region_metrics.py) and what limits L_s."""
    import torch
    torch.set_num_threads(threads)
    import compare_models
    from metrics import ground_truth, region_metrics
    from torch_utils.snapshot import load_snapshot
    data = load_snapshot(snapshot)
    G, D = data['G_ema'], data['D']
    res = ground_truth.evaluate(G, oracle, num_samples=samples, seed=0)
    from metrics.generator_jacobian import domain_columns
    cols = domain_columns(G, num_latents=16, seed=0)                   # once for the sparsity and the region shares
    jac = compare_models.measure_generator(G, columns=cols)
    res.update({k: v for k, v in jac.items() if isinstance(v, float)})
    res['active_dims'] = float(G.mapping.num_active()) if hasattr(G.mapping, 'num_active') else float('nan')
    share = compare_models.ls_gradient_share(data['G'], D, lam if lam > 0 else 1.0)
    res['ls_value'] = share['ls_value']
    res['grad_ratio_ls_to_adv'] = share['grad_ratio_ls_to_adv'] if lam > 0 else 0.0
    res['grad_ratio_ls_to_adv_at_1'] = share['grad_ratio_ls_to_adv'] / (lam if lam > 0 else 1.0)
    if masks is not None:
        res.update(region_metrics.generator_leakage(G, masks, num_samples=samples, seed=0))
        res.update(region_metrics.generator_region_shares(G, masks, columns=cols))
        res.update(compare_models.ls_mechanism(data['G']))
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
        done = [r for r in curve if (r['kimg_name'] % o.base_step == 0 or o.base_run) and r['kimg_name'] >= o.base_min]
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


def finetune_kimg(o, base):
    """--finetune-kimg, or (0) a fifth of the base's length, at least 30 kimg."""
    return o.finetune_kimg if o.finetune_kimg > 0 else max(30, math.ceil(base['kimg_name'] / 5))


def stage_tune(o, data, base, log):
    runs = []
    for seed in o.seeds:
        for lam in o.lambdas:
            out = os.path.join(o.outdir, 'tune', f'lambda{lam:g}-seed{seed}')
            target = base['kimg_name'] + finetune_kimg(o, base)
            have = snapshots(out)
            if target not in have:
                model = ['--model=cg-gan', f'--lambda-imgsparse={lam:g}', f'--sparse-interval={o.sparse_interval}'] if lam > 0 else ['--model=istylegan']
                run_train([f'--outdir={out}', f'--data={data}', f'--resume={base["snapshot"]}', *model, f'--seed={seed}',
                           f'--kimg={target}', '--tick=4', '--snap=1000', '--metrics=none'], o.threads, log)
                have = snapshots(out)
            runs.append(dict(lam=lam, seed=seed, snapshot=have[target], run_dir=os.path.dirname(have[target])))
    return runs


def data_masks(data):
    """Style-region masks of a data set (None when it stores none, e.g. builtin:shapes)."""
    from metrics import region_metrics
    from training.dataset import ImageFolderDataset
    ds = ImageFolderDataset(path=data, use_labels=True)
    if 'style_regions' not in ds._meta:
        return None
    return region_metrics.regions_from_meta(ds._meta, int(ds.resolution), where=f'"{data}"')


def stage_score(o, oracle, runs, base, masks, log):
    """Scores of every fine-tune and of the base itself (record with lam None), cached in scores.jsonl."""
    import compare_models
    path = os.path.join(o.outdir, 'scores.jsonl')
    recs = {(r['lam'], r['seed']): r for r in read_jsonl(path) if r.get('samples') == o.samples}
    todo = [dict(lam=None, seed=None, snapshot=base['snapshot'], run_dir=os.path.dirname(base['snapshot']))] + runs
    for run in todo:
        key = (run['lam'], run['seed'])
        if key not in recs:
            rec = dict(run, samples=o.samples, **score(run['snapshot'], oracle, o.samples, run['lam'] or 0.0, o.threads, masks))
            rec['sec_per_kimg'] = compare_models.run_stats(run['run_dir']).get('sec_per_kimg', float('nan')) if run['lam'] is not None else float('nan')
            append_jsonl(path, rec)
            recs[key] = rec
            what = 'base' if run['lam'] is None else f'lambda {run["lam"]:g} seed {run["seed"]}'
            log(f'scored {what}: fd_oracle {rec["fd_oracle"]:.1f}, leakage {rec.get("leakage", float("nan")):.3f}')
    return recs[(None, None)], [recs[(r['lam'], r['seed'])] for r in runs]

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


def markdown(o, name, oracle_scores, base, curve, summary, paired, default, seeds, base_rec=None):
    classes = sorted(k[len('recognised_shape_'):-len('_real')] for k in curve[0] if k.startswith('recognised_shape_') and k.endswith('_real')
                     and k != 'recognised_shape_real') if curve else []
    lines = [f'Setting: builtin:{name} {o.res}x{o.res}, {o.images} images; base `{o.base_args}` (i-StyleGAN, seed 0) to '
             f'{base["kimg_name"]} kimg; each fine-tune {finetune_kimg(o, base)} kimg more; seeds {", ".join(map(str, seeds))}; '
             f'{o.samples} eps per score, each rendered in every domain.', '',
             'Oracle on held-out reals: ' + ', '.join(f'{k.replace("oracle_", "").replace("_real", "")} {v:.3f}' for k, v in oracle_scores.items()), '',
             '**Base curve** (i-StyleGAN G_ema; recognised: share named with confidence, reals in brackets):', '',
             '| kimg | fd_oracle | ' + ' | '.join(f'{c} recognised' for c in classes) + ' | content kept | style in range | active style dims |',
             '|---|---|' + '---|' * len(classes) + '---|---|---|']
    lines += [f'| {r["kimg_name"]} | {r["fd_oracle"]:.1f} | ' + ' | '.join(f'{r[f"recognised_shape_{c}"]:.3f} ({r[f"recognised_shape_{c}_real"]:.2f})' for c in classes) +
              f' | {r["content_kept"]:.3f} | {r["style_in_range"]:.3f} | {r["active_dims"]:g} |' for r in curve]
    lams = sorted(summary)
    se = lambda m_s: m_s[1] / math.sqrt(len(seeds)) if len(seeds) > 1 else float('nan')
    lines += ['', '**Fine-tunes**, mean ± standard error over seeds (λ = 0 is i-StyleGAN continued; "base": the base itself):', '',
              '| metric | base | ' + ' | '.join(f'λ = {l:g}' for l in lams) + ' |', '|---|---|' + '---|' * len(lams)]
    for k, label, fmt in REPORT_METRICS:
        b = base_rec.get(k, float('nan')) if base_rec else float('nan')
        b = b if isinstance(b, float) else float('nan')
        lines.append(f'| {label} | {b:{fmt}} | ' + ' | '.join(f'{summary[l][k][0]:{fmt}} ± {se(summary[l][k]):{fmt}}' for l in lams) + ' |')
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

GATE_CLASS_SHARE = 0.4      # every content class recognised at >= 40 % of its real share ...
GATE_STYLE_IN_RANGE = 0.8   # ... and style in the target range >= 0.8, or no conclusion is drawn
LEAKAGE_DROP = 0.2          # "effect shown" needs the off-region leakage to fall by >= 20 %


def gate(rec, class_names):
    """(passed, [reasons it failed]) of a base score record against the gate fixed before the runs."""
    why = []
    for factor, labels in class_names.items():
        for label in labels:
            got, real = rec.get(f'recognised_{factor}_{label}', 0.0), rec.get(f'recognised_{factor}_{label}_real', 0.0)
            if got < GATE_CLASS_SHARE * real:
                why.append(f'{factor} {label} recognised {got:.3f} < {GATE_CLASS_SHARE:g} x real {real:.3f}')
    if rec.get('style_in_range', 0.0) < GATE_STYLE_IN_RANGE:
        why.append(f'style in range {rec.get("style_in_range", 0.0):.3f} < {GATE_STYLE_IN_RANGE:g}')
    return not why, why


def relative_drop(scores, lam, key='leakage'):
    """Per seed (x_0 - x_lam) / x_0, paired by seed -> (mean, standard error, n)."""
    ref = {r['seed']: r[key] for r in scores if r['lam'] == 0}
    d = [(ref[r['seed']] - r[key]) / ref[r['seed']] for r in scores if r['lam'] == lam and r['seed'] in ref and ref[r['seed']] > 0]
    m, sd = mean_std(d)
    return m, sd / math.sqrt(len(d)) if len(d) > 1 else float('nan'), len(d)


def passing_lambdas(summary, margin):
    ref = summary[0.0]['fd_oracle'][0]
    return sorted(l for l, s_ in summary.items() if l > 0 and s_['fd_oracle'][0] <= (1 + margin) * ref)


def decide(res, margin, test='patches', control='patches-global'):
    """The decision rule of docs/cg-gan-results.md, written before the runs. res: {data set: results dict
    with summary, paired, runs, gate}. Returns (verdict, details)."""
    t, c = res.get(test), res.get(control)
    if t is None or c is None:
        return 'inconclusive', dict(reason=f'needs both {test} and {control}')
    if not t['gate'][0] or not c['gate'][0]:
        failed = [name for name, r in ((test, t), (control, c)) if not r['gate'][0]]
        return 'no conclusion (base failed the gate)', dict(reason='gate failed on ' + ', '.join(failed), gate={test: t['gate'], control: c['gate']})
    beyond = lambda m_se, sign: m_se[1] == m_se[1] and sign * m_se[0] > 2 * m_se[1]
    detail, moved_any = {}, False
    for lam in passing_lambdas(t['summary'], margin):
        p = t['paired'][lam]
        drop, drop_c = relative_drop(t['runs'], lam), relative_drop(c['runs'], lam)
        se_d = math.sqrt(drop[1] ** 2 + drop_c[1] ** 2)
        crit = dict(leakage=drop[0] >= LEAKAGE_DROP and beyond(p['leakage'], -1), content_kept=beyond(p['content_kept'], +1),
                    in_region=beyond(p['style_in_region_share'], +1), control=drop[0] - drop_c[0] > 2 * se_d)
        moved = beyond(p['leakage'], -1) or crit['content_kept'] or crit['in_region']
        moved_any |= moved
        detail[lam] = dict(criteria=crit, leakage_drop=drop, leakage_drop_control=drop_c, gain_over_control=(drop[0] - drop_c[0], se_d), moved=moved)
    chosen = max(detail) if detail else None
    if chosen is None:
        return 'inconclusive', dict(reason='no lambda > 0 passes the quality rule', lambdas=detail)
    if all(detail[chosen]['criteria'].values()):
        return 'effect shown', dict(chosen=chosen, lambdas=detail)
    if not moved_any:
        return 'refuted at this scale', dict(chosen=chosen, lambdas=detail)
    return 'inconclusive', dict(chosen=chosen, lambdas=detail)


def report_all(o, results):
    """Across data sets: the decision rule, results.json / results.md and the two joint figures."""
    results = {k: v for k, v in results.items() if v is not None}
    verdict, detail = decide(results, o.margin)
    lines = [f'# Decision: **{verdict}**', '']
    for name, r in results.items():
        lines.append(f'- {name}: base {r["base"]["kimg_name"]} kimg, gate {"passed" if r["gate"][0] else "FAILED: " + "; ".join(r["gate"][1])}; '
                     f'quality rule picks lambda {r["default_lambda"]}')
    for lam, d in detail.get('lambdas', {}).items():
        f = lambda m_se: f'{m_se[0]:+.3f} ± {m_se[1]:.3f}'
        lines.append(f'- lambda {lam:g}: leakage drop {f(d["leakage_drop"])} (control {f(d["leakage_drop_control"])}, '
                     f'gain over control {f(d["gain_over_control"])}); criteria ' + ', '.join(f'{k} {"yes" if v else "no"}' for k, v in d['criteria'].items()))
    if 'reason' in detail:
        lines.append(f'- {detail["reason"]}')
    md = '\n'.join(lines) + '\n'
    write(os.path.join(o.outdir, 'results.md'), md + '\n' + '\n'.join(open(os.path.join(o.outdir, n, 'results.md')).read() for n in results))
    write(os.path.join(o.outdir, 'results.json'), json.dumps(dict(settings=dict(o), verdict=verdict, detail=detail, datasets=results), indent=1))
    joint_figures(o, results)
    print(md, flush=True)
    return verdict, detail


def joint_figures(o, results):
    """swaps_joint.png: base and CG-GAN (the quality rule's lambda, seed 0) on the same eps, every data set;
    jacobian_mass.png: where the style dims' Jacobian mass |J e_k| falls, with the style regions outlined."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from torch_utils.snapshot import load_snapshot
    from training import domain_swap
    from metrics import region_metrics
    grids, headers, maps = [], [], []
    for name, r in results.items():
        lam = r['default_lambda'] if r['default_lambda'] is not None else max(r['summary'])
        tuned = next(x for x in r['runs'] if x['lam'] == lam and x['seed'] == o.seeds[0])
        masks = data_masks(os.path.join(o.outdir, name, f'{name}-{o.res}.zip'))
        for label, snap in (('base', r['base']['snapshot']), (f'L={lam:g}', tuned['snapshot'])):
            G = load_snapshot(snap)['G_ema']
            grids.append(domain_swap.swap_grid(G, list(range(6)), truncation_psi=1.0))
            headers += [f'{name[:9]} {label} d{k}' for k in range(G.c_dim)]
            share = region_metrics.generator_region_shares(G, masks)['style_in_region_share'] if masks else float('nan')
            maps.append((f'{name} {label}: in-region share {share:.2f}', region_metrics.style_jacobian_map(G), masks))
    domain_swap.save_grid_png(domain_swap.upscale(torch.cat(grids, dim=1)), os.path.join(o.outdir, 'swaps_joint.png'), col_headers=headers)
    fig, axes = plt.subplots(1, len(maps), figsize=(3 * len(maps), 3.3))
    for ax, (title, m, masks) in zip(np.atleast_1d(axes), maps):
        ax.imshow(m, cmap='magma')
        for mk in (masks or {}).values():
            ys, xs = np.nonzero(mk)
            ax.add_patch(matplotlib.patches.Rectangle((xs.min() - 0.5, ys.min() - 0.5), np.ptp(xs) + 1, np.ptp(ys) + 1, fill=False, ec='cyan', lw=1))
        ax.set_title(title, fontsize=8)
        ax.axis('off')
    fig.suptitle('Jacobian mass of the active style dims (sum over dims, eps, domains, channels)', fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(o.outdir, 'jacobian_mass.png'), dpi=120)
    plt.close(fig)

#----------------------------------------------------------------------------

def _floats(s):
    return [float(x) for x in s.split(',') if x.strip()]

def _ints(s):
    return [int(x) for x in s.split(',') if x.strip()]

def _names(s):
    return [x.strip() for x in s.split(',') if x.strip()]

STAGES = ('base', 'tune', 'score', 'report')

def prepare(o, name, log):
    """Stages 1-2 of data set `name` under <outdir>/<name>/: (data path, oracle)."""
    import dataset_tool
    from metrics import factor_oracle
    folder = os.path.join(o.outdir, name)
    os.makedirs(folder, exist_ok=True)
    data = os.path.join(folder, f'{name}-{o.res}.zip')
    if not os.path.isfile(data):
        dataset_tool.convert_dataset(f'builtin:{name}', data, resolution=o.res, max_images=o.images, seed=0, progress=False)
    oracle = factor_oracle.load_or_train(data, cache_dir=os.path.join(folder, 'oracle'), seed=0, progress=False)
    log(f'{name}: oracle, held-out reals: ' + ', '.join(f'{k} {v:.3f}' for k, v in oracle.scores.items()))
    return folder, data, oracle


def pipeline(o, name):
    """Every stage of one data set up to --until; returns its results dict (None before 'report')."""
    import torch
    torch.set_num_threads(o.threads)
    log_file = open(os.path.join(o.outdir, f'log-{name}.txt'), 'a')
    def log(msg):
        print(f'[{name}] {msg}', flush=True)
        print(msg, file=log_file, flush=True)
    from datasets import builtin
    try:
        folder, data, oracle = prepare(o, name, log)
        d = dnnlib.EasyDict(o, outdir=folder, base_run=o.base_run if len(o.datasets) == 1 else None)
        base, curve = stage_base(d, data, oracle, log)
        if STAGES.index(o.until) < 1:
            return None
        runs = stage_tune(d, data, base, log)
        if STAGES.index(o.until) < 2:
            return None
        masks = data_masks(data)
        base_rec, scores = stage_score(d, oracle, runs, base, masks, log)
        if STAGES.index(o.until) < 3:
            return None
        summary, paired = summarise(scores, o.lambdas)
        default = choose_default(summary, o.margin)
        md = markdown(d, name, oracle.scores, base, curve, summary, paired, default, o.seeds, base_rec)
        write(os.path.join(folder, 'results.md'), md)
        result = dict(dataset=name, oracle=oracle.scores, base=dict(base, **{k: v for k, v in base_rec.items() if k not in base}),
                      base_curve=curve, default_lambda=default, gate=gate(base_rec, oracle.meta['class_names']),
                      finetune_kimg=finetune_kimg(o, base), pixel_shares=builtin.pixel_shares(name, o.res),
                      summary=summary, paired=paired, runs=scores)
        write(os.path.join(folder, 'results.json'), json.dumps(result, indent=1))
        figures(d, summary, scores, default)
        log(md)
        return result
    finally:
        log_file.close()

@click.command()
@click.option('--outdir', required=True, metavar='DIR', help='Where everything goes (resumable)')
@click.option('--datasets', type=_names, default='patches,patches-global', show_default=True, help='Built-in data sets, each in <outdir>/<name>/')
@click.option('--res', type=click.Choice(['16', '32']), default='16', show_default=True, help='Resolution')
@click.option('--images', type=click.IntRange(min=100), default=50000, show_default=True, help='Images in each data set')
@click.option('--base-args', default='--cfg=tiny --cbase=512 --cmax=32 --aug=noaug --i-dim=8', show_default=True, help='train.py options of the base')
@click.option('--base-run', metavar='DIR', help='Score the snapshots of this i-StyleGAN run instead of training one (one data set only)')
@click.option('--base-step', type=click.IntRange(min=1), default=20, show_default=True, help='kimg per base chunk')
@click.option('--base-min', type=click.IntRange(min=0), default=100, show_default=True, help='Shortest base, kimg: earlier snapshots are never chosen')
@click.option('--base-max', type=click.IntRange(min=1), default=600, show_default=True, help='Longest base, kimg')
@click.option('--min-gain', type=click.FloatRange(min=0), default=0.05, show_default=True, help='Relative fd_oracle gain that counts as improving')
@click.option('--patience', type=click.IntRange(min=1), default=3, show_default=True, help='Chunks without gain before the base stops')
@click.option('--finetune-kimg', type=click.IntRange(min=0), default=30, show_default=True, help='kimg of every fine-tune (0: max(30, base kimg / 5))')
@click.option('--lambdas', type=_floats, default='0,1,10', show_default=True, help='L_s weights (0 = i-StyleGAN continued)')
@click.option('--sparse-interval', type=click.IntRange(min=1), default=1, show_default=True, help='L_s every N steps (weight x N) in the fine-tunes')
@click.option('--seeds', type=_ints, default='0,1,2', show_default=True, help='Fine-tune seeds')
@click.option('--samples', type=click.IntRange(min=10), default=1000, show_default=True, help='eps per ground-truth score')
@click.option('--margin', type=click.FloatRange(min=0), default=0.10, show_default=True, help='Default-lambda rule: allowed fd_oracle increase')
@click.option('--threads', type=click.IntRange(min=1), default=1, show_default=True, help='torch threads per process')
@click.option('--jobs', type=click.IntRange(min=1, max=8), default=2, show_default=True, help='Data sets processed at once (one process each)')
@click.option('--until', type=click.Choice(STAGES), default='report', show_default=True, help='Stop after this stage')
def main(**kwargs):
    """CG-GAN vs i-StyleGAN on built-in data sets with known factors, scored against ground truth (module docstring)."""
    o = dnnlib.EasyDict(kwargs)
    o.res = int(o.res)
    from datasets import builtin
    for name in o.datasets:
        if name not in builtin.BUILTIN_SETS:
            raise click.ClickException(f'--datasets: unknown built-in data set "{name}"; choose from {", ".join(sorted(builtin.BUILTIN_SETS))}.')
    if not o.datasets or len(set(o.datasets)) != len(o.datasets):
        raise click.ClickException('--datasets must name each data set once.')
    if o.base_run and len(o.datasets) != 1:
        raise click.ClickException('--base-run scores one existing run: pass a single --datasets name with it.')
    if 0.0 not in o.lambdas:
        raise click.ClickException('--lambdas must include 0 (i-StyleGAN continued), the reference of every comparison.')
    if any(l < 0 for l in o.lambdas):
        raise click.ClickException('--lambdas must be >= 0.')
    o.lambdas = sorted(set(o.lambdas))
    os.makedirs(o.outdir, exist_ok=True)
    try:
        if o.jobs > 1 and len(o.datasets) > 1:
            import concurrent.futures
            import multiprocessing
            with concurrent.futures.ProcessPoolExecutor(min(o.jobs, len(o.datasets)), mp_context=multiprocessing.get_context('spawn')) as ex:
                results = dict(zip(o.datasets, ex.map(pipeline, [o] * len(o.datasets), o.datasets)))
        else:
            results = {name: pipeline(o, name) for name in o.datasets}
        if o.until == 'report':
            report_all(o, results)
    except UserError as e:
        raise click.ClickException(str(e)) from None

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
