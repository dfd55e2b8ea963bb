"""Synthetic latent-variable data: z | u ~ N(mu_u, diag sigma_u^2), x = g(z), three named benchmarks.

mu ~ U(-5, 5) (or 0) and sigma ~ U(0.5, 3) per domain and component (iVAE's recipe); g is an invertible
leaky-ReLU MLP from n latents to m >= n observed dims with a known Jacobian support S (m x n): the first
layer is masked by S and every later m x m layer by M[i, j] = 1[S[j] is a subset of S[i]], which holds the
identity (so it stays invertible) and keeps the boolean product of all masks equal to S.

Benchmarks (BENCHMARKS): `easy` (m = n, density 0.4: most observed dims are dominated by one latent, so
reading x scores MCC about 0.85), `hard` (m = 2n, density 0.5, every observed dim mixes >= 2 latents, the
latents are standardised before mixing so that none dominates by its scale: MCC of x <= 0.7) and `dense`.
"""
import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

BENCHMARKS = {
    'easy':  dict(m_per_n=1, density=0.4, min_row=1, standardise=False, max_cond=5.0,  min_weight=0.25),
    'hard':  dict(m_per_n=1, density=0.6, min_row=3, standardise=True,  max_cond=10.0, min_weight=0.8),
    'dense': dict(m_per_n=1, density=1.0, min_row=1, standardise=False, max_cond=5.0,  min_weight=0.25),
}


def benchmark_settings(name: str, n: int) -> dnnlib.EasyDict:
    """Keyword arguments of make_synthetic_dataset (m, density, min_row, standardise, max_cond) for n latents."""
    if name not in BENCHMARKS:
        raise ValueError(f'unknown benchmark "{name}"; choose from {", ".join(BENCHMARKS)}')
    b = dict(BENCHMARKS[name])
    return dnnlib.EasyDict(m=b.pop('m_per_n') * n, **b)

#----------------------------------------------------------------------------

def is_structurally_sparse(support: np.ndarray) -> bool:
    """For every latent j, the rows that depend on j share no other latent (the sparsity condition)."""
    for j in range(support.shape[1]):
        rows = support[support[:, j]]
        if len(rows) == 0 or rows.all(axis=0).sum() != 1:
            return False
    return True


def make_support(n: int, m: int, density: float, rng: np.random.Generator, min_row: int = 1, tries: int = 1000) -> np.ndarray:
    """Random boolean support (m x n): round(density*m*n) entries, a matching, >= min_row entries per row.

    With min_row >= 2 the support is redrawn (up to `tries` times) until it is structurally sparse and
    its rows are distinct.
    """
    if not 0 < density <= 1:
        raise ValueError(f'density must be in (0, 1], got {density}')
    if not 1 <= min_row <= n or m < n:
        raise ValueError(f'need 1 <= min_row <= n and m >= n, got min_row={min_row}, n={n}, m={m}')
    for _ in range(tries):
        support = np.zeros([m, n], dtype=bool)
        support[rng.permutation(m)[:n], np.arange(n)] = True  # injective matching: column j drives one row
        for i in range(m):
            need = min_row - int(support[i].sum())
            if need > 0:
                support[i, rng.choice(np.flatnonzero(~support[i]), size=need, replace=False)] = True
        target = max(int(round(density * m * n)), int(support.sum()))
        free = np.flatnonzero(~support.ravel())
        support.ravel()[rng.choice(free, size=target - int(support.sum()), replace=False)] = True
        distinct = len(np.unique(support, axis=0)) == m  # equal rows would make a later layer near singular
        if min_row == 1 or density == 1 or (distinct and is_structurally_sparse(support)):
            return support
    raise RuntimeError(f'no structurally sparse {m} x {n} support at density {density} in {tries} draws')


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

def well_conditioned_weight(mask: np.ndarray, max_cond: float, rng: np.random.Generator, min_weight: float = 0.25,
                            tries: int = 1000) -> np.ndarray:
    """Best conditioned of `tries` weights with the given support, scaled to spectral norm 1.

    Entries are +-U(min_weight, 1): none is close to zero, so the numerical support is the stated one.
    """
    best, best_cond = None, np.inf
    for _ in range(tries):
        w = rng.choice([-1.0, 1.0], size=mask.shape) * rng.uniform(min_weight, 1.0, size=mask.shape) * mask
        s = np.linalg.svd(w, compute_uv=False)
        cond = s[0] / s[-1] if s[-1] > 0 else np.inf
        if cond < best_cond:
            best, best_cond = w / s[0], cond
    if best_cond > max_cond:
        raise RuntimeError(f'no weight with condition number <= {max_cond} found for a {mask.shape} mask; raise max_cond')
    return best


class MixingMLP(torch.nn.Module):
    """Invertible leaky-ReLU MLP x = g(z), R^n -> R^m, with fixed (non-trainable) masked weights.

    The input is first standardised component-wise, (z - shift) / scale (identity by default).
    """

    def __init__(self, weights: list, biases: list, slope: float = 0.2, shift=None, scale=None):
        super().__init__()
        self.slope = slope
        n = np.shape(weights[0])[1]
        self.register_buffer('shift', torch.zeros(n) if shift is None else torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer('scale', torch.ones(n) if scale is None else torch.as_tensor(scale, dtype=torch.float32))
        for idx, (w, b) in enumerate(zip(weights, biases)):
            self.register_buffer(f'w{idx}', torch.as_tensor(w, dtype=torch.float32))
            self.register_buffer(f'b{idx}', torch.as_tensor(b, dtype=torch.float32))
        self.num_layers = len(weights)

    def forward(self, z):
        h = (z - self.shift) / self.scale
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
        return (h * self.scale.double() + self.shift.double()).to(x.dtype)

#----------------------------------------------------------------------------

def make_synthetic_dataset(
    n:               int   = 5,      # Number of latents.
    m:               int   = None,   # Observed dims (>= n); None = n.
    num_domains:     int   = 40,     # K, number of domains u.
    samples:         int   = 1000,   # Samples per domain (train + held-out).
    heldout:         float = 0.2,    # Held-out fraction per domain.
    density:         float = 1.0,    # Jacobian support density of the mixing; 1.0 = dense.
    min_row:         int   = 1,      # Fewest latents each observed dim depends on.
    standardise:     bool  = False,  # Feed g with latents standardised by their population mean and std.
    num_layers:      int   = 2,      # Layers of the mixing MLP (2 = one leaky-ReLU nonlinearity).
    mean_mode:       str   = 'uniform', # 'uniform': mu ~ U(-5, 5); 'zero': centred.
    scale_range:     tuple = (0.5, 3.0),  # sigma ~ U(lo, hi), per domain and component.
    max_cond:        float = 5.0,    # Largest condition number accepted for a mixing layer.
    min_weight:      float = 0.25,   # Mixing weights are +-U(min_weight, 1) on the support.
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

    support = make_support(n, m, density, mix_rng, min_row=min_row)
    masks = layer_masks(support, num_layers)
    weights = [well_conditioned_weight(mask, max_cond, mix_rng, min_weight) for mask in masks]
    biases = [np.zeros(mask.shape[0]) for mask in masks]
    shift = scale = None
    if standardise:  # mean and std of the mixture of the K domain Gaussians, per component
        shift = mu.mean(0)
        scale = np.sqrt((sigma ** 2 + mu ** 2).mean(0) - shift ** 2)
    mixing = MixingMLP(weights, biases, shift=shift, scale=scale).eval()
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
