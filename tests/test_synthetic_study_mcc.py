"""MCC: invariances (permutation, sign, monotone maps) and independence."""
import numpy as np
import pytest
import torch

from synthetic_study.mcc import correlation_matrix, mean_corr_coef

#----------------------------------------------------------------------------

def test_permuted_sign_flipped_affine_is_one():
    rng = np.random.default_rng(0)
    z = rng.standard_normal([2000, 5])
    est = -3.0 * z[:, [2, 0, 4, 1, 3]] + 7.0
    mcc, (rows, cols) = mean_corr_coef(z, est, return_matching=True)
    assert mcc == pytest.approx(1.0, abs=1e-9)
    assert list(cols) == [1, 3, 0, 4, 2]


def test_monotone_transform_spearman_is_one():
    rng = np.random.default_rng(1)
    z = rng.standard_normal([2000, 4])
    est = np.stack([np.exp(z[:, 3]), -z[:, 0] ** 3, np.tanh(z[:, 1]), -np.arctan(2 * z[:, 2])], axis=1)
    assert mean_corr_coef(z, est, method='spearman') == pytest.approx(1.0, abs=1e-9)
    assert 0.7 < mean_corr_coef(z, est, method='pearson') < 0.999  # Pearson only affine-invariant


def test_independent_noise_is_near_zero():
    rng = np.random.default_rng(2)
    z, noise = rng.standard_normal([5000, 5]), rng.standard_normal([5000, 5])
    assert mean_corr_coef(z, noise) < 0.05
    assert mean_corr_coef(z, noise, method='spearman') < 0.05


def test_matches_naive_reference_and_accepts_tensors():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal([300, 3]), rng.standard_normal([300, 3])
    b[:, 0] += a[:, 1]
    ref = np.abs(np.corrcoef(a.T, b.T)[:3, 3:])
    assert np.allclose(correlation_matrix(torch.tensor(a), torch.tensor(b)), ref)
    best = max(np.mean([ref[i, p[i]] for i in range(3)]) for p in __import__('itertools').permutations(range(3)))
    assert mean_corr_coef(a, b) == pytest.approx(best)


def test_errors():
    with pytest.raises(ValueError, match='same number'):
        mean_corr_coef(np.zeros([10, 2]), np.zeros([9, 2]))
    with pytest.raises(ValueError, match='pearson'):
        mean_corr_coef(np.zeros([10, 2]), np.zeros([10, 2]), method='kendall')

#----------------------------------------------------------------------------
