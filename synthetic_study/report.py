"""Report of a sweep: per-cell summaries over seeds, paired differences of the combined arms against each
single-cause arm, the premise audit, the decision rule of docs/synthetic.md applied to what ran, the figure."""
import json
import os

import numpy as np

import dnnlib
from synthetic_study.grid import GridError, calibrated_alpha
from synthetic_study.premise import outside_premise
from synthetic_study.settings import CALIBRATION, CONFIRM_ALSO_K, CONFIRM_K, CONFIRM_SEEDS, DATA_KEYS, DECISION_K, STUDY_KEYS
from synthetic_study.stats import mean_interval, paired_differences

COMBINED = ('cg_vae', 'ivae_l1')                          # changes and sparsity together (rule a)
SINGLE = ('cg_vae_nosparse', 'ivae', 'sparse_only')       # changes alone, sparsity alone
ARM_ORDER = ('cg_vae', 'ivae_l1', 'cg_vae_constrained', 'cg_vae_nosparse', 'ivae', 'sparse_only', 'beta_vae')
BENCHMARK_ORDER = ('sparse', 'dense', 'dense_first', 'nongauss', 'hard')
METRICS = ('mcc_heldout', 'mcc_heldout_spearman', 'mcc_observed', 'gain_over_x', 'support_f1', 'heldout_nelbo', 'l1_fit',
           'alpha_used', 'best_step', 'seconds')
MIN_GAIN, POSITIVE_MCC = 0.05, 0.9

#----------------------------------------------------------------------------

def _rank(value, preferred) -> int:
    return preferred.index(value) if value in preferred else len(preferred)


def group_of(row: dict) -> tuple:
    """Rows are compared only within one group: the same study and data settings."""
    return tuple((k, row[k]) for k in STUDY_KEYS + DATA_KEYS)


def cells_of(rows: list) -> dict:
    """(group, benchmark, model, K) -> {seed: row}."""
    cells = {}
    for r in rows:
        cells.setdefault((group_of(r), r['benchmark'], r['model'], r['K']), {})[r['seed']] = r
    return cells


def summarise(rows: list) -> list:
    out = []
    for (group, bench, model, k), by_seed in cells_of(rows).items():
        entry = dict(settings=dict(group), benchmark=bench, model=model, K=k, seeds=sorted(by_seed),
                     alpha_rule=next(iter(by_seed.values()))['alpha_rule'])
        for m in METRICS:
            entry[m] = mean_interval([float(r[m]) for r in by_seed.values()])
        out.append(entry)
    return sorted(out, key=lambda e: (str(e['settings']), _rank(e['benchmark'], BENCHMARK_ORDER), _rank(e['model'], ARM_ORDER), e['K']))


def seed_differences(cells: dict, group, bench, a: str, b: str, k: int) -> dict:
    """{seed: MCC of a − MCC of b} on the seeds both ran (empty when a cell is missing)."""
    ca, cb = cells.get((group, bench, a, k)) or {}, cells.get((group, bench, b, k)) or {}
    return {s: ca[s]['mcc_heldout'] - cb[s]['mcc_heldout'] for s in sorted(set(ca) & set(cb))}


def paired(cells: dict, group, bench, a: str, b: str, k: int):
    """Paired MCC difference a - b on the seeds both ran: (mean, 95% half-width, count, SE) or None."""
    d = list(seed_differences(cells, group, bench, a, b, k).values())
    if not d:
        return None
    mean, half, count = mean_interval(d)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float('nan')
    return mean, half, count, se


def combined_gain(cells, group, bench, arm, k):
    """Smallest paired gain of a combined arm over the single-cause arms, and whether each clears the rule
    (mean >= MIN_GAIN and the 95% interval above 0); None when a cell is missing."""
    diffs = [paired(cells, group, bench, arm, s, k) for s in SINGLE]
    if any(d is None for d in diffs):
        return None
    clears = all(d[0] >= MIN_GAIN and d[0] - d[1] > 0 for d in diffs)
    return min(d[0] for d in diffs), clears

#----------------------------------------------------------------------------

def control_groups(cells: dict, group, bench: str = 'dense') -> list:
    """The settings groups holding `bench` that pair with `group` (another benchmark's): each benchmark has its
    own data settings (density, rows, first layer), so they pair on the study settings and the size (n from
    the study, m from the data)."""
    study = group[:len(STUDY_KEYS)]
    return sorted({g for g, b, *_ in cells if b == bench and g[:len(STUDY_KEYS)] == study
                   and dict(g)['m'] == dict(group)['m']}, key=str)


def gain_on_c(cells, group, arm, k):
    """combined_gain on the first C group that ran the cells, or None."""
    found = (combined_gain(cells, g, 'dense', arm, k) for g in control_groups(cells, group))
    return next((x for x in found if x is not None), None)


def positive_control(cells, group, bench) -> tuple:
    """iVAE at K = 40 against the 0.9 bar: ('passed' | 'failed' | 'not run', the text report prints)."""
    pos = cells.get((group, bench, 'ivae', 40))
    if not pos:
        return 'not run', 'not run'
    mcc = float(np.mean([r['mcc_heldout'] for r in pos.values()]))
    status = 'passed' if mcc >= POSITIVE_MCC else 'failed'
    return status, f'{status} (MCC {mcc:.3f} over {len(pos)} seeds)'


def shown_on_a(cells, group) -> list:
    """(arm, K, smallest gain) for each combined arm and decision K where A shows the gain."""
    found = ((arm, k, combined_gain(cells, group, 'sparse', arm, k)) for arm in COMBINED for k in DECISION_K)
    return [(arm, k, g[0]) for arm, k, g in found if g is not None and g[1]]


def decision(rows: list) -> list:
    """The decision rule of docs/synthetic.md on the runs at hand; lines of text, one verdict per settings
    group of A (C is read from the group of the same study settings and size)."""
    cells = cells_of(rows)
    lines = []
    for group in sorted({g for g, bench, *_ in cells if bench == 'sparse'}, key=str):
        n = dict(group)['n']
        control, text = positive_control(cells, group, 'sparse')
        lines.append(f'n = {n}: positive control (iVAE, K = 40, A): {text}')
        c_control = [positive_control(cells, g, 'dense') for g in control_groups(cells, group)]
        c_control = next((c for c in c_control if c[0] != 'not run'), None)
        if c_control:
            lines.append(f'  C\'s own control (iVAE, K = 40, C; qualifies "absent on C" when failed): {c_control[1]}')
        shown = shown_on_a(cells, group)
        missing = [f'{arm} K={k}' for arm in COMBINED for k in DECISION_K if combined_gain(cells, group, 'sparse', arm, k) is None]
        if shown:
            for arm, k, gain in shown:
                large = [combined_gain(cells, group, 'sparse', arm, kk) for kk in (11, 20, 40) if kk >= 2 * n + 1]
                large = [x[0] for x in large if x is not None]
                on_c = gain_on_c(cells, group, arm, k)
                shrinks = 'not run' if not large else ('yes' if max(large) < gain else 'no')
                c_text = 'not run' if on_c is None else ('same gain (refutes)' if on_c[1] else 'absent')
                verdict = ('supported' if shrinks == 'yes' and c_text == 'absent' and control == 'passed' else
                           'refuted' if on_c is not None and on_c[1] else 'not decided')
                lines.append(f'  {arm} at K = {k}: gain {gain:+.3f} over every single-cause arm; shrinks at K >= {2 * n + 1}: {shrinks}; '
                             f'on C: {c_text} -> {verdict}')
        elif not missing:
            lines.append('  no K in 2-4 shows the gain on A under the blind rule -> refuted')
        else:
            lines.append(f'  no K in 2-4 run so far shows the gain on A; not run: {", ".join(missing)} -> not decided')
    return lines


def confirmation(rows: list) -> list:
    """The K = 8 pattern tested on fresh seeds (docs/synthetic.md): the rule's gain test on A at CONFIRM_K
    with CONFIRM_SEEDS alone decides; CONFIRM_ALSO_K on those seeds, and the pooled seeds, are printed beside it."""
    cells = cells_of(rows)
    fresh = {key: {s: r for s, r in by.items() if s in CONFIRM_SEEDS} for key, by in cells.items()}
    fresh = {key: by for key, by in fresh.items() if len(by) == len(CONFIRM_SEEDS)}   # a cell counts when every fresh seed ran
    seeds = f'seeds {CONFIRM_SEEDS[0]}-{CONFIRM_SEEDS[-1]}'
    lines = []
    for group in sorted({g for g, bench, _, k in fresh if bench == 'sparse' and k in (CONFIRM_K, CONFIRM_ALSO_K)}, key=str):
        decisive = [combined_gain(fresh, group, 'sparse', arm, CONFIRM_K) for arm in COMBINED]
        verdict = ('confirmed' if any(g and g[1] for g in decisive) else
                   'not confirmed' if all(g is not None for g in decisive) else 'not decided (cells missing)')
        lines += [f'n = {dict(group)["n"]}, A at K = {CONFIRM_K} on fresh {seeds}: {gain_test_line(fresh, group, "sparse", (CONFIRM_K,))} -> {verdict}',
                  f'  beside it, deciding nothing: {seeds}: {gain_test_line(fresh, group, "sparse", (CONFIRM_ALSO_K,))}; '
                  f'every seed: {gain_test_line(cells, group, "sparse", (CONFIRM_K,))}']
    return lines


def gain_test_line(cells, group, bench, ks=DECISION_K) -> str:
    """The rule's gain test of each combined arm at each K, as one line (for the readings apart from the verdict)."""
    parts = []
    for arm in COMBINED:
        for k in ks:
            g = combined_gain(cells, group, bench, arm, k)
            parts.append(f'{arm} K={k} ' + ('not run' if g is None else f'{g[0]:+.3f}' + (' shows the gain' if g[1] else '')))
    return '; '.join(parts)


def bar_answer(cells, group, bench, a: str, b: str, sign: int = 1) -> tuple:
    """Paired a - b at each decision K against the 0.05 bar, in the direction `sign` (+1: a gain, -1: a cost):
    ('yes', text) if sign * mean >= MIN_GAIN with the 95% interval on that side of 0 at some K, ('not at this
    scale', text) if every K ran and every interval ends short of the bar on that side, else ('undecided', text)."""
    diffs = {k: paired(cells, group, bench, a, b, k) for k in DECISION_K}
    ran = {k: d for k, d in diffs.items() if d is not None}
    text = ', '.join(f'K={k} {d[0]:+.3f} ± {d[1]:.3f}' for k, d in ran.items()) or 'no cell ran'
    if any(sign * d[0] >= MIN_GAIN and sign * d[0] - d[1] > 0 for d in ran.values()):
        return 'yes', text
    if len(ran) == len(DECISION_K) and all(sign * d[0] + d[1] < MIN_GAIN for d in ran.values()):
        return 'not at this scale', text
    return 'undecided' + (f' (not run: {", ".join(f"K={k}" for k in diffs if k not in ran)})' if len(ran) < len(diffs) else ''), text


def flow_prior_answer(cells, group, bench='nongauss') -> str:
    """Does the flow prior beat iVAE + L1 (same rule-(a) penalty)? (docs/synthetic.md, how D is read)."""
    answer, text = bar_answer(cells, group, bench, 'cg_vae', 'ivae_l1')
    return f'cg_vae − ivae_l1: {text} -> {answer}'


def cost_answer(cells, group, bench='hard') -> str:
    """Does the blind alpha cost MCC where the premise fails? Each combined arm against its changes-alone twin;
    'yes' if either costs, 'not at this scale' if both are cleared, else 'undecided' (how B is read)."""
    answers = [(f'{a} − {b}',) + bar_answer(cells, group, bench, a, b, sign=-1)
               for a, b in (('cg_vae', 'cg_vae_nosparse'), ('ivae_l1', 'ivae'))]
    overall = ('yes' if any(x[1] == 'yes' for x in answers) else
               'not at this scale' if all(x[1] == 'not at this scale' for x in answers) else 'undecided')
    return '; '.join(f'{name}: {text} ({answer})' for name, answer, text in answers) + f' -> {overall}'


def apart(rows: list) -> list:
    """D and B, outside the verdict: the gain test and each one's question, one pair of lines per settings group."""
    cells = cells_of(rows)
    lines = []
    for bench, label, question, answer in (('nongauss', 'D (nongauss, outside the verdict)', 'does the flow prior earn its place?', flow_prior_answer),
                                           ('hard', 'B (hard, negative control, outside the verdict)', 'does the blind alpha cost MCC?', cost_answer)):
        for group in sorted({g for g, b, *_ in cells if b == bench}, key=str):
            lines += [f'n = {dict(group)["n"]}, {label}: {gain_test_line(cells, group, bench)}',
                      f'  {question} {answer(cells, group, bench)}']
    return lines

#----------------------------------------------------------------------------

def gain_difference(cells, group_a, group_e, arm: str, single: str, k: int):
    """Per seed, (arm − single) on A minus (arm − single) on E, paired by seed (the two share the latents):
    (mean, 95% half-width, count), or None when a cell is missing."""
    d = paired_differences(seed_differences(cells, group_a, 'sparse', arm, single, k),
                           seed_differences(cells, group_e, 'dense_first', arm, single, k))
    return mean_interval(d) if len(d) > 1 else None


def dense_control_answer(cells, group_a, group_e, arm: str, k: int, gain: float) -> str:
    """E at one (arm, K*) where A shows the gain, read as fixed in docs/synthetic.md."""
    on_e = combined_gain(cells, group_e, 'dense_first', arm, k)
    head = f'{arm} at K = {k}: gain on A {gain:+.3f}, on E '
    if on_e is None:
        return head + 'not run -> not decided'
    if on_e[1]:
        return head + f'{on_e[0]:+.3f}, the gain appears on E -> not tied to sparse mixing (the text withdraws the support)'
    diffs = {s: gain_difference(cells, group_a, group_e, arm, s, k) for s in SINGLE}
    text = ', '.join(f'{s} ' + ('not run' if d is None else f'{d[0]:+.3f} ± {d[1]:.3f}') for s, d in diffs.items())
    answer = ('not decided (cells missing)' if any(d is None for d in diffs.values()) else
              'specific to sparse mixing' if all(d[0] - d[1] > 0 for d in diffs.values()) else 'inconclusive')
    return head + f'{on_e[0]:+.3f} (not shown); A minus E, paired by seed: {text} -> {answer}'


def dense_control(rows: list) -> list:
    """E (dense_first), outside the verdict: its own positive control, the gain test, and at each (arm, K*)
    where A shows the gain, whether the gain appears on E, is specific to sparse mixing, or is inconclusive."""
    cells = cells_of(rows)
    lines = []
    for group in sorted({g for g, b, *_ in cells if b == 'dense_first'}, key=str):
        status, text = positive_control(cells, group, 'dense_first')
        lines += [f'n = {dict(group)["n"]}, E (dense_first, the dense control, outside the verdict): {gain_test_line(cells, group, "dense_first")}',
                  f'  E\'s own positive control (iVAE, K = 40, E): {text}']
        if status != 'passed':
            lines.append('  nothing is read from E until its positive control passes')
            continue
        pairs = [(g, x) for g in control_groups(cells, group, 'sparse') for x in shown_on_a(cells, g)]
        lines += [f'  {dense_control_answer(cells, g, group, arm, k, gain)}' for g, (arm, k, gain) in pairs] or \
                 ['  A shows the gain at no decision K: nothing to compare']
    return lines

#----------------------------------------------------------------------------

def _ci(t, digits=3) -> str:
    mean, half, _ = t[:3]
    return f'{mean:.{digits}f}' if not np.isfinite(half) else f'{mean:.{digits}f} ± {half:.{digits}f}'


def audit_table(audit_rows: list, rows: list) -> str:
    """Per benchmark and K: scaled L1 of the true g, of reading x and of the alpha = 0 fit (cg_vae_nosparse runs),
    mean ± sd over seeds, the data sets outside the premise, and those where reading x is sparser than the
    alpha = 0 fit: the one sign of a failed premise a user has without the truth (the L1 term's minimiser is x)."""
    fit0 = {(r['benchmark'], r['K'], r['seed'], r['n']): r['l1_fit'] for r in rows if r['model'] == 'cg_vae_nosparse'}
    per = {}
    for a in audit_rows:
        per.setdefault((a['benchmark'], a['n'], a['K']), []).append(a)
    lines = ['| benchmark | n | K | data sets | L1 true g | L1 reading x | L1 alpha = 0 fit (runs) | outside the premise | x sparser than the fit (no truth needed) |',
             '|---|---|---|---|---|---|---|---|---|']
    for (b, n, k), items in sorted(per.items(), key=lambda kv: (_rank(kv[0][0], BENCHMARK_ORDER), kv[0][1], kv[0][2])):
        f0 = [fit0.get((b, k, a['seed'], n)) for a in items]
        out = sum(outside_premise(a['l1_true'], a['l1_readx'], f) for a, f in zip(items, f0))
        have = [f for f in f0 if f is not None]
        x_first = sum(a['l1_readx'] < f for a, f in zip(items, f0) if f is not None)
        sd = lambda v: f'{np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2f}'
        lines.append(f'| {b} | {n} | {k} | {len(items)} | {sd([a["l1_true"] for a in items])} | {sd([a["l1_readx"] for a in items])} | '
                     f'{sd(have) + f" ({len(have)})" if have else "not run"} | {out} of {len(items)} | '
                     f'{f"{x_first} of {len(have)}" if have else "not run"} |')
    return '\n'.join(lines) + '\n'


def calibration_table(calibration: list) -> str:
    """Rule (a) per benchmark and arm: validation nELBO minus alpha = 0 of the same arm, mean (paired SE),
    a cross where the rule refuses it, a dash where it did not run (below the alpha taken, calibrate stops),
    and the alpha it takes; an incomplete calibration says so."""
    pairs = sorted({(r['benchmark'], r['model']) for r in calibration},
                   key=lambda p: (_rank(p[0], BENCHMARK_ORDER), _rank(p[1], ARM_ORDER)))
    alphas = sorted(({float(a) for a in CALIBRATION['alphas']} | {float(r['alpha']) for r in calibration}) - {0.0})
    body = []
    for bench, arm in pairs:
        try:
            alpha, table = calibrated_alpha(calibration, bench, arm)
        except GridError as e:
            body.append(f'| {bench}, {arm} | {e} |')
            continue
        cols = [f'{table[a][0]:+.3f} ({table[a][1]:.3f})' + ('' if table[a][2] else ' ✗') if a in table else '–' for a in alphas]
        body.append(f'| {bench}, {arm} | ' + ' | '.join(cols) + f' | {alpha:g} |')
    head = ['| benchmark, arm | ' + ' | '.join(f'{a:g}' for a in alphas) + ' | alpha |', '|---|' + '---|' * (len(alphas) + 1)]
    return '\n'.join(head + body) + '\n'


def markdown(summary: list, rows: list, audit_rows: list, calibration: list = ()) -> str:
    cells = cells_of(rows)
    lines = ['## Decision rule on the runs at hand\n'] + [f'    {x}' for x in decision(rows)] + ['']
    confirm = confirmation(rows)
    if confirm:
        lines += ['## The K = 8 pattern on fresh seeds\n'] + [f'    {x}' for x in confirm] + ['']
    read_apart = apart(rows) + dense_control(rows)
    if read_apart:
        lines += ['## Read apart from the verdict\n'] + [f'    {x}' for x in read_apart] + ['']
    if calibration:
        lines += ['## Blind alpha, rule (a): validation nELBO minus alpha = 0, mean (paired SE); ✗ refused\n',
                  calibration_table(calibration)]
    if audit_rows:
        lines += ['## Premise audit (scaled L1 per sample, mean ± sd over seeds)\n', audit_table(audit_rows, rows)]
    groups = {}
    for e in summary:
        groups.setdefault(tuple(e['settings'].items()), {}).setdefault(e['benchmark'], []).append(e)
    for group, benches in groups.items():
        lines.append('Settings: ' + ', '.join(f'{k}={v}' for k, v in group) + '\n')
        for bench in sorted(benches, key=lambda b: _rank(b, BENCHMARK_ORDER)):
            entries = benches[bench]
            cell = {(e['model'], e['K']): e for e in entries}
            ks = sorted({k for _, k in cell})
            arms = sorted({m for m, _ in cell}, key=lambda m: _rank(m, ARM_ORDER))
            head = '| arm | ' + ' | '.join(f'K = {k}' for k in ks) + ' |'
            rule = '|---|' + '---|' * len(ks)
            lines.append(f'### {bench}\n')
            for metric, title, digits in (('mcc_heldout', 'Held-out MCC (Pearson)', 3), ('mcc_heldout_spearman', 'Held-out MCC (Spearman)', 3),
                                          ('gain_over_x', 'Gain over reading x (best n of m columns: generous)', 3),
                                          ('support_f1', 'Jacobian support F1', 3), ('heldout_nelbo', 'Held-out nELBO (nats)', 2),
                                          ('alpha_used', 'alpha used', 3), ('best_step', 'steps to the checkpoint', 0)):
                lines += [f'{title}, mean ± 95% t interval (seeds)\n', head, rule]
                for m in arms:
                    lines.append(f'| {m} | ' + ' | '.join(f'{_ci(cell[m, k][metric], digits)} ({cell[m, k][metric][2]})' if (m, k) in cell else '–'
                                                         for k in ks) + ' |')
                if metric == 'mcc_heldout':
                    lines.append('| reading x | ' + ' | '.join(_ci(next(e for (m, kk), e in cell.items() if kk == k)['mcc_observed']) for k in ks) + ' |')
                lines.append('')
            lines += ['Paired MCC difference combined arm minus single-cause arm: mean ± 95% t interval [SE] (seeds)\n', head, rule]
            for a, s in [(a, s) for a in COMBINED for s in SINGLE] + [('cg_vae', 'ivae_l1')]:   # the last: the flow prior's own effect
                vals = [paired(cells, group, bench, a, s, k) for k in ks]
                lines.append(f'| {a} − {s} | ' + ' | '.join(f'{_ci(v)} [{v[3]:.3f}] ({v[2]})' if v else '–' for v in vals) + ' |')
            lines.append('')
    return '\n'.join(lines)

#----------------------------------------------------------------------------

def draw_figure(summary: list, rows: list, path: str):
    """Top: held-out MCC versus K per benchmark run at several K (95% bands; reading x dashed). Bottom: paired
    difference of each combined arm minus its best single-cause competitor at each K."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cells = cells_of(rows)
    benches = sorted({e['benchmark'] for e in summary}, key=lambda b: _rank(b, BENCHMARK_ORDER))
    curves = [b for b in benches if len({e['K'] for e in summary if e['benchmark'] == b}) > 1]
    benches = curves or benches   # a benchmark run at one K only (a positive control alone) is a table row, not a curve
    fig, axes = plt.subplots(2, len(benches), figsize=(4.4 * len(benches), 6.4), squeeze=False)
    colors = dict(zip(ARM_ORDER, ['C0', 'C1', 'C5', 'C2', 'C3', 'C4', 'C7']))
    for col, bench in enumerate(benches):
        top, bottom = axes[0, col], axes[1, col]
        for m in sorted({e['model'] for e in summary}, key=lambda m: _rank(m, ARM_ORDER)):
            es = sorted((e for e in summary if e['benchmark'] == bench and e['model'] == m), key=lambda e: e['K'])
            if es:
                k = np.array([e['K'] for e in es])
                mean, half = (np.array([e['mcc_heldout'][i] for e in es]) for i in (0, 1))
                top.plot(k, mean, marker='o', ms=3, color=colors.get(m), label=m)
                top.fill_between(k, mean - np.nan_to_num(half), mean + np.nan_to_num(half), color=colors.get(m), alpha=0.15)
        obs = sorted({(e['K'], e['mcc_observed'][0]) for e in summary if e['benchmark'] == bench})
        top.plot(*zip(*obs), color='gray', linestyle='--', label='reading x')
        for a in COMBINED:
            pts = []
            for group, b, m, k in cells:
                if b == bench and m == a:
                    d = [paired(cells, group, bench, a, s, k) for s in SINGLE]
                    if all(d):
                        worst = min(d, key=lambda v: v[0])
                        pts.append((k, worst[0], worst[1]))
            if pts:
                k, dm, dh = (np.array(v) for v in zip(*sorted(pts)))
                bottom.plot(k, dm, marker='o', ms=3, color=colors[a], label=f'{a} − best single')
                bottom.fill_between(k, dm - np.nan_to_num(dh), dm + np.nan_to_num(dh), color=colors[a], alpha=0.15)
        bottom.axhline(0, color='gray', lw=0.8)
        bottom.axhline(MIN_GAIN, color='gray', lw=0.8, linestyle=':')
        top.set_title(f'{bench}')
        ks = sorted({e['K'] for e in summary if e['benchmark'] == bench})
        for ax in (top, bottom):
            ax.set_xscale('log')
            ax.set_xticks(ks, [str(k) for k in ks])   # the K that ran, as plain numbers
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        bottom.set_xlabel('number of domains K')
        if bottom.get_legend_handles_labels()[0]:
            bottom.legend(fontsize=7)
    axes[0, 0].set_ylabel('held-out MCC (95% band)')
    axes[1, 0].set_ylabel('paired MCC difference')
    handles = {}                                       # every arm of any panel, in the last panel's legend
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        axes[0, -1].legend(list(handles.values()), list(handles), fontsize=7)
    fig.tight_layout()
    with dnnlib.util.atomic_write(path) as f:
        fig.savefig(f, dpi=80, format='png')
    plt.close(fig)


def write_report(outdir: str, rows: list, audit_rows: list, calibration: list = ()) -> str:
    """Write results.md, summary.jsonl and mcc_vs_domains.png; returns the Markdown."""
    summary = summarise(rows)
    text = markdown(summary, rows, audit_rows, calibration)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'results.md'), 'w') as f:
        f.write(text)
    with dnnlib.util.atomic_write(os.path.join(outdir, 'summary.jsonl'), 'w') as f:
        f.write(''.join(json.dumps(e) + '\n' for e in summary))
    draw_figure(summary, rows, os.path.join(outdir, 'mcc_vs_domains.png'))
    return text

#----------------------------------------------------------------------------
