"""Statistics of the synthetic study: t intervals against scipy, pairing by seed, and the report's cells."""
import math

import numpy as np
import pytest
import scipy.stats

from synthetic_study.report import summarise
from synthetic_study.stats import mean_interval, paired_differences

#----------------------------------------------------------------------------

@pytest.mark.parametrize('level', [0.9, 0.95])
def test_mean_interval_matches_scipy(level):
    v = np.random.default_rng(0).normal(0.8, 0.05, size=5)
    mean, half, count = mean_interval(v, level)
    lo, hi = scipy.stats.t.interval(level, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert count == 5 and mean == pytest.approx(v.mean())
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)


def test_mean_interval_single_value_and_errors():
    mean, half, count = mean_interval([0.7])
    assert mean == 0.7 and math.isnan(half) and count == 1
    with pytest.raises(ValueError, match='non-empty'):
        mean_interval([])
    with pytest.raises(ValueError, match='level'):
        mean_interval([1, 2], level=1.5)


def test_paired_differences_use_common_seeds_only():
    assert paired_differences({0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.5, 2: 0.6, 3: 0.1}) == pytest.approx([0.3, 0.1])
    assert paired_differences({0: 0.9}, {1: 0.5}) == []

#----------------------------------------------------------------------------

def _row(model, k, seed, mcc, steps=6000):
    from synthetic_study.cli import SETTING_KEYS
    row = {key: 1 for key in SETTING_KEYS}
    row.update(benchmark='hard', model=model, K=k, seed=seed, steps=steps, mcc_heldout=mcc, mcc_observed=0.6, seconds=1.0)
    return row


def test_summary_pairs_by_seed_and_keeps_settings_apart():
    rng = np.random.default_rng(1)
    base = {s: float(v) for s, v in enumerate(rng.uniform(0.5, 0.9, size=5))}
    gain = {s: float(v) for s, v in enumerate(rng.normal(0.05, 0.01, size=5))}
    rows = [_row('ivae', 2, s, base[s]) for s in range(5)] + [_row('cg_vae', 2, s, base[s] + gain[s]) for s in range(5)]
    rows += [_row('cg_vae', 2, 0, 0.1, steps=10)]  # another setting: its own cell, never pooled
    cells = {(e['model'], e['settings']['steps']): e for e in summarise(rows)}
    paired = cells['ivae', 6000]['diff_vs_reference']
    assert paired == pytest.approx(mean_interval(list(gain.values())))
    unpaired_half = mean_interval(list(base.values()))[1]
    assert paired[1] < unpaired_half / 5  # the pairing removes the between-seed spread of the data
    assert cells['cg_vae', 10]['mcc'][:1] == (0.1,) and cells['cg_vae', 6000]['seeds'] == [0, 1, 2, 3, 4]
    assert cells['ivae', 6000]['gain_over_x'] == pytest.approx(mean_interval([v - 0.6 for v in base.values()]))

#----------------------------------------------------------------------------
