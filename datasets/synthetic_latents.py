"""Synthetic latent-variable data for the identifiability study (CG-VAE vs iVAE vs beta-VAE).

z | u ~ N(mu_u, diag sigma_u^2) with per-domain, per-component means and scales (iVAE's recipe), and
x = g(z) with g an invertible leaky-ReLU MLP from n latents to m >= n observed dims. The mixing is
either dense or has a random sparse Jacobian support S (m x n) at a chosen density: the first layer is
masked by S and every later m x m layer by M[i, j] = 1[S[j] is a subset of S[i]], which contains the
identity (so it stays invertible) and keeps the boolean product of all masks equal to S.
"""
import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

def make_support(n: int, m: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """Random boolean support (m x n), round(density*m*n) entries, a matching and no empty row."""
    if not 0 < density <= 1:
        raise ValueError(f'density must be in (0, 1], got {density}')
    support = np.zeros([m, n], dtype=bool)
    rows = rng.permutation(m)[:n]
    support[rows, np.arange(n)] = True  # injective matching: column j drives row rows[j]
    for i in np.flatnonzero(~support.any(axis=1)):
        support[i, rng.integers(n)] = True  # every observed dim depends on some latent
    target = max(int(round(density * m * n)), int(support.sum()))
    free = np.flatnonzero(~support.ravel())
    extra = rng.choice(free, size=target - int(support.sum()), replace=False)
    support.ravel()[extra] = True
    return support


def layer_masks(support: np.ndarray, num_layers: int) -> list:
    """Masks for each layer whose boolean product is exactly `support` (first mask = support)."""
    rows = support.astype(np.int64)
    subset = (rows[:, None, :] >= rows[None, :, :]).all(axis=2)  # subset[i, j] = S[j] is a subset of S[i]
    return [support.copy()] + [subset.copy() for _ in range(num_layers - 1)]


def boolean_product(masks: list) -> np.ndarray:
    """Support of the Jacobian of the composition: M_L ... M_2 M_1 over booleans."""
    out = masks[0].astype(np.int64)
    for mask in masks[1:]:
        out = (mask.astype(np.int64) @ out) > 0
    return out.astype(bool)

#----------------------------------------------------------------------------

def well_conditioned_weight(mask: np.ndarray, max_cond: float, rng: np.random.Generator, tries: int = 200) -> np.ndarray:
    """Best conditioned of `tries` Gaussian weights with the given support, scaled to spectral norm 1."""
    best, best_cond = None, np.inf
    for _ in range(tries):
        w = rng.standard_normal(mask.shape) * mask
        s = np.linalg.svd(w, compute_uv=False)
        cond = s[0] / s[-1] if s[-1] > 0 else np.inf
        if cond < best_cond:
            best, best_cond = w / s[0], cond
    if best_cond > max_cond:
        raise RuntimeError(f'no weight with condition number <= {max_cond} found for a {mask.shape} mask; raise max_cond')
    return best


class MixingMLP(torch.nn.Module):
    """Invertible leaky-ReLU MLP x = g(z), R^n -> R^m, with fixed (non-trainable) masked weights."""

    def __init__(self, weights: list, biases: list, slope: float = 0.2):
        super().__init__()
        self.slope = slope
        for idx, (w, b) in enumerate(zip(weights, biases)):
            self.register_buffer(f'w{idx}', torch.as_tensor(w, dtype=torch.float32))
            self.register_buffer(f'b{idx}', torch.as_tensor(b, dtype=torch.float32))
        self.num_layers = len(weights)

    def forward(self, z):
        h = z
        for idx in range(self.num_layers):
            h = h @ getattr(self, f'w{idx}').T + getattr(self, f'b{idx}')
            if idx < self.num_layers - 1:
                h = torch.nn.functional.leaky_relu(h, self.slope)
        return h

    def inverse(self, x):
        """z = g^-1(x) for x in the range of g (least squares on the injective first layer)."""
        h = x
        for idx in reversed(range(self.num_layers)):
            if idx < self.num_layers - 1:
                h = torch.where(h >= 0, h, h / self.slope)
            w = getattr(self, f'w{idx}').double()
            h = torch.linalg.lstsq(w, (h.double() - getattr(self, f'b{idx}').double()).T).solution.T
        return h.to(x.dtype)

#----------------------------------------------------------------------------

def make_synthetic_dataset(
    n:               int   = 5,      # Number of latents.
    m:               int   = None,   # Observed dims (>= n); None = n.
    num_domains:     int   = 40,     # K, number of domains u.
    samples:         int   = 1000,   # Samples per domain (train + held-out).
    heldout:         float = 0.2,    # Held-out fraction per domain.
    density:         float = 1.0,    # Jacobian support density of the mixing; 1.0 = dense.
    num_layers:      int   = 2,      # Layers of the mixing MLP (2 = one leaky-ReLU nonlinearity).
    mean_mode:       str   = 'uniform', # 'uniform': mu ~ U(-5, 5); 'zero': centred.
    scale_range:     tuple = (0.5, 3.0),  # sigma ~ U(lo, hi), per domain and component.
    max_cond:        float = 5.0,    # Largest condition number accepted for a mixing layer.
    seed:            int   = 0,
) -> dnnlib.EasyDict:
    """Draw a dataset; returns EasyDict(z_*, u_*, x_* for train/test, mu, sigma, support, mixing)."""
    m = n if m is None else m
    if m < n:
        raise ValueError(f'observed dims m={m} must be >= latents n={n}')
    if num_domains < 1 or samples < 2 or not 0 < heldout < 1:
        raise ValueError('need num_domains >= 1, samples >= 2 and 0 < heldout < 1')
    if mean_mode not in ('uniform', 'zero'):
        raise ValueError(f'mean_mode must be "uniform" or "zero", got "{mean_mode}"')
    rng = np.random.default_rng([seed, 0])  # latents and split
    mix_rng = np.random.default_rng([seed, 1])  # mixing: the same g for every K at a given seed
    mu = rng.uniform(-5, 5, size=[num_domains, n]) if mean_mode == 'uniform' else np.zeros([num_domains, n])
    sigma = rng.uniform(scale_range[0], scale_range[1], size=[num_domains, n])
    u = np.repeat(np.arange(num_domains), samples)
    z = mu[u] + sigma[u] * rng.standard_normal([num_domains * samples, n])  # z | u ~ N(mu_u, sigma_u^2)

    support = make_support(n, m, density, mix_rng)
    masks = layer_masks(support, num_layers)
    weights = [well_conditioned_weight(mask, max_cond, mix_rng) for mask in masks]
    biases = [np.zeros(mask.shape[0]) for mask in masks]
    mixing = MixingMLP(weights, biases).eval()
    with torch.no_grad():
        x = mixing(torch.as_tensor(z, dtype=torch.float32))

    n_test = max(1, int(round(heldout * samples)))
    is_test = np.zeros([num_domains, samples], dtype=bool)
    for k in range(num_domains):
        is_test[k, rng.permutation(samples)[:n_test]] = True
    is_test = torch.as_tensor(is_test.ravel())
    z = torch.as_tensor(z, dtype=torch.float32)
    u = torch.as_tensor(u, dtype=torch.int64)
    return dnnlib.EasyDict(
        z_train=z[~is_test], u_train=u[~is_test], x_train=x[~is_test],
        z_test=z[is_test], u_test=u[is_test], x_test=x[is_test],
        mu=mu, sigma=sigma, support=support, masks=masks, mixing=mixing,
        n=n, m=m, num_domains=num_domains, density=float(support.mean()))

#----------------------------------------------------------------------------
