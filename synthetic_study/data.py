"""Synthetic latent-variable data: z | u with per-domain location and scale, x = g(z), named benchmarks.

mu ~ U(-5, 5) (or 0) and sigma ~ U(0.5, 3) per domain and component (iVAE's recipe); z = mu_u + sigma_u * e
with unit-variance noise e (Gaussian, Laplace, or a two-component Gaussian mixture). g is an invertible
leaky-ReLU MLP from n latents to m >= n observed dims with a known Jacobian support S (m x n): the first
layer is masked by S and every later m x m layer by M[i, j] = 1[S[j] is a subset of S[i]], which holds the
identity (so it stays invertible) and keeps the boolean product of all masks equal to S. When no row of S
is a strict subset of another, every later mask is diagonal and g is post-nonlinear (x_i = f_i(a_i . z)).

Benchmarks (BENCHMARKS; m is given per n, every value can be overridden):
  sparse    (A) m = 2n, 1-3 parents per row (2 on average), structurally sparse, 3 layers, not post-nonlinear
  hard      (B) m = n, 3 balanced parents per row, 2 layers, post-nonlinear: the negative control, where
                reading x is the minimiser of the scaled L1 (see premise.py)
  dense     (C) as A but every observed dim depends on every latent
  nongauss  (D) as A with z | u a two-component Gaussian mixture (bimodal), where a flow prior has a use
  dense_first (E) A with the first layer dense: the same z, the same later layers, every observed dim
                depends on every latent; the dense control that differs from A in the support alone
"""
import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

_A = dict(m_per_n=2, row_mean=2.4, min_row=1, max_row=3, singletons=-5, structural=True, standardise=True, layers=3,
          max_cond=10.0, min_weight=0.8, latent='gauss', first_layer='support')
BENCHMARKS = {
    'sparse':   dict(_A),
    'hard':     dict(m_per_n=1, row_mean=None, density=0.6, min_row=3, max_row=None, singletons=None, structural=True, standardise=True,
                     layers=2, max_cond=10.0, min_weight=0.8, latent='gauss', first_layer='support'),
    'dense':    dict(_A, row_mean=None, density=1.0, min_row=1, max_row=None, singletons=None, structural=False, max_cond=30.0),
    'nongauss': dict(_A, latent='mixture'),
    'dense_first': dict(_A, first_layer='dense'),
}
LATENTS = ('gauss', 'laplace', 'mixture')
FIRST_LAYERS = ('support', 'dense')
DATA_OPTIONS = ('m', 'density', 'min_row', 'max_row', 'singletons', 'structural', 'standardise', 'layers', 'max_cond', 'min_weight', 'latent',
                'first_layer')
MAX_M = 512


def benchmark_settings(name: str, n: int, **overrides) -> dnnlib.EasyDict:
    """Keyword arguments of make_synthetic_dataset for n latents; overrides (None = keep) replace any of them."""
    if name not in BENCHMARKS:
        raise ValueError(f'unknown benchmark "{name}"; choose from {", ".join(BENCHMARKS)}')
    b = dict(BENCHMARKS[name])
    row_mean = b.pop('row_mean')
    s = dnnlib.EasyDict(m=b.pop('m_per_n') * n, **b)
    if row_mean is not None:
        s.density = round(row_mean / n, 4)
    s.max_row = n if s.max_row is None else s.max_row
    if s.singletons is not None and s.singletons < 0:  # -d: one single-parent row per d latents, at least one
        s.singletons = max(1, n // -s.singletons)
    s.update({k: v for k, v in overrides.items() if v is not None})
    return s

#----------------------------------------------------------------------------

def is_structurally_sparse(support: np.ndarray) -> bool:
    """For every latent j, the rows that depend on j share no other latent (the sparsity condition)."""
    for j in range(support.shape[1]):
        rows = support[support[:, j]]
        if len(rows) == 0 or rows.all(axis=0).sum() != 1:
            return False
    return True


def check_support(support: np.ndarray):
    """ValueError (one sentence) unless `support` is an m x n boolean matrix, m >= n, no empty row or column."""
    support = np.asarray(support)
    if support.ndim != 2 or support.dtype != bool:
        raise ValueError(f'a support must be a boolean matrix, got shape {support.shape} and dtype {support.dtype}')
    m, n = support.shape
    if m < n:
        raise ValueError(f'observed dims m={m} must be >= latents n={n}')
    empty = np.flatnonzero(~support.any(axis=0))
    if len(empty):
        raise ValueError(f'column {empty[0]} of the support is empty: latent {empty[0]} would not be observed')
    empty = np.flatnonzero(~support.any(axis=1))
    if len(empty):
        raise ValueError(f'row {empty[0]} of the support is empty: observed dim {empty[0]} would depend on no latent')


def parse_support(text: str) -> np.ndarray:
    """'110,011,101,...' (one string of 0/1 per observed dim) -> boolean m x n matrix, checked."""
    rows = [r.strip() for r in text.split(',') if r.strip()]
    if not rows or len(rows) > MAX_M or any(len(r) > 64 or set(r) - {'0', '1'} for r in rows):
        raise ValueError(f'a support is 1 to {MAX_M} comma-separated strings of 0 and 1 of at most 64 characters, got "{text[:40]}"')
    if len({len(r) for r in rows}) != 1:
        raise ValueError('every row of the support must have the same length (the number of latents)')
    support = np.array([[c == '1' for c in r] for r in rows], dtype=bool)
    check_support(support)
    return support


def is_post_nonlinear(support: np.ndarray) -> bool:
    """True when no row of the support is a strict subset of another: the later masks are then diagonal."""
    sub = subset_mask(support)
    return not (sub & ~np.eye(len(support), dtype=bool)).any()


def make_support(n: int, m: int, density: float, rng: np.random.Generator, min_row: int = 1, max_row: int = None,
                 singletons: int = None, structural: bool = False, tries: int = 2000) -> np.ndarray:
    """Random boolean support (m x n): round(density*m*n) entries, a matching, min_row..max_row entries per row.

    singletons = k (with min_row = 1): only k random rows may keep a single parent, the others get >= 2; a
    latent with a single-parent row is read off x, so k bounds how much reading x recovers.
    With structural=True the support is redrawn (up to `tries` times) until it is structurally sparse, its
    rows are distinct and, if some rows have fewer parents than others, it is not post-nonlinear.
    """
    max_row = n if max_row is None else max_row
    if not 0 < density <= 1:
        raise ValueError(f'density must be in (0, 1], got {density}')
    if not 1 <= min_row <= max_row <= n or m < n:
        raise ValueError(f'need 1 <= min_row <= max_row <= n and m >= n, got min_row={min_row}, max_row={max_row}, n={n}, m={m}')
    if singletons is not None and not (min_row == 1 and 2 <= max_row and 0 <= singletons <= m):
        raise ValueError(f'singletons={singletons} needs min_row = 1, max_row >= 2 and 0 <= singletons <= m')
    for _ in range(tries):
        support = np.zeros([m, n], dtype=bool)
        support[rng.permutation(m)[:n], np.arange(n)] = True  # injective matching: column j drives one row
        row_min = np.full(m, min_row)
        if singletons is not None:
            row_min[rng.permutation(m)[singletons:]] = 2
        for i in range(m):
            need = row_min[i] - int(support[i].sum())
            if need > 0:
                support[i, rng.choice(np.flatnonzero(~support[i]), size=need, replace=False)] = True
        target = max(int(round(density * m * n)), int(support.sum()))
        free = np.flatnonzero(~support.ravel())
        support.ravel()[rng.choice(free, size=target - int(support.sum()), replace=False)] = True
        if support.sum(axis=1).max() > max_row:
            continue
        if not structural:
            return support
        distinct = len(np.unique(support, axis=0)) == m  # equal rows would make a later layer near singular
        uneven = len(set(support.sum(axis=1).tolist())) > 1
        if distinct and is_structurally_sparse(support) and not (uneven and is_post_nonlinear(support)):
            return support
    raise RuntimeError(f'no {m} x {n} support at density {density} with {min_row}-{max_row} parents per row in {tries} draws')


def subset_mask(support: np.ndarray) -> np.ndarray:
    rows = support.astype(np.int64)
    return (rows[:, None, :] >= rows[None, :, :]).all(axis=2)  # [i, j] = S[j] is a subset of S[i]


def layer_masks(support: np.ndarray, num_layers: int) -> list:
    """Masks for each layer whose boolean product is exactly `support` (first mask = support)."""
    return [support.copy()] + [subset_mask(support) for _ in range(num_layers - 1)]


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

def unit_noise(latent: str, shape, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean unit-variance noise: 'gauss', 'laplace', or 'mixture' (+-0.8 with prob 1/2, plus N(0, 0.6^2))."""
    if latent == 'gauss':
        return rng.standard_normal(shape)
    if latent == 'laplace':
        return rng.laplace(0.0, 1 / np.sqrt(2), size=shape)
    if latent == 'mixture':
        return rng.choice([-0.8, 0.8], size=shape) + 0.6 * rng.standard_normal(shape)
    raise ValueError(f'latent must be one of {", ".join(LATENTS)}, got "{latent}"')


def make_synthetic_dataset(
    n:               int   = 5,      # Number of latents.
    m:               int   = None,   # Observed dims (>= n); None = n.
    num_domains:     int   = 40,     # K, number of domains u.
    samples:         int   = 1000,   # Samples per domain (train + validation + test).
    heldout:         float = 0.2,    # Test fraction per domain (MCC and held-out ELBO).
    validation:      float = 0.1,    # Validation fraction per domain (plateau and alpha choice).
    density:         float = 1.0,    # Jacobian support density of the mixing; 1.0 = dense.
    min_row:         int   = 1,      # Fewest latents each observed dim depends on.
    max_row:         int   = None,   # Most latents each observed dim depends on; None = n.
    singletons:      int   = None,   # Rows that may keep a single parent (see make_support); None = any.
    structural:      bool  = False,  # Redraw the support until it is structurally sparse (see make_support).
    support:         np.ndarray = None,  # A given m x n support instead of a drawn one.
    standardise:     bool  = False,  # Feed g with latents standardised by their population mean and std.
    layers:          int   = 2,      # Layers of the mixing MLP (2 = one leaky-ReLU nonlinearity).
    latent:          str   = 'gauss',  # Noise of z | u (LATENTS).
    first_layer:     str   = 'support',  # 'support': masked by the drawn support; 'dense': every entry (later layers unchanged).
    mean_mode:       str   = 'uniform', # 'uniform': mu ~ U(-5, 5); 'zero': centred.
    scale_range:     tuple = (0.5, 3.0),  # sigma ~ U(lo, hi), per domain and component.
    max_cond:        float = 5.0,    # Largest condition number accepted for a mixing layer.
    min_weight:      float = 0.25,   # Mixing weights are +-U(min_weight, 1) on the support.
    seed:            int   = 0,
) -> dnnlib.EasyDict:
    """Draw a dataset; returns EasyDict(z_*, u_*, x_* for train/val/test, mu, sigma, support, masks, mixing)."""
    m = n if m is None else m
    if m < n:
        raise ValueError(f'observed dims m={m} must be >= latents n={n}')
    if support is not None:
        check_support(support)
        if support.shape != (m, n):
            raise ValueError(f'the support is {support.shape[0]} x {support.shape[1]}, but m={m} and n={n}')
    if num_domains < 1 or samples < 10 or not (0 < heldout and 0 < validation and heldout + validation < 1):
        raise ValueError('need num_domains >= 1, samples >= 10, heldout > 0, validation > 0 and heldout + validation < 1')
    if mean_mode not in ('uniform', 'zero'):
        raise ValueError(f'mean_mode must be "uniform" or "zero", got "{mean_mode}"')
    if first_layer not in FIRST_LAYERS:
        raise ValueError(f'first_layer must be one of {", ".join(FIRST_LAYERS)}, got "{first_layer}"')
    rng = np.random.default_rng([seed, 0])  # latents and split
    mix_rng = np.random.default_rng([seed, 1])  # mixing: the same g for every K at a given seed
    mu = rng.uniform(-5, 5, size=[num_domains, n]) if mean_mode == 'uniform' else np.zeros([num_domains, n])
    sigma = rng.uniform(scale_range[0], scale_range[1], size=[num_domains, n])
    u = np.repeat(np.arange(num_domains), samples)
    z = mu[u] + sigma[u] * unit_noise(latent, [num_domains * samples, n], rng)

    if support is None:
        support = make_support(n, m, density, mix_rng, min_row=min_row, max_row=max_row, singletons=singletons,
                               structural=structural)
    masks = layer_masks(support, layers)
    if first_layer == 'dense':  # the later layers keep the drawn support's masks; the Jacobian becomes dense
        masks[0] = np.ones_like(masks[0])
        support = boolean_product(masks)
    weights = [well_conditioned_weight(mask, max_cond, mix_rng, min_weight) for mask in masks]
    biases = [np.zeros(mask.shape[0]) for mask in masks]
    shift = scale = None
    if standardise:  # mean and std of the mixture of the K domain distributions, per component
        shift = mu.mean(0)
        scale = np.sqrt((sigma ** 2 + mu ** 2).mean(0) - shift ** 2)
    mixing = MixingMLP(weights, biases, shift=shift, scale=scale).eval()
    with torch.no_grad():
        x = mixing(torch.as_tensor(z, dtype=torch.float32))

    n_test = max(1, int(round(heldout * samples)))
    n_val = max(1, int(round(validation * samples)))
    part = np.zeros([num_domains, samples], dtype=np.int64)  # 0 train, 1 validation, 2 test
    for k in range(num_domains):
        perm = rng.permutation(samples)
        part[k, perm[:n_test]] = 2
        part[k, perm[n_test:n_test + n_val]] = 1
    part = torch.as_tensor(part.ravel())
    z = torch.as_tensor(z, dtype=torch.float32)
    u = torch.as_tensor(u, dtype=torch.int64)
    out = dnnlib.EasyDict(mu=mu, sigma=sigma, support=support, masks=masks, mixing=mixing,
                          n=n, m=m, num_domains=num_domains, density=float(support.mean()))
    for idx, name in enumerate(('train', 'val', 'test')):
        out[f'z_{name}'], out[f'u_{name}'], out[f'x_{name}'] = z[part == idx], u[part == idx], x[part == idx]
    return out

#----------------------------------------------------------------------------
