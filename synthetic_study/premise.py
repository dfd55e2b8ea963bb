"""Premise audit: is the true mixing the sparsest solution that fits the data?

All three numbers are the scaled L1 of a decoder's Jacobian in standardised-x units (models.scaled_l1),
the quantity the sparsity term penalises, averaged over training points:
  l1_true   the true g: zhat = z
  l1_readx  reading x: zhat = n of the m standardised observed dims, the decoder being the identity on
            them and g_rest o g_sel^-1 on the rest (Jacobian J J_sel^-1); the lowest over the selections
            tried: all of them up to MAX_SELECTIONS, else that many random ones among the selections the
            Jacobian's support can invert (a uniform draw of 10 of 20 sparse rows almost never can, which
            left n = 10 with no selection at all), then single swaps from the best three while they lower
            it (on 400 of the points): an upper bound on the cheapest reading, exact when every selection
            is tried. With m = n it is n.
  l1_fit0   the CG-VAE fit at alpha = 0 (from that arm's results line)
A data set where l1_true is not below both others is outside the premise: there the penalty pulls a model
away from the truth, and a loss of MCC is not a failure of the method.
"""
import itertools
import math

import numpy as np
import torch

from synthetic_study.fit import L1_POINTS, spread
from synthetic_study.models import scaled_l1

MAX_SELECTIONS = 300
DESCENT_STARTS, DESCENT_POINTS = 3, 400

#----------------------------------------------------------------------------

def true_jacobian(mixing, z, x_std):
    """dg/dz in standardised-x units, [B, m, n]."""
    return torch.func.vmap(torch.func.jacrev(mixing))(z) / x_std[:, None]


def selections(m: int, n: int, rng: np.random.Generator, pattern: np.ndarray) -> list:
    """Every n of the m observed dims, or up to MAX_SELECTIONS distinct random ones whose rows of the [m, n]
    support `pattern` hold a perfect matching (one row per latent: structurally invertible). Each draw
    gives the latents, in random order, a random row among the unused ones that depend on them, so any
    structurally invertible selection can be drawn."""
    if math.comb(m, n) <= MAX_SELECTIONS:
        return [list(s) for s in itertools.combinations(range(m), n)]
    rows_of = [np.flatnonzero(pattern[:, j]) for j in range(n)]
    found = set()
    for _ in range(20 * MAX_SELECTIONS):
        if len(found) == MAX_SELECTIONS:
            break
        used = set()
        for j in rng.permutation(n):
            free = [int(i) for i in rows_of[j] if i not in used]
            if not free:
                break
            used.add(free[rng.integers(len(free))])
        if len(used) == n:
            found.add(tuple(sorted(used)))
    return [list(s) for s in sorted(found)]


def readx_l1(jac: torch.Tensor, xs: torch.Tensor, sels: torch.Tensor) -> torch.Tensor:
    """Scaled L1 of reading x through each selection [P, n] (J J_sel^-1 in the selected dims' units), inf
    where the selected dims do not determine z at every point."""
    out = torch.full((len(sels),), math.inf, dtype=torch.float64)
    for start in range(0, len(sels), 32):
        chunk = sels[start:start + 32]
        inner = jac[:, chunk]                                          # [B, P, n, n]
        hadamard = torch.linalg.det(inner).abs() / inner.norm(dim=-1).prod(-1)  # in [0, 1], free of scale
        ok = (hadamard > 1e-10).all(0)                                 # the dims determine z at every point
        if not ok.any():
            continue
        inner, chunk = inner[:, ok], chunk[ok]
        read = torch.linalg.solve(inner.transpose(-1, -2), jac[:, None].expand(-1, len(chunk), -1, -1).transpose(-1, -2))
        scale = xs[:, chunk].std(0).double()                           # [P, n]
        l1 = (read.transpose(-1, -2) * scale[None, :, None, :]).abs().sum((-2, -1)).mean(0)
        out[start + torch.nonzero(ok).flatten()] = l1
    return out


def swap_descent(jac: torch.Tensor, xs: torch.Tensor, sel: list, rounds: int = 50) -> tuple:
    """From one selection, take the best single swap (one selected dim for one unselected) while it lowers
    the L1: a local minimum, so sampling plus descent bounds reading x's cost more tightly than sampling.
    The L1 is measured on the points given (the audit descends on a subset, then scores on all)."""
    m = jac.shape[1]
    best = float(readx_l1(jac, xs, torch.tensor([sel]))[0])
    for _ in range(rounds):
        outside = [q for q in range(m) if q not in sel]
        near = torch.tensor([sorted(sel[:r] + [q] + sel[r + 1:]) for r in range(len(sel)) for q in outside])
        l1 = readx_l1(jac, xs, near)
        if float(l1.min()) >= best - 1e-9:
            break
        best, sel = float(l1.min()), near[int(l1.argmin())].tolist()
    return best, sel


@torch.no_grad()
def audit_dataset(data, seed: int = 0) -> dict:
    """l1_true and l1_readx (see the module doc) on up to L1_POINTS training points of one data set, spread
    over the domains, the points the fit's l1_fit is measured on."""
    idx = spread(len(data.x_train), L1_POINTS)
    z, x = data.z_train[idx], data.x_train
    x_std = x.std(0)
    xs = (x[idx] - x.mean(0)) / x_std
    jac = true_jacobian(data.mixing, z, x_std).double()
    l1_true = float(scaled_l1(jac, z.std(0).double()))
    pattern = (jac.abs().amax(0) > 1e-9).numpy()                      # [m, n] support of the true g
    sels = torch.tensor(selections(data.m, data.n, np.random.default_rng([seed, 3]), pattern), dtype=torch.long).reshape(-1, data.n)
    l1 = readx_l1(jac, xs, sels)
    best = float(l1.min()) if len(l1) else math.inf
    if math.comb(data.m, data.n) > MAX_SELECTIONS:  # sampled: descend from the best few
        starts = [int(i) for i in l1.argsort()[:DESCENT_STARTS] if math.isfinite(l1[i])]
        few = spread(len(jac), DESCENT_POINTS)
        ends = torch.tensor([swap_descent(jac[few], xs[few], sels[i].tolist())[1] for i in starts], dtype=torch.long)
        best = min([best] + readx_l1(jac, xs, ends.reshape(-1, data.n)).tolist())
    return dict(l1_true=round(l1_true, 4), l1_readx=round(best, 4))


def outside_premise(l1_true: float, l1_readx: float, l1_fit0: float = None) -> bool:
    """The truth is not the sparsest of the fitting solutions at hand."""
    return l1_true >= l1_readx or (l1_fit0 is not None and l1_true >= l1_fit0)

#----------------------------------------------------------------------------
