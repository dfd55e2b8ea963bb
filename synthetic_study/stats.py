"""Statistics over seeds: mean with a Student-t interval, and paired per-seed differences between models."""
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
