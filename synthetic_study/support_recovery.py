"""Jacobian support recovery: F1 of a decoder's thresholded Jacobian against the true support.

A[i, j] = mean over points of |dxhat_i/dzhat_j| * std(zhat_j) (standardised x, the scaled L1's units);
entry (i, j) is on when A[i, j] >= threshold * max_j A[i, j] (relative to its row, so free of units). The
columns are put in the order of the true latents by the MCC's matching before comparing with S.
"""
import numpy as np

#----------------------------------------------------------------------------

def thresholded_support(jac, z_std, threshold: float = 0.1) -> np.ndarray:
    """jac [B, m, n] and z_std [n] -> boolean [m, n]."""
    a = (np.abs(np.asarray(jac, dtype=np.float64)) * np.asarray(z_std, dtype=np.float64)).mean(0)
    return a >= threshold * a.max(axis=1, keepdims=True)


def support_f1(estimated: np.ndarray, true: np.ndarray, matching) -> float:
    """F1 of estimated[:, cols] against true, where (rows, cols) pairs true latent rows[k] with estimate cols[k]."""
    rows, cols = matching
    order = np.empty(true.shape[1], dtype=np.int64)
    order[np.asarray(rows)] = np.asarray(cols)
    est = estimated[:, order]
    tp = int((est & true).sum())
    return 2 * tp / (int(est.sum()) + int(true.sum()))

#----------------------------------------------------------------------------
