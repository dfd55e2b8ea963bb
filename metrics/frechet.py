"""Distances between two sets of feature vectors: Frechet distance (FID) and kernel distance (KID).

FID: Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium". KID: Binkowski et al. 2018, "Demystifying MMD GANs" (unbiased MMD^2 with the cubic
polynomial kernel, averaged over random subsets, as NVIDIA's StyleGAN2-ADA code computes it).
"""
import numpy as np

#----------------------------------------------------------------------------

def feature_moments(features: np.ndarray):
    """Mean and unbiased covariance (float64) of features [N, D]."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f'need at least 2 feature vectors of shape [N, D], got {x.shape}')
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma

#----------------------------------------------------------------------------

def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))  (Heusel et al. 2017, Eq. 6)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f'feature statistics differ in shape: {mu1.shape} vs {mu2.shape}')
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): same eigenvalues, but symmetric, hence stable.
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_from_features(features1, features2) -> float:
    return frechet_distance(*feature_moments(features1), *feature_moments(features2))

#----------------------------------------------------------------------------

def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets with k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018, Eq. 3)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    m, d = x.shape
    if y.shape != (m, d) or m < 2:
        raise ValueError(f'need two feature sets of equal shape [m >= 2, D], got {x.shape} and {y.shape}')
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    # sum over i != j of k(x_i, x_j) and k(y_i, y_j), divided by m(m-1); cross term over all pairs by m^2.
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(same - 2 * kxy.sum() / (m * m))


def kernel_distance(gen_features, real_features, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID: mean of the unbiased MMD^2 over `num_subsets` random subsets of size m (NVIDIA's protocol)."""
    gen_features = np.asarray(gen_features)
    real_features = np.asarray(real_features)
    m = min(gen_features.shape[0], real_features.shape[0], max_subset_size)
    rnd = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen_features[rnd.choice(gen_features.shape[0], m, replace=False)]
        y = real_features[rnd.choice(real_features.shape[0], m, replace=False)]
        total += polynomial_mmd2_unbiased(x, y)
    return total / num_subsets

#----------------------------------------------------------------------------
