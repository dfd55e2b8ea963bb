"""Premise audit: is the true mixing the sparsest solution that fits the data?

All three numbers are the scaled L1 of a decoder's Jacobian in standardised-x units (models.scaled_l1),
the quantity the sparsity term penalises, averaged over training points:
  l1_true   the true g: zhat = z
  l1_readx  reading x: zhat = n of the m standardised observed dims, the decoder being the identity on
            them and g_rest o g_sel^-1 on the rest (Jacobian J J_sel^-1); the lowest over the selections
            tried (all of them up to MAX_SELECTIONS, else that many random ones). With m = n it is exactly n.
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

#----------------------------------------------------------------------------

def true_jacobian(mixing, z, x_std):
    """dg/dz in standardised-x units, [B, m, n]."""
    return torch.func.vmap(torch.func.jacrev(mixing))(z) / x_std[:, None]


def selections(m: int, n: int, rng: np.random.Generator) -> list:
    if math.comb(m, n) <= MAX_SELECTIONS:
        return [list(s) for s in itertools.combinations(range(m), n)]
    return [sorted(rng.choice(m, size=n, replace=False).tolist()) for _ in range(MAX_SELECTIONS)]


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
    best = math.inf
    sels = torch.tensor(selections(data.m, data.n, np.random.default_rng([seed, 3])))
    for chunk in sels.split(32):  # [P, n] selections at a time
        inner = jac[:, chunk]                                          # [B, P, n, n]
        ok = torch.linalg.det(inner).abs().amin(0) > 1e-9              # the dims determine z at every point
        if not ok.any():
            continue
        inner, chunk = inner[:, ok], chunk[ok]
        read = torch.linalg.solve(inner.transpose(-1, -2), jac[:, None].expand(-1, len(chunk), -1, -1).transpose(-1, -2))
        scale = xs[:, chunk].std(0).double()                           # [P, n]
        l1 = (read.transpose(-1, -2) * scale[None, :, None, :]).abs().sum((-2, -1)).mean(0)  # J J_sel^-1, scaled
        best = min(best, float(l1.min()))
    return dict(l1_true=round(l1_true, 4), l1_readx=round(best, 4))


def outside_premise(l1_true: float, l1_readx: float, l1_fit0: float = None) -> bool:
    """The truth is not the sparsest of the fitting solutions at hand."""
    return l1_true >= l1_readx or (l1_fit0 is not None and l1_true >= l1_fit0)

#----------------------------------------------------------------------------
