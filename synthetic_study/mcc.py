"""Mean correlation coefficient (MCC) between true and estimated latents, up to permutation.

MCC = mean over matched pairs of |corr(z_i, zhat_pi(i))|, with the permutation pi found by the
Hungarian algorithm on the absolute correlation matrix (iVAE, Khemakhem et al. 2020).
Pearson measures recovery up to affine maps; Spearman up to element-wise monotone maps.
"""
import numpy as np
import scipy.optimize
import scipy.stats

#----------------------------------------------------------------------------

def _as_numpy(a) -> np.ndarray:
    if hasattr(a, 'detach'):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f'expected a [samples, dims] array, got shape {a.shape}')
    return a


def correlation_matrix(z_true, z_est, method: str = 'pearson') -> np.ndarray:
    """Absolute correlations C[i, j] = |corr(z_true[:, i], z_est[:, j])|, shape [n_true, n_est]."""
    a, b = _as_numpy(z_true), _as_numpy(z_est)
    if a.shape[0] != b.shape[0] or a.shape[0] < 2:
        raise ValueError(f'need the same number (>= 2) of samples, got {a.shape[0]} and {b.shape[0]}')
    if method == 'spearman':
        a, b = scipy.stats.rankdata(a, axis=0), scipy.stats.rankdata(b, axis=0)
    elif method != 'pearson':
        raise ValueError(f'method must be "pearson" or "spearman", got "{method}"')
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    c = (a.T @ b) / np.maximum(np.outer(na, nb), 1e-300)  # constant columns give correlation 0
    return np.abs(c)


def mean_corr_coef(z_true, z_est, method: str = 'pearson', return_matching: bool = False):
    """MCC in [0, 1]; with return_matching also (rows, cols) of the Hungarian matching."""
    c = correlation_matrix(z_true, z_est, method)
    rows, cols = scipy.optimize.linear_sum_assignment(-c)
    mcc = float(c[rows, cols].mean())
    return (mcc, (rows, cols)) if return_matching else mcc

#----------------------------------------------------------------------------
