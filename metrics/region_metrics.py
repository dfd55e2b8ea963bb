"""Metrics of the sparse-mixing mechanism, image-level and blind to which latent is which factor.

They need a data set whose style factors live in known regions (builtin:patches and its control
builtin:patches-global store them as `style_regions` in dataset.json):
  leakage                 off-region leakage of a domain swap: mean |G(eps, u) - G(eps, u')| over the pixels
                          outside the style regions, divided by the same quantity for a fresh eps in the same
                          domain (|G(eps, u) - G(eps', u)|). 0 = a swap touches only the regions (the data
                          set's own renderer on `patches`), 1 = a swap redraws the image, inf = G ignores eps.
  swap_in_region          the same numerator inside the regions (a swap must change something there)
  style_in_region_share   per active style dim k, the share of its Jacobian mass sum |J e_k| that falls in the
                          regions (J = d image / d latent), then the mean over those dims. Chance = the regions'
                          area share (`region_area_share`), ideal 1; 0 when the columns carry no mass at all.
  content_in_region_share the same for the content dims (ideal: 0 on `patches`)
  dci_*                   DCI (Eastwood & Williams 2018) with linear importances: ridge regressions from the
                          standardised latent code to each factor (classes one-hot, hue as cos/sin), on 80 % of
                          the samples; importance R[d, f] = the summed |coefficients|; disentanglement =
                          sum_d rho_d (1 - H_F(R[d, :])), completeness = mean_f (1 - H_D(R[:, f])),
                          informativeness = held-out R^2 (classes: accuracy) on the other 20 %, mean over factors.
"""
import math

import numpy as np
import torch

MAX_REGIONS = 8

#----------------------------------------------------------------------------

def regions_from_meta(meta, resolution, where='the data set'):
    """{name: bool [res, res]} masks of the `style_regions` stored in dataset.json, checked (one sentence if bad)."""
    from datasets.patches import region_masks
    if not (isinstance(resolution, int) and 16 <= resolution <= 1024):
        raise ValueError(f'the region metrics need images of 16 to 1024 pixels, not {resolution}')
    regions = (meta or {}).get('style_regions') if isinstance(meta, dict) else None
    if regions is None:
        raise ValueError(f'{where} stores no style regions; the region metrics need one built from builtin:patches or builtin:patches-global')
    ok = isinstance(regions, dict) and 0 < len(regions) <= MAX_REGIONS and all(
        isinstance(k, str) and len(k) <= 32 and isinstance(v, list) and len(v) == 4 and
        all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and -1 <= x <= 1 for x in v) and
        v[0] < v[2] and v[1] < v[3] for k, v in regions.items())
    if not ok:
        raise ValueError(f'the style_regions of {where} are malformed (want up to {MAX_REGIONS} names, each [x0, y0, x1, y1] in [-1, 1]); rebuild it with dataset_tool.py')
    masks = region_masks(regions, resolution)
    if not any(m.any() for m in masks.values()):
        raise ValueError(f'the style regions of {where} cover no pixel at {resolution}x{resolution}')
    return masks


def union(masks):
    return np.logical_or.reduce(list(masks.values()))

#----------------------------------------------------------------------------

def _float(img):
    img = torch.as_tensor(img)
    return img.to(torch.float64) / 255 if img.dtype == torch.uint8 else (img.to(torch.float64) + 1) / 2


def leakage(rows, inside):
    """rows: images [N, K, C, H, W] (uint8 or [-1, 1]), each eps in every domain; inside: bool [H, W]."""
    x = _float(rows)
    N, K = x.shape[:2]
    if N < 2 or K < 2:
        raise ValueError(f'leakage needs at least 2 latents in at least 2 domains, got {N} x {K}')
    inside = torch.as_tensor(np.asarray(inside, bool))
    pairs = [(a, b) for a in range(K) for b in range(K) if a != b]
    swap = torch.stack([(x[:, a] - x[:, b]).abs() for a, b in pairs], 1)        # [N, P, C, H, W]
    fresh = (x - x.roll(1, dims=0)).abs()                                        # eps vs another eps, same domain
    out_sw, out_fr = swap[..., ~inside].mean().item(), fresh[..., ~inside].mean().item()
    return dict(leakage=out_sw / out_fr if out_fr > 0 else (float('inf') if out_sw > 0 else float('nan')),
                swap_off_region=out_sw, fresh_off_region=out_fr, swap_in_region=swap[..., inside].mean().item())


def region_share(J, inside):
    """J: Jacobian columns [cols, B, C, H, W] (or [cols, B, C*H*W] with H*W = inside.size) -> share of
    each column's |mass| inside the regions, float64 [cols] (0 for a column without mass)."""
    inside = torch.as_tensor(np.asarray(inside, bool)).flatten()
    J = torch.as_tensor(J).to(torch.float64)
    J = J.reshape(J.shape[0], J.shape[1], -1, inside.numel()).abs()
    total = J.sum(dim=(1, 2, 3))
    share = J[..., inside].sum(dim=(1, 2, 3)) / total.clamp(min=1e-300)
    return torch.where(total > 0, share, torch.zeros_like(share)).numpy()

#----------------------------------------------------------------------------

def _ridge(X, Y, alpha=1e-2):
    """Coefficients [D, T] of ridge regression of Y [N, T] on X [N, D] (both centred by the caller)."""
    D = X.shape[1]
    return np.linalg.solve(X.T @ X / len(X) + alpha * np.eye(D), X.T @ Y / len(X))


def _entropy_rows(P, base):
    P = P / np.maximum(P.sum(1, keepdims=True), 1e-300)
    with np.errstate(divide='ignore', invalid='ignore'):
        h = -np.where(P > 0, P * np.log(P), 0.0).sum(1)
    return h / math.log(base) if base > 1 else np.zeros(len(P))


def dci(codes, factors):
    """codes [N, D]; factors: list of (values [N], type 'class' | 'circular' | 'real') -> dict of floats."""
    codes = np.asarray(codes, np.float64)
    N, D = codes.shape
    if N < 10 or not factors:
        raise ValueError(f'DCI needs at least 10 samples and one factor, got {N} and {len(factors)}')
    n_tr = N - max(2, N // 5)
    sd = codes[:n_tr].std(0)
    Z = (codes - codes[:n_tr].mean(0)) / np.where(sd > 0, sd, 1.0)
    R, info = np.zeros([D, len(factors)]), []
    for j, (v, kind) in enumerate(factors):
        v = np.asarray(v, np.float64)
        if kind == 'class':
            classes = np.unique(v[:n_tr])
            Y = (v[:, None] == classes[None]).astype(np.float64)
        elif kind == 'circular':
            Y = np.stack([np.cos(2 * np.pi * v), np.sin(2 * np.pi * v)], 1)
        else:
            Y = v[:, None]
        mu = Y[:n_tr].mean(0)
        W = _ridge(Z[:n_tr], Y[:n_tr] - mu)
        R[:, j] = np.abs(W).sum(1)
        pred = Z[n_tr:] @ W + mu
        if kind == 'class':
            info.append(float(np.mean(classes[pred.argmax(1)] == v[n_tr:])))
        else:
            err, var = ((pred - Y[n_tr:]) ** 2).sum(), ((Y[n_tr:] - Y[n_tr:].mean(0)) ** 2).sum()
            info.append(float(max(0.0, 1 - err / var)) if var > 0 else 0.0)
    rho = R.sum(1) / max(R.sum(), 1e-300)
    dis = float((rho * (1 - _entropy_rows(R, len(factors)))).sum()) if len(factors) > 1 else 1.0
    comp = float(np.mean(1 - _entropy_rows(R.T, D)))
    return dict(dci_disentanglement=dis, dci_completeness=comp, dci_informativeness=float(np.mean(info)))

#----------------------------------------------------------------------------

@torch.no_grad()
def generator_leakage(G, masks, num_samples=500, seed=0, device='cpu', batch_size=64):
    from training.domain_swap import render_rows
    _eps, rows = render_rows(G, num_samples, seed=seed, device=device, batch_size=batch_size)
    return leakage(rows, union(masks))


def generator_region_shares(G, masks, num_latents=16, seed=0, columns=None):
    """Mean in-region share of the Jacobian columns of G's active style dims and of its content dims
    (metrics/generator_jacobian.py: columns of the latent x that L_s perturbs), num_latents eps in every domain.
    `columns`: domain_columns(G, ...) already computed (its num_latents and seed then hold)."""
    from . import generator_jacobian as gj
    cols = columns if columns is not None else gj.domain_columns(G, num_latents, seed)
    inside = union(masks)
    ns = len(cols['style'])
    out = dict(region_area_share=float(inside.mean()))
    for name, J in (('style', cols['J'][:ns]), ('content', cols['J'][ns:])):
        shares = region_share(J, inside) if len(J) else np.zeros(0)
        out[f'{name}_in_region_share'] = float(shares.mean()) if len(shares) else float('nan')
        out[f'{name}_in_region_share_per_column'] = [float(s) for s in shares]
    return out


def style_jacobian_map(G, num_latents=16, seed=0):
    """Where the active style dims act: sum over those dims, eps, domains and channels of |J e_k|, float64
    [H, W] normalised to sum 1 (zeros when no style dim is active)."""
    from . import generator_jacobian as gj
    G = gj.eval_copy(G)
    z, c = gj.domain_grid(G, num_latents, seed)
    style, _, _ = gj.column_split(G)
    res = int(G.img_resolution)
    if not style:
        return np.zeros([res, res])
    m = gj.jacobian_columns(G, z, c, style).abs().reshape(len(style), len(z), -1, res, res)
    m = m.sum(dim=(0, 1, 2)).to(torch.float64).numpy()
    return m / max(m.sum(), 1e-300)

#----------------------------------------------------------------------------
