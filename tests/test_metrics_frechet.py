"""FD and KID math against direct reference formulas."""
import numpy as np
import pytest
import scipy.linalg

from metrics import frechet

#----------------------------------------------------------------------------

def _scipy_fd(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize('dim', [1, 5, 32])
def test_frechet_matches_scipy(dim):
    rnd = np.random.RandomState(dim)
    x = rnd.randn(200, dim) @ rnd.randn(dim, dim)
    y = rnd.randn(150, dim) * 1.5 + 0.3
    assert frechet.frechet_distance_from_features(x, y) == pytest.approx(_scipy_fd(x, y), rel=1e-8, abs=1e-8)


def test_frechet_of_set_with_itself_is_zero_and_grows_with_shift():
    x = np.random.RandomState(0).randn(500, 16)
    assert abs(frechet.frechet_distance_from_features(x, x)) < 1e-8
    shifts = [frechet.frechet_distance_from_features(x, x + s) for s in (0.1, 0.5, 1.0)]
    assert shifts == pytest.approx([16 * s ** 2 for s in (0.1, 0.5, 1.0)], rel=1e-8)  # pure mean shift: |d|^2


def test_frechet_rank_deficient_covariance():
    # fewer samples than dimensions: singular covariances must still give a finite, non-negative value
    rnd = np.random.RandomState(1)
    x, y = rnd.randn(10, 40), rnd.randn(12, 40)
    value = frechet.frechet_distance_from_features(x, y)
    assert np.isfinite(value) and value > 0


def test_frechet_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))

#----------------------------------------------------------------------------

def _direct_mmd2(x, y):
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_direct_formula():
    rnd = np.random.RandomState(2)
    x, y = rnd.randn(12, 6), rnd.randn(12, 6) + 0.4
    assert frechet.polynomial_mmd2_unbiased(x, y) == pytest.approx(_direct_mmd2(x, y), rel=1e-10)


def test_kid_single_full_subset_equals_mmd2_and_is_unbiased():
    rnd = np.random.RandomState(3)
    x, y = rnd.randn(30, 8), rnd.randn(30, 8) + 0.5
    # one subset of the full size is a permutation of the sets: exactly the MMD^2 of the sets
    assert frechet.kernel_distance(x, y, num_subsets=1, max_subset_size=1000) == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    # same distribution: the unbiased estimate averages to ~0 (the biased one would be clearly > 0)
    vals = [frechet.polynomial_mmd2_unbiased(rnd.randn(20, 8), rnd.randn(20, 8)) for _ in range(300)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))
    assert min(vals) < 0 < max(vals)


def test_kid_is_seeded_and_grows_with_shift():
    rnd = np.random.RandomState(4)
    x = rnd.randn(300, 8)
    a = frechet.kernel_distance(x, x + 1.0, num_subsets=10, max_subset_size=50, seed=1)
    assert a == frechet.kernel_distance(x, x + 1.0, num_subsets=10, max_subset_size=50, seed=1)
    assert frechet.kernel_distance(x, x + 2.0, num_subsets=10, max_subset_size=50, seed=1) > a > 0.01

#----------------------------------------------------------------------------
