"""Inception Score (Salimans et al. 2016, NVIDIA's is50k): exp(E_x KL(p(y|x) || p(y))) over 10 splits, mean and std."""
import numpy as np
from scipy.special import xlogy

#----------------------------------------------------------------------------

def inception_score(probs, num_splits: int = 10):
    """(mean, std) of the score over `num_splits` consecutive parts of the class probabilities [N, classes]."""
    probs = np.asarray(probs, dtype=np.float64)
    n = len(probs)
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, marginal)).sum(axis=1).mean()   # 0 log 0 = 0
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))

#----------------------------------------------------------------------------
