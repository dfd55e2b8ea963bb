"""Report of a sweep: per-cell summaries (mean and 95% t interval over seeds), paired differences of
CG-VAE minus every other model (same seed = same data), Markdown tables and the figure."""
import json
import os

import numpy as np

import dnnlib
from synthetic_study.cli import DATA_KEYS, SETTING_KEYS, STUDY_KEYS
from synthetic_study.stats import mean_interval, paired_differences

REFERENCE = 'cg_vae'
MODEL_ORDER = ('cg_vae', 'cg_vae_nosparse', 'sparse_only', 'ivae', 'beta_vae')
BENCHMARK_ORDER = ('hard', 'easy', 'dense')

#----------------------------------------------------------------------------

def settings_of(row: dict) -> tuple:
    return tuple((k, row[k]) for k in SETTING_KEYS)


def _rank(value, preferred) -> int:
    return preferred.index(value) if value in preferred else len(preferred)


def _order(values, preferred):
    return sorted(values, key=lambda v: (_rank(v, preferred), str(v)))


def summarise(rows: list) -> list:
    """One entry per cell (every setting, benchmark, model, K): MCC, MCC of x, MCC minus MCC of x (paired:
    same data), held-out negative ELBO over seeds, and the paired difference to CG-VAE on the seeds both ran."""
    cells = {}
    for r in rows:
        cells.setdefault((settings_of(r), r['benchmark'], r['model'], r['K']), {})[r['seed']] = r
    out = []
    for (settings, bench, model, k), by_seed in cells.items():
        mcc = {s: r['mcc_heldout'] for s, r in by_seed.items()}
        entry = dict(settings=dict(settings), benchmark=bench, model=model, K=k, seeds=sorted(by_seed),
                     mcc=mean_interval(list(mcc.values())),
                     mcc_observed=mean_interval([r['mcc_observed'] for r in by_seed.values()]),
                     heldout_nelbo=mean_interval([r.get('heldout_nelbo', np.nan) for r in by_seed.values()]),
                     gain_over_x=mean_interval([r['mcc_heldout'] - r['mcc_observed'] for r in by_seed.values()]),
                     seconds=float(np.mean([r.get('seconds', np.nan) for r in by_seed.values()])))
        ref = cells.get((settings, bench, REFERENCE, k))
        if model != REFERENCE and ref:
            diffs = paired_differences({s: r['mcc_heldout'] for s, r in ref.items()}, mcc)
            entry['diff_vs_reference'] = mean_interval(diffs) if diffs else None
        out.append(entry)
    return sorted(out, key=lambda e: (str(sorted(e['settings'].items())), _rank(e['benchmark'], BENCHMARK_ORDER),
                                      _rank(e['model'], MODEL_ORDER), e['K']))


def _ci(t, digits=3) -> str:
    mean, half, _ = t
    return f'{mean:.{digits}f}' if not np.isfinite(half) else f'{mean:.{digits}f} ± {half:.{digits}f}'

#----------------------------------------------------------------------------

def markdown(summary: list) -> str:
    """Per settings group and benchmark: MCC table (models x K) and the paired-difference table."""
    lines = []
    groups = {}
    for e in summary:
        study = tuple((k, e['settings'][k]) for k in STUDY_KEYS)
        data = tuple((k, e['settings'][k]) for k in DATA_KEYS)
        groups.setdefault(study, {}).setdefault((e['benchmark'], data), []).append(e)
    for study, benches in groups.items():
        lines.append('Settings: ' + ', '.join(f'{k}={v}' for k, v in study) + '\n')
        for (bench, data), entries in sorted(benches.items(), key=lambda kv: (_rank(kv[0][0], BENCHMARK_ORDER), str(kv[0][1]))):
            cell = {(e['model'], e['K']): e for e in entries}
            lines.append(f'### {bench} benchmark (' + ', '.join(f'{k}={v}' for k, v in data) + ')\n')
            ks = sorted({k for _, k in cell})
            models = _order({m for m, _ in cell}, MODEL_ORDER)
            head = '| ' + ' | '.join(f'K = {k}' for k in ks) + ' |'
            rule = '|---|' + '---|' * len(ks)
            lines += ['Held-out MCC, mean ± 95% t interval over seeds (seeds run per cell in brackets)\n',
                      '| model ' + head, rule]
            for m in models:
                lines.append(f'| {m} | ' + ' | '.join(f"{_ci(cell[m, k]['mcc'])} ({cell[m, k]['mcc'][2]})" if (m, k) in cell else '–'
                                                     for k in ks) + ' |')
            obs = {k: e['mcc_observed'] for (m, k), e in cell.items()}
            lines.append('| MCC of x itself | ' + ' | '.join(_ci(obs[k]) for k in ks) + ' |')
            lines += ['', f'Paired difference {REFERENCE} minus model (same seeds, same data), mean ± 95% t interval\n',
                      '| model ' + head, rule]
            for m in models:
                if m == REFERENCE:
                    continue
                vals = [cell[m, k].get('diff_vs_reference') if (m, k) in cell else None for k in ks]
                lines.append(f'| {m} | ' + ' | '.join(_ci(v) + f' ({v[2]})' if v else '–' for v in vals) + ' |')
            lines += ['', 'Paired gain over reading x: MCC(model) minus MCC of x on the same data, mean ± 95% t interval\n',
                      '| model ' + head, rule]
            for m in models:
                lines.append(f'| {m} | ' + ' | '.join(_ci(cell[m, k]['gain_over_x']) if (m, k) in cell else '–' for k in ks) + ' |')
            lines += ['', 'Held-out negative ELBO per sample (nats; observed data only, no L_s), mean ± 95% t interval\n',
                      '| model ' + head, rule]
            for m in models:
                lines.append(f'| {m} | ' + ' | '.join(_ci(cell[m, k]['heldout_nelbo'], 2) if (m, k) in cell else '–' for k in ks) + ' |')
            lines.append('')
    return '\n'.join(lines)

#----------------------------------------------------------------------------

def draw_figure(summary: list, path: str):
    """Top row: MCC versus K per benchmark with 95% bands and MCC of x as a dashed line. Bottom row
    (ablations): paired difference CG-VAE minus each other model, with bands."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    benches = _order({e['benchmark'] for e in summary}, BENCHMARK_ORDER)
    models = _order({e['model'] for e in summary}, MODEL_ORDER)
    colors = dict(zip(MODEL_ORDER, ['C0', 'C1', 'C2', 'C3', 'C4']))
    fig, axes = plt.subplots(2, len(benches), figsize=(4.4 * len(benches), 6.4), squeeze=False)
    for col, bench in enumerate(benches):
        top, bottom = axes[0, col], axes[1, col]
        for m in models:
            es = sorted((e for e in summary if e['benchmark'] == bench and e['model'] == m), key=lambda e: e['K'])
            if not es:
                continue
            k = np.array([e['K'] for e in es])
            mean, half = (np.array([e['mcc'][i] for e in es]) for i in (0, 1))
            top.plot(k, mean, marker='o', ms=3, color=colors.get(m), label=m)
            top.fill_between(k, mean - np.nan_to_num(half), mean + np.nan_to_num(half), color=colors.get(m), alpha=0.15)
            d = [(e['K'], e['diff_vs_reference']) for e in es if e.get('diff_vs_reference')]
            if d:
                dk = np.array([v[0] for v in d])
                dm, dh = (np.array([v[1][i] for v in d]) for i in (0, 1))
                bottom.plot(dk, dm, marker='o', ms=3, color=colors.get(m), label=f'{REFERENCE} − {m}')
                bottom.fill_between(dk, dm - np.nan_to_num(dh), dm + np.nan_to_num(dh), color=colors.get(m), alpha=0.15)
        obs = sorted({(e['K'], e['mcc_observed'][0]) for e in summary if e['benchmark'] == bench})
        top.plot(*zip(*obs), color='gray', linestyle='--', label='x itself (no model)')
        bottom.axhline(0, color='gray', lw=0.8)
        top.set_title(f'{bench} benchmark')
        top.set_ylim(0.4, 1.0)
        bottom.set_xlabel('number of domains K')
        bottom.set_xticks(sorted({e['K'] for e in summary if e['benchmark'] == bench}))
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel('held-out MCC (95% band)')
    axes[1, 0].set_ylabel(f'paired MCC difference')
    for ax, where in ((axes[0, -1], 'lower right'), (axes[1, -1], 'upper right')):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc=where, fontsize=7)
    fig.tight_layout()
    with dnnlib.util.atomic_write(path) as f:
        fig.savefig(f, dpi=80, format='png')
    plt.close(fig)


def write_report(outdir: str, rows: list) -> str:
    """Write results.md, results_summary.jsonl and mcc_vs_domains.png; returns the Markdown."""
    summary = summarise(rows)
    text = markdown(summary)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'results.md'), 'w') as f:
        f.write(text)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'results_summary.jsonl'), 'w') as f:
        f.write(''.join(json.dumps(e) + '\n' for e in summary))
    draw_figure(summary, os.path.join(outdir, 'mcc_vs_domains.png'))
    return text

#----------------------------------------------------------------------------
