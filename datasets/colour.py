"""Colour helpers of the built-in data sets."""
import numpy as np

#----------------------------------------------------------------------------

def hsv_to_rgb(h: np.ndarray, s: float, v: float) -> np.ndarray:
    """Vectorised HSV -> RGB in [0, 1], shape [n, 3]."""
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s) + 0 * h, v * (1 - s * f), v * (1 - s * (1 - f))
    vv = np.full_like(h, v)
    table = np.stack([np.stack(c, axis=-1) for c in [(vv, t, p), (q, vv, p), (p, vv, t), (p, q, vv), (t, p, vv), (vv, p, q)]])
    return table[i, np.arange(len(h))]

#----------------------------------------------------------------------------
