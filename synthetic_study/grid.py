"""The study grid on disk: results files, the resume key, the alpha each arm runs with, the order of the
cells and the estimate of the time they need."""
import glob
import json
import os

import numpy as np

from synthetic_study.models import ARMS
from synthetic_study.settings import CALIBRATION, DATA_KEYS, GRID_AXES, SETTING_KEYS, STUDY_KEYS, run_key, with_added_keys
from synthetic_study.stats import blind_alpha

REQUIRED = GRID_AXES + SETTING_KEYS + ('mcc_heldout', 'mcc_observed', 'val_nelbo')
MAX_LINES = 10**6

#----------------------------------------------------------------------------

class GridError(Exception):
    """One sentence for the user."""


def read_lines(path: str) -> list:
    """Rows of one results file; a line that is not a JSON object with every setting is an error."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path) as f:
        for num, line in enumerate(f, 1):
            if num > MAX_LINES:
                raise GridError(f'{path} has more than {MAX_LINES} lines')
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise GridError(f'line {num} of {path} is not JSON') from None
            if isinstance(row, dict):
                with_added_keys(row)
            missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
            if missing:
                raise GridError(f'line {num} of {path} lacks "{missing[0]}"; it was not written by this version of synthetic.py')
            rows.append(row)
    return rows


def results_path(outdir: str, shard: tuple, tag: str = None) -> str:
    """The file one sweep process writes: results-TAG.jsonl, results-I-of-N.jsonl for a shard, else results.jsonl."""
    index, count = shard
    name = f'results-{tag}' if tag else 'results' if count == 1 else f'results-{index}-of-{count}'
    return os.path.join(outdir, name + '.jsonl')


def read_results(outdir: str) -> list:
    """Rows of every results*.jsonl in outdir (one file per sweep process)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(outdir, 'results*.jsonl'))):
        rows += read_lines(path)
    return rows

#----------------------------------------------------------------------------

def conflicting_setting(row: dict, study: dict, data_kwargs: dict):
    """First (name, value in row, value asked) where a stored run differs from this sweep's settings, else None."""
    asked = dict(study, **data_kwargs.get(row['benchmark'], {}))
    for k in STUDY_KEYS + DATA_KEYS:
        if k in asked and row[k] != asked[k]:
            return k, row[k], asked[k]
    return None


def check_folder(rows: list, study: dict, data_kwargs: dict, where: str):
    for row in rows:
        clash = conflicting_setting(row, study, data_kwargs)
        if clash:
            raise GridError(f'{where} holds runs with {clash[0]}={clash[1]!r}, this command asks {clash[0]}={clash[2]!r}; '
                            f'use another --outdir (runs with different settings are never merged)')


def _val_nelbo(calibration: list, benchmark: str, arm: str) -> dict:
    val = {}
    for r in calibration:
        if r['benchmark'] == benchmark and r['model'] == arm:
            val.setdefault(float(r['alpha']), {})[r['seed']] = r['val_nelbo']
    return val


def alpha_accepted(calibration: list, benchmark: str, arm: str, alpha: float) -> bool:
    """Whether rule (a) accepts this alpha against alpha = 0 (both must have run)."""
    val = _val_nelbo(calibration, benchmark, arm)
    return blind_alpha({0.0: val[0.0], alpha: val[alpha]})[1][alpha][2]


def calibrated_alpha(calibration: list, benchmark: str, arm: str) -> tuple:
    """Rule (a) on the calibration rows of one benchmark and arm: (alpha, table); GridError if there are none.

    The rule takes the largest accepted alpha, so the alphas are read from the largest down and the first
    accepted one decides: the alphas below it need not have run (calibrate stops there). An alpha above it
    that has not run leaves the calibration incomplete (a killed calibration must not choose from part of it)."""
    val = _val_nelbo(calibration, benchmark, arm)
    if not val:
        raise GridError(f'no calibration of {arm} on {benchmark}: run "synthetic.py calibrate --benchmark={benchmark}" '
                        f'into this --outdir first, or give --alpha')
    try:
        _, table = blind_alpha(val)
    except ValueError as e:
        raise GridError(f'the calibration of {arm} on {benchmark} is incomplete: {e}') from None
    for a in sorted(set(CALIBRATION['alphas']) | set(table), reverse=True):
        if a not in table:
            raise GridError(f'the calibration of {arm} on {benchmark} is incomplete (alpha {a} not run): rerun "synthetic.py calibrate"')
        if table[a][2]:
            return a, table
    raise GridError(f'the calibration of {arm} on {benchmark} has no finite validation nELBO at alpha = 0')


def arm_alpha(arm: str, benchmark: str, alpha, calibration: list) -> dict:
    """alpha_rule and alpha of one arm: 'none' 0, 'constrained' None, 'fixed' --alpha, or 'blind' (rule a)."""
    rule = ARMS[arm]['rule']
    if rule == 'none':
        return dict(alpha_rule='none', alpha=0.0)
    if rule == 'constrained':
        return dict(alpha_rule='constrained', alpha=None)
    if alpha is not None:
        return dict(alpha_rule='fixed', alpha=float(alpha))
    return dict(alpha_rule='blind', alpha=calibrated_alpha(calibration, benchmark, arm)[0])

#----------------------------------------------------------------------------

def todo_cells(stages, rows: list, study: dict, data_kwargs: dict, alphas: dict, ensemble: int, shard=(0, 1)) -> list:
    """Cells not yet run, in stage order: (stage, benchmark, K, arm, seeds), at most `ensemble` seeds each.

    shard (i, n) keeps the (stage, benchmark, K, arm) groups whose position in the whole grid is i mod n. The
    position counts done groups too, so shards started at different times (or one restarted after a kill,
    when more is done) never pick the same group and together leave none out."""
    done = {run_key(r) for r in rows}
    out = []
    position = -1
    for stage, bench, ks, arms, seeds in stages:
        for k in ks:
            for arm in arms:
                position += 1
                if position % shard[1] != shard[0]:
                    continue
                a = alphas[bench, arm]
                left = [s for s in seeds if run_key(dict(benchmark=bench, model=arm, K=k, seed=s, **study, **data_kwargs[bench], **a)) not in done]
                out += [(stage, bench, k, arm, left[i:i + ensemble]) for i in range(0, len(left), ensemble)]
    return out


def seconds_per_run(rows: list, max_steps: int) -> dict:
    """Estimated seconds per run per arm: the mean seconds per step of the rows at hand (ensemble wall time /
    members / steps) times the mean steps of the rows that ran under this max_steps, or max_steps itself
    (an upper bound) when none did."""
    per_step, steps = {}, {}
    largest = {}
    for r in rows:  # the per-step cost of the largest ensembles at hand (sweeps train 10 seeds together)
        largest[r['model']] = max(largest.get(r['model'], 0), r.get('ensemble', 1))
    for r in rows:
        if r.get('ensemble', 1) == largest[r['model']]:
            per_step.setdefault(r['model'], []).append(r['seconds'] / max(r['stop_step'], 1))
        if r['max_steps'] == max_steps:
            steps.setdefault(r['model'], []).append(r['stop_step'])
    return {arm: float(np.mean(v)) * float(np.mean(steps.get(arm, [max_steps]))) for arm, v in per_step.items()}


def plan_lines(cells: list, timing: dict, processes: int) -> list:
    """Per stage: runs to do and estimated hours at the measured seconds per run (K-independent estimate)."""
    lines, total, unknown = [], 0.0, set()
    stages = {}
    for stage, bench, k, arm, seeds in cells:
        entry = stages.setdefault(stage, [0, 0.0])
        entry[0] += len(seeds)
        if arm in timing:
            entry[1] += len(seeds) * timing[arm]
        else:
            unknown.add(arm)
    for stage, (runs, secs) in stages.items():
        lines.append(f'  {stage}: {runs} runs, {secs / 3600:.1f} h')
        total += secs
    lines.append(f'{sum(v[0] for v in stages.values())} runs to do: about {total / 3600:.1f} h on one core, '
                 f'{total / 3600 / processes:.1f} h with {processes} processes'
                 + (f' (no timing yet for {", ".join(sorted(unknown))}: not counted)' if unknown else ''))
    return lines

#----------------------------------------------------------------------------
