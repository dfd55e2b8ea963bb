"""Ground-truth metrics of a multi-domain generator, judged by the factor oracle (metrics/factor_oracle.py).

N latents eps (sample i is generate.py's seed seed*N + i, domain_swap.seed_latent) are each rendered in
every domain (a row of a swap grid) and read by the oracle. Results (flat dict of floats):
  content_<f>_kappa / _agree   class content factor f: Cohen's kappa / raw agreement of the oracle's class
                               for the same eps in two domains, mean over domain pairs (1 = kept under every
                               swap; kappa 0 = chance, also when G ignores eps and draws one class)
  content_<f>_corr / _mad      real content factor f: Pearson correlation / mean absolute difference (factor
                               units) of the same eps in two domains, mean over pairs (corr 1 = kept; 0 =
                               unrelated or constant)
  content_kept                 mean of the kappas and correlations above
  style_<f>_in_range           share of the swapped fakes whose style factor f falls inside the target
                               domain's 1st-99th percentile range of the reals (hue on the circle)
  style_in_range               share with every style factor in range (bottom: about 1/K for a G ignoring
                               the domain); style_in_range_real: the same share for held-out reals
  mig_content, mig_style       mutual information gap (Chen et al. 2018) between single latent dims and
                               the oracle's factors, within each domain then averaged over domains;
                               content factors over the content dims, style factors over the active style
                               dims (G.mapping.style_mask()). Without a mask both use every dim
                               (style_dims = 0). 1 = each factor read from one dim, 0 = no dim informs it
  dci_disentanglement, dci_completeness, dci_informativeness   DCI of the eps dims against every factor the
                               oracle reads (linear importances, metrics/region_metrics.dci), mean over domains
  fd_oracle                    Frechet distance between the oracle's penultimate features of the fakes and
                               of its held-out reals (not FID: another network; 0 = same statistics)
  precision_oracle, recall_oracle  improved precision / recall (Kynkaenniemi et al. 2019, k = 3) on them
  recognised_<f>_<class>       share of fakes the oracle puts in that class with probability >= 0.9
                               (factor_oracle.RECOGNISED_CONFIDENCE) whose features are also typical of
                               the reals (Mahalanobis distance within the 99th percentile of held-out
                               reals': a confident reading of an image unlike any real one does not count)
  recognised_<f>               their sum; the _real values are the held-out reals' shares (<= 0.99)
"""
import copy
import os
import time

import numpy as np
import torch

import dnnlib
from torch_utils import allowlist
from training.domain_swap import render_rows
from . import factor_oracle as fo
from . import frechet
from . import region_metrics
from .swap import _kappa

PR_MAX = 4000   # at most this many reals and fakes enter precision / recall

#----------------------------------------------------------------------------

def _bins(v, num_bins):
    """Equal-mass bin ids (by rank) of the columns of v [N, D]; a constant column is all bin 0."""
    order = np.argsort(np.argsort(v, axis=0, kind='stable'), axis=0, kind='stable')
    ids = order * num_bins // len(v)
    const = np.ptp(v, axis=0) == 0
    ids[:, const] = 0
    return ids


def _entropy(counts):
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(z_bins, f_bins, num_bins):
    """MI (nats) between each column of z_bins [N, D] and the labels f_bins [N]: [D]."""
    n, d = z_bins.shape
    nf = int(f_bins.max()) + 1
    joint = np.bincount((np.arange(d)[None] * num_bins * nf + z_bins * nf + f_bins[:, None]).ravel(),
                        minlength=d * num_bins * nf).reshape(d, num_bins, nf) / n
    pz, pf = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)
    with np.errstate(divide='ignore', invalid='ignore'):
        terms = np.where(joint > 0, joint * np.log(joint / (pz * pf)), 0.0)
    return terms.sum(axis=(1, 2))


def mig(z, factor_bins, dims, num_bins=10):
    """Mean over factors of (MI of the best dim - MI of the second) / H(factor), over latent `dims`."""
    if len(dims) == 0:
        return 0.0
    zb = _bins(z[:, dims], num_bins)
    gaps = []
    for fb in factor_bins:
        h = _entropy(np.bincount(fb))
        if h <= 0:
            gaps.append(0.0)
            continue
        mi = np.sort(mutual_information(zb, fb, num_bins))[::-1]
        gaps.append(float((mi[0] - (mi[1] if len(mi) > 1 else 0.0)) / h))
    return float(np.mean(gaps)) if gaps else 0.0

#----------------------------------------------------------------------------

def fd_oracle(oracle, images_a, images_b):
    """Frechet distance between the oracle features of two image sets (uint8 or [-1, 1] NCHW)."""
    return frechet.frechet_distance_from_features(oracle.predict(images_a)[0], oracle.predict(images_b)[0])


def inside_balls(ref, probe, k=3, chunk=1024):
    """Bool per probe row: inside the ball of some ref row whose radius is that row's distance to its k-th
    nearest other ref row (Kynkaanniemi et al. 2019)."""
    ref, probe = np.asarray(ref, np.float64), np.asarray(probe, np.float64)
    sq = lambda a, b: np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)
    radius = np.concatenate([np.sort(sq(ref[i:i + chunk], ref), axis=1)[:, min(k, len(ref) - 1)] for i in range(0, len(ref), chunk)])
    return np.concatenate([(sq(probe[i:i + chunk], ref) <= radius[None]).any(axis=1) for i in range(0, len(probe), chunk)])


def precision_recall(real, fake, k=3):
    """Improved precision (share of fakes inside the reals' k-NN balls) and recall (the converse)."""
    return float(inside_balls(real, fake, k).mean()), float(inside_balls(fake, real, k).mean())


def _corr(a, b):
    """Pearson correlation; 0 when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _style_dims(G):
    mapping = getattr(G, 'mapping', None)
    if mapping is None or not hasattr(mapping, 'style_mask'):
        return np.zeros([G.z_dim], bool)
    return mapping.style_mask().cpu().numpy().astype(bool)

#----------------------------------------------------------------------------

def evaluate(G, oracle, num_samples=1000, seed=0, device='cpu', batch_size=64, truncation_psi=1.0, noise_mode='const',
             num_bins=10):
    """Every ground-truth metric of generator G (module docstring) -> flat dict of floats."""
    K = int(G.c_dim)
    if K < 2 or K != oracle.num_domains:
        raise ValueError(f'the ground-truth metrics need a generator with the data set\'s {oracle.num_domains} domains; this one has c_dim={K}')
    if int(G.img_resolution) != oracle.resolution:
        raise ValueError(f'the generator makes {G.img_resolution}x{G.img_resolution} images but the oracle was trained on '
                         f'{oracle.resolution}x{oracle.resolution}: pass the data set of the network\'s resolution')
    if not 10 <= num_samples <= 100000:
        raise ValueError(f'num_samples={num_samples} is out of range; the ground-truth metrics take 10 to 100000 latents')
    eps, rows = render_rows(G, num_samples, seed, device, batch_size, truncation_psi, noise_mode)
    N = len(eps)
    feats, values, probs = oracle.predict(rows.flatten(0, 1))
    values = {k: v.reshape(N, K) for k, v in values.items()}
    res = dict(oracle.scores)

    # (a) Content kept under a domain swap.
    kept = []
    for spec in oracle.factors:
        if spec['kind'] != 'content':
            continue
        v, name, stats = values[spec['name']], spec['name'], []
        for a in range(K):
            for b in range(a + 1, K):
                if spec['type'] == 'class':
                    ids = np.searchsorted(np.asarray(spec['values']), v)
                    stats.append(_kappa(ids[:, a], ids[:, b], len(spec['values'])))
                else:
                    stats.append((_corr(v[:, a], v[:, b]), float(np.mean(np.abs(v[:, a] - v[:, b])))))
        first, second = np.mean(stats, axis=0)
        res.update({f'content_{name}_kappa': float(first), f'content_{name}_agree': float(second)} if spec['type'] == 'class'
                   else {f'content_{name}_corr': float(first), f'content_{name}_mad': float(second)})
        kept.append(float(first))
    if kept:
        res['content_kept'] = float(np.mean(kept))

    # (b) Style of the swapped image inside the target domain's range.
    ranges = oracle.meta['style_ranges']
    style = [sp for sp in oracle.factors if sp['kind'] == 'style']
    if style:
        ok_all = np.ones([N, K], bool)
        for spec in style:
            ok = np.stack([fo.in_style_range(spec, ranges, values[spec['name']][:, k], k) for k in range(K)], 1)
            res[f'style_{spec["name"]}_in_range'] = float(ok.mean())
            ok_all &= ok
        res['style_in_range'] = float(ok_all.mean())
        res['style_in_range_real'] = float(oracle.meta['real_in_range'])

    # (c) Latent -> factor disentanglement (MIG), content and style dims apart, within each domain.
    mask = _style_dims(G)
    style_dims, content_dims = np.flatnonzero(mask), np.flatnonzero(~mask)
    if len(style_dims) == 0:
        style_dims = content_dims
    res['style_dims'] = float(mask.sum())
    for kind, dims in (('content', content_dims), ('style', style_dims)):
        specs = [sp for sp in oracle.factors if sp['kind'] == kind]
        if not specs:
            continue
        per_domain = []
        for k in range(K):
            fbins = []
            for sp in specs:
                v = values[sp['name']][:, k]
                if sp['type'] == 'class':
                    fbins.append(np.searchsorted(np.asarray(sp['values']), v))
                else:
                    v = fo.circular_offset(v, fo.circular_mean(v)) if sp['type'] == 'circular' else v
                    fbins.append(_bins(v[:, None], num_bins)[:, 0])
            per_domain.append(mig(eps, fbins, dims, num_bins))
        res[f'mig_{kind}'] = float(np.mean(per_domain))

    # (c') DCI over every latent dim and every factor, within each domain (metrics/region_metrics.py).
    per_domain = [region_metrics.dci(eps, [(values[sp['name']][:, k], sp['type']) for sp in oracle.factors]) for k in range(K)]
    res.update({key: float(np.mean([d[key] for d in per_domain])) for key in per_domain[0]})

    # (d) Quality on the oracle's features; recognised classes.
    res['fd_oracle'] = frechet.frechet_distance_from_features(feats, oracle.real_features)
    step = -(-len(feats) // PR_MAX)                                     # bound the k-NN distance matrices
    res['precision_oracle'], res['recall_oracle'] = precision_recall(oracle.real_features[:PR_MAX], feats[::step])
    typical = oracle.typical(feats)
    for name, p in probs.items():
        labels = oracle.meta['class_names'][name]
        shares, real = fo.recognised_shares(p, typical), oracle.meta['real_recognised'][name]
        for label, s, r in zip(labels, shares, real):
            res[f'recognised_{name}_{label}'] = s
            res[f'recognised_{name}_{label}_real'] = r
        res[f'recognised_{name}'] = float(sum(shares))
        res[f'recognised_{name}_real'] = float(sum(real))
    return res

#----------------------------------------------------------------------------

def calc_metric(metric, num_samples, G, dataset_kwargs, device, seed, num_gpus, cache_dir=None, progress=True):
    """metric_main's entry: the oracle of the data set (cached), then `evaluate`; NVIDIA's result record."""
    start = time.time()
    dataset_kwargs = dnnlib.EasyDict(dataset_kwargs, max_size=None, xflip=False, use_labels=True)
    dataset = allowlist.construct('dataset', dataset_kwargs, 'the dataset settings')
    oracle = fo.load_or_train(dataset, device=device, cache_dir=cache_dir, progress=progress)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    results = evaluate(G, oracle, num_samples=num_samples, seed=seed, device=device)
    path = dataset_kwargs.get('path')
    total_time = time.time() - start
    return dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time,
                           total_time_str=dnnlib.util.format_time(total_time), num_gpus=num_gpus, mode=None,
                           reference=dict(path=os.path.abspath(path) if path else None, hash=oracle.meta.get('fingerprint')),
                           num_images=num_samples * int(G.c_dim), num_reals=len(dataset), feature_extractor='factor-oracle')

#----------------------------------------------------------------------------
