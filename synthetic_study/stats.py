"""Statistics over seeds: mean with a Student-t interval, paired per-seed differences, the blind alpha rule."""
import math

import numpy as np
import scipy.stats

#----------------------------------------------------------------------------

def mean_interval(values, level: float = 0.95) -> tuple:
    """(mean, half-width of the two-sided t interval, count); the half-width is nan with fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f'need a non-empty 1-d list of values, got shape {v.shape}')
    if not 0 < level < 1:
        raise ValueError(f'level must be in (0, 1), got {level}')
    if len(v) < 2:
        return float(v.mean()), math.nan, 1
    half = scipy.stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half), len(v)


def paired_differences(a: dict, b: dict) -> list:
    """Per-seed differences a[s] - b[s] over the seeds both dicts hold, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]

#----------------------------------------------------------------------------

def blind_alpha(val_nelbo: dict, floor: float = 0.05, num_se: float = 2.0) -> tuple:
    """Rule (a): the largest alpha whose validation nELBO is within max(floor, num_se paired SE) of alpha = 0.

    val_nelbo maps alpha -> {seed: validation nELBO} for one model; returns (alpha, {alpha: (mean
    difference to alpha = 0, its SE, accepted)}). Sees no ground truth."""
    if 0.0 not in val_nelbo:
        raise ValueError('the alpha grid must hold alpha = 0, the reference')
    table = {}
    for alpha in sorted(val_nelbo):
        d = np.asarray(paired_differences(val_nelbo[alpha], val_nelbo[0.0]), dtype=np.float64)
        if len(d) == 0:
            raise ValueError(f'alpha = {alpha} shares no seed with alpha = 0')
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        table[alpha] = (float(d.mean()), se, bool(d.mean() <= max(floor, num_se * np.nan_to_num(se))))
    return max((a for a, t in table.items() if t[2]), default=None), table   # None: only a non-finite alpha = 0 accepts nothing

#----------------------------------------------------------------------------
