"""Metric registry and entry points (NVIDIA's names): is_valid_metric, list_valid_metrics, calc_metric, report_metric.

Metrics: fid{1,10,50}k_full, kid{1,10,50}k_full (fakes with labels drawn from the dataset's labels
vs all reals), fid{1,10,50}k_domain (per domain k: fakes of domain k vs reals of domain k, N fakes per
domain, plus their mean), swap1k (metrics/swap.py: 1000 eps rendered in every domain, judged by a probe
trained on the reals; no Inception needed), gt1k (metrics/ground_truth.py: the same rows judged by the
factor oracle of a data set with known factors; no Inception needed), and NVIDIA's pr50k3_full (VGG16 precision/recall), is50k
(Inception Score), ppl2_wend, ppl_{z,w}{full,end} (perceptual path length, VGG16 LPIPS). FID/KID features:
NVIDIA's Inception-v3 through clean-fid in mode `clean` (default) or `legacy_tensorflow` (the mode of
published numbers), or any FeatureExtractor; numbers from another extractor are named fd*/kd* with
'@<extractor name>' appended, never fid/kid. pr/is/ppl always follow NVIDIA's protocol (mode 'nvidia').
NVIDIA's legacy names fid50k, kid50k, pr50k3 are computed as fid50k_full, kid50k_full, pr50k3_full (LEGACY_NAMES).
"""
import copy
import json
import os
import re
import time

import numpy as np
import torch
import tqdm

import dnnlib
from torch_utils import allowlist
from . import cache
from . import features as feature_utils
from . import frechet
from . import weights
from .inception import INCEPTION_NAME, InceptionFeatureExtractor, InceptionProbabilities, find_inception  # noqa: F401
from .weights import MetricUnavailableError  # noqa: F401

#----------------------------------------------------------------------------

_metric_specs = dict()  # name -> EasyDict(kind, num_gen, split)

def _register(name, kind, num_gen, split, **extra):
    _metric_specs[name] = dnnlib.EasyDict(kind=kind, num_gen=num_gen, split=split, **extra)

for _k in (1, 10, 50):
    _register(f'fid{_k}k_full', 'fid', _k * 1000, 'full')
    _register(f'kid{_k}k_full', 'kid', _k * 1000, 'full')
    _register(f'fid{_k}k_domain', 'fid', _k * 1000, 'domain')
_register('swap1k', 'swap', 1000, 'domain')  # CG-GAN swap metrics (metrics/swap.py): domain accuracy, content kappa
_register('gt1k', 'gt', 1000, 'domain')      # ground-truth factor metrics (metrics/ground_truth.py), judged by the factor oracle
_register('pr50k3_full', 'pr', 50000, 'full', max_real=200000, nhood_size=3)            # NVIDIA's names and settings
_register('is50k', 'is', 50000, 'full', num_splits=10)
for _name, _space, _sampling, _crop in (('ppl2_wend', 'w', 'end', False), ('ppl_zfull', 'z', 'full', True), ('ppl_wfull', 'w', 'full', True),
                                         ('ppl_zend', 'z', 'end', True), ('ppl_wend', 'w', 'end', True)):
    _register(_name, 'ppl', 50000, 'full', space=_space, sampling=_sampling, crop=_crop, epsilon=1e-4)


# NVIDIA's legacy names -> the metric computed for them. NVIDIA's legacy metrics read at most 50k reals, the
# *_full ones all of them: the same numbers on data sets of up to 50k images.
LEGACY_NAMES = {'fid50k': 'fid50k_full', 'kid50k': 'kid50k_full', 'pr50k3': 'pr50k3_full'}


def canonical_metric(metric: str) -> str:
    """The registered name of `metric` (NVIDIA's legacy names mapped, see LEGACY_NAMES)."""
    return LEGACY_NAMES.get(metric, metric)


def legacy_note(metric: str):
    """One line saying what a legacy name is computed as, or None for a registered name."""
    if metric not in LEGACY_NAMES:
        return None
    return (f'{metric} is NVIDIA\'s legacy name: computing {LEGACY_NAMES[metric]} (all reals; NVIDIA\'s {metric} read at most 50k, '
            f'so the two agree on data sets of up to 50k images).')


def is_valid_metric(metric: str) -> bool:
    return canonical_metric(metric) in _metric_specs


def list_valid_metrics() -> list:
    return list(_metric_specs.keys()) + list(LEGACY_NAMES)


def required_weights(metric: str, feature_extractor=None) -> list:
    """The weight files (metrics.weights.WeightsFile) a metric needs; FID/KID need none with another extractor."""
    kind = _metric_specs[canonical_metric(metric)].kind
    if kind in ('pr', 'ppl'):
        return [weights.VGG16]
    if kind == 'is' or (kind in ('fid', 'kid') and feature_extractor in (None, 'inception')):
        return [weights.INCEPTION]
    return []


def metric_label(key: str, extractor_name: str) -> str:
    """The printed name of a result: unchanged for Inception, else fd*/kd* + '@<extractor>' (never 'FID')."""
    if extractor_name == INCEPTION_NAME:
        return key
    return re.sub(r'^(f|k)id', r'\1d', key) + '@' + extractor_name

#----------------------------------------------------------------------------

_extractor_memo = dict()

def _memo(key, build):
    if key not in _extractor_memo:
        _extractor_memo[key] = build()
    return _extractor_memo[key]


def build_feature_extractor(feature_extractor=None, mode='clean', device='cpu', inception=None, allow_download=False):
    """None -> Inception (verified weights, memoised per path/mode/device); 'random-conv'; a dotted name
    of a FeatureExtractor class or factory (called with device=); or an extractor object, returned as is."""
    if feature_extractor is None or feature_extractor == 'inception':
        path = find_inception(inception, allow_download=allow_download)
        return _memo((path, mode, str(device)), lambda: InceptionFeatureExtractor(mode=mode, device=device, path=path))
    if feature_extractor == 'random-conv':
        return feature_utils.RandomConvFeatureExtractor(device=device)
    if isinstance(feature_extractor, str):  # only a class on the allow-list, never any importable name
        return allowlist.get_class('feature_extractor', feature_extractor)(device=device)
    return feature_extractor


def format_time(seconds: float) -> str:
    s = int(np.rint(seconds))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'

#----------------------------------------------------------------------------

def _broadcast_flag(flag: bool, num_gpus: int, device) -> bool:
    if num_gpus == 1:
        return flag
    import torch.distributed as dist
    t = torch.tensor([int(flag)], device=device if dist.get_backend() == 'nccl' else 'cpu')
    dist.broadcast(t, src=0)
    return bool(t.item())


def reference_features(dataset, dataset_kwargs, extractor, num_gpus=1, rank=0, device='cpu', use_cache=True, cache_dir=None,
                       batch_size=64, num_workers=2, progress=True, max_items=None):
    """(features, labels, reference dict) of all reals, from the cache when possible."""
    path = dataset_kwargs.get('path')
    fingerprint = cache.dataset_fingerprint(path) if path is not None and os.path.exists(path) else None
    reference = dict(path=os.path.abspath(path) if path else None, hash=fingerprint)
    key = dict(dataset=reference['path'], fingerprint=fingerprint, resolution=int(dataset.resolution),
               resize_mode=extractor.resize_mode, features=extractor.name, max_items=max_items, use_labels=bool(dataset_kwargs.get('use_labels', False)))
    file = cache.cache_path(key, cache_dir) if (use_cache and fingerprint is not None) else None
    hit = _broadcast_flag(file is not None and os.path.isfile(file), num_gpus, device)
    loaded = cache.load(file) if hit else None
    if loaded is not None:
        return loaded[0], loaded[1], reference
    feats, labels = feature_utils.dataset_features(dataset, extractor, batch_size=batch_size, num_workers=num_workers,
                                                   rank=rank, num_gpus=num_gpus, progress=progress, max_items=max_items)
    if file is not None and rank == 0:
        cache.save(file, feats, labels, key)
    return feats, labels, reference

#----------------------------------------------------------------------------

def calc_metric(metric, G, dataset_kwargs, num_gpus=1, rank=0, device=None, feature_extractor=None, progress=None,
                mode='clean', inception=None, allow_download=False, batch_size=64, seed=0, cache=True, cache_dir=None,
                num_workers=2, G_kwargs=None, fake_memo=None, vgg16=None):
    """Compute one metric of generator G against the dataset built from `dataset_kwargs`.

    Returns EasyDict(results, metric, total_time, total_time_str, num_gpus, mode, reference, num_images,
    num_reals, feature_extractor). Raises MetricUnavailableError when the weights it needs are missing/wrong
    (`inception`, `vgg16`: paths of the files, see metrics/weights.py).
    `fake_memo` (a dict, optional) lets several metrics of the same G reuse its fake features."""
    if not is_valid_metric(metric):
        raise ValueError(f'unknown metric {metric!r}; choose from {", ".join(list_valid_metrics())}')
    metric = canonical_metric(metric)
    if mode not in ('clean', 'legacy_tensorflow'):
        raise ValueError(f'mode must be clean or legacy_tensorflow, got {mode!r}')
    spec = _metric_specs[metric]
    device = torch.device('cuda', rank) if device is None and torch.cuda.is_available() else torch.device(device or 'cpu')
    progress = True if progress is None else bool(progress)
    start = time.time()
    if spec.kind == 'swap':
        return _calc_swap_metric(metric, spec, G, dataset_kwargs, device, start, num_gpus, progress)
    if spec.kind == 'gt':
        from . import ground_truth
        return ground_truth.calc_metric(metric, spec.num_gen, G, dataset_kwargs, device, seed, num_gpus, cache_dir, progress)
    if spec.kind in ('pr', 'is', 'ppl'):
        return _calc_nvidia_metric(metric, spec, G, dataset_kwargs, num_gpus=num_gpus, rank=rank, device=device, start=start, progress=progress,
                                   batch_size=batch_size, seed=seed, cache=cache, cache_dir=cache_dir, num_workers=num_workers,
                                   G_kwargs=G_kwargs, weight_paths=dict(inception=inception, vgg16=vgg16), allow_download=allow_download)
    extractor = build_feature_extractor(feature_extractor, mode=mode, device=device, inception=inception, allow_download=allow_download)

    dataset_kwargs, dataset = _reals(dataset_kwargs, G, spec)
    if spec.split == 'domain' and (G.c_dim == 0 or dataset.label_dim != G.c_dim):
        raise ValueError(f'{metric} needs a conditional generator and a dataset with the same number of domains '
                         f'(generator c_dim={G.c_dim}, dataset label_dim={dataset.label_dim})')
    real_feats, real_labels, reference = reference_features(
        dataset, dataset_kwargs, extractor, num_gpus=num_gpus, rank=rank, device=device, use_cache=cache,
        cache_dir=cache_dir, batch_size=batch_size, num_workers=num_workers, progress=progress)

    # Fakes.
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    def fakes(label_sampler, tag):
        memo_key = (tag, spec.num_gen, extractor.name, extractor.resize_mode, seed)
        if fake_memo is not None and memo_key in fake_memo:
            return fake_memo[memo_key]
        feats = feature_utils.generator_features(G, extractor, spec.num_gen, label_sampler=label_sampler, batch_size=batch_size,
                                                 seed=seed, device=device, rank=rank, num_gpus=num_gpus, G_kwargs=G_kwargs,
                                                 progress=progress, desc=f'{metric} fakes{"" if tag == "full" else " " + tag}')
        if fake_memo is not None:
            fake_memo[memo_key] = feats
        return feats

    results = dict()
    if spec.split == 'full':
        gen_feats = fakes(feature_utils.DatasetLabelSampler(dataset, seed=seed) if G.c_dim > 0 else None, 'full')
        if spec.kind == 'fid':
            results[metric] = frechet.frechet_distance_from_features(gen_feats, real_feats)
        else:  # NVIDIA's kid*_full: 100 subsets of at most 1000 features
            results[metric] = frechet.kernel_distance(gen_feats, real_feats, num_subsets=100, max_subset_size=1000, seed=seed)
    else:
        names = list(getattr(dataset, 'domain_names', None) or [str(k) for k in range(G.c_dim)])
        per_domain = []
        for k in range(G.c_dim):
            reals_k = real_feats[real_labels == k]
            if len(reals_k) < 2:
                raise ValueError(f'domain {names[k]!r} has {len(reals_k)} real images; {metric} needs at least 2 per domain')
            value = frechet.frechet_distance_from_features(fakes(feature_utils.fixed_label_sampler(G.c_dim, k), f'domain{k}'), reals_k)
            results[f'{metric}_{names[k]}'] = value
            per_domain.append(value)
        results = {metric: float(np.mean(per_domain)), **results}  # mean over domains first

    total_time = time.time() - start
    return dnnlib.EasyDict(
        results          = dnnlib.EasyDict({metric_label(k, extractor.name): float(v) for k, v in results.items()}),
        metric           = metric_label(metric, extractor.name),
        total_time       = total_time,
        total_time_str   = dnnlib.util.format_time(total_time),
        num_gpus         = num_gpus,
        mode             = mode if extractor.name == INCEPTION_NAME else extractor.resize_mode,
        reference        = reference,
        num_images       = spec.num_gen,
        num_reals        = int(len(real_feats)),
        feature_extractor= extractor.name,
    )

#----------------------------------------------------------------------------

def _reals(dataset_kwargs, G, spec):
    """Reals as NVIDIA's *_full metrics read them: every image, no x-flips; labels for conditional G and per-domain splits."""
    dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
    dataset_kwargs.update(max_size=None, xflip=False)
    if spec.split == 'domain' or G.c_dim > 0:
        dataset_kwargs.use_labels = True
    dataset = allowlist.construct('dataset', dataset_kwargs, 'the dataset settings')
    if int(dataset.resolution) != int(G.img_resolution):
        raise ValueError(f'the generator makes {G.img_resolution}x{G.img_resolution} images but the dataset holds '
                         f'{dataset.resolution}x{dataset.resolution}: pass --data of the resolution the network was trained on')
    return dataset_kwargs, dataset


def _calc_nvidia_metric(metric, spec, G, dataset_kwargs, num_gpus, rank, device, start, progress, batch_size, seed, cache, cache_dir,
                        num_workers, G_kwargs, weight_paths, allow_download):
    """pr50k3_full, is50k, ppl*: NVIDIA's definitions with NVIDIA's VGG16 / Inception files (mode 'nvidia')."""
    from . import inception_score, perceptual_path_length, precision_recall
    from .vgg16 import VGG16Features
    dataset_kwargs, dataset = _reals(dataset_kwargs, G, spec)
    (needed,) = required_weights(metric)
    path = weights.find(needed, weight_paths[needed.key], allow_download=allow_download)
    if spec.kind == 'is':
        extractor = _memo(('is', path, str(device)), lambda: InceptionProbabilities(device=device, path=path, spec=needed))
    else:
        extractor = _memo(('vgg16', path, str(device)), lambda: VGG16Features(needed, device=device, path=path))
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    labels = feature_utils.DatasetLabelSampler(dataset, seed=seed) if G.c_dim > 0 else None
    fake_kwargs = dict(label_sampler=labels, batch_size=batch_size, seed=seed, device=device, rank=rank, num_gpus=num_gpus,
                       G_kwargs=G_kwargs, progress=progress, desc=f'{metric} fakes')
    reference, num_reals = dict(path=os.path.abspath(dataset_kwargs.path) if dataset_kwargs.get('path') else None, hash=None), 0
    if spec.kind == 'is':
        probs = feature_utils.generator_features(G, extractor, spec.num_gen, **fake_kwargs)
        mean, std = inception_score.inception_score(probs, spec.num_splits)
        results = {f'{metric}_mean': mean, f'{metric}_std': std}
    elif spec.kind == 'pr':
        real_feats, _labels, reference = reference_features(dataset, dataset_kwargs, extractor, num_gpus=num_gpus, rank=rank, device=device,
            use_cache=cache, cache_dir=cache_dir, batch_size=batch_size, num_workers=num_workers, progress=progress, max_items=spec.max_real)
        gen_feats = feature_utils.generator_features(G, extractor, spec.num_gen, **fake_kwargs)
        precision, recall = precision_recall.precision_recall(real_feats, gen_feats, spec.nhood_size, device=device)
        results, num_reals = {f'{metric}_precision': precision, f'{metric}_recall': recall}, len(real_feats)
    else:
        results = {metric: perceptual_path_length.perceptual_path_length(_path_distances(G, extractor, spec, labels, batch_size, seed, device, rank, num_gpus, progress, metric))}
    total_time = time.time() - start
    return dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time, total_time_str=dnnlib.util.format_time(total_time),
                           num_gpus=num_gpus, mode='nvidia', reference=reference, num_images=spec.num_gen, num_reals=num_reals,
                           feature_extractor=extractor.name)


def _path_distances(G, vgg16, spec, labels, batch_size, seed, device, rank, num_gpus, progress, desc):
    """This rank's share of the PPL samples (seeded per rank), gathered from all ranks."""
    from .perceptual_path_length import path_distances
    per_rank = (spec.num_gen - rank + num_gpus - 1) // num_gpus
    gen = torch.Generator(device).manual_seed(seed * 1000003 + rank)
    if labels is not None:
        labels.rnd = np.random.RandomState(seed * 1000003 + rank)
    out, done = [], 0
    with tqdm.tqdm(total=per_rank, desc=desc, disable=(not progress or rank != 0), unit='img') as bar:
        while done < per_rank:
            n = min(batch_size, per_rank - done)
            c = torch.from_numpy(labels(n)).to(device) if labels is not None else torch.zeros([n, G.c_dim], device=device)
            with torch.no_grad():
                out.append(path_distances(G, vgg16, c, spec.epsilon, spec.space, spec.sampling, spec.crop, generator=gen))
            done += n
            bar.update(n)
    return feature_utils.gather_rows(np.concatenate(out), num_gpus)[:spec.num_gen]

#----------------------------------------------------------------------------

_swap_probe_memo = dict()  # dataset fingerprint -> probe: scoring many snapshots trains the probe once

def _calc_swap_metric(metric, spec, G, dataset_kwargs, device, start, num_gpus, progress=True):
    from . import swap
    say = (lambda text: print(f'{metric}: {text}', flush=True)) if progress else (lambda text: None)
    dataset_kwargs = dnnlib.EasyDict(dataset_kwargs, max_size=None, xflip=False, use_labels=True)
    dataset = allowlist.construct('dataset', dataset_kwargs, 'the dataset settings')
    if G.c_dim == 0 or dataset.label_dim != G.c_dim:
        raise ValueError(f'{metric} needs a conditional generator and a dataset with the same number of domains '
                         f'(generator c_dim={G.c_dim}, dataset label_dim={dataset.label_dim})')
    path = dataset_kwargs.get('path')
    key = (cache.dataset_fingerprint(path) if path and os.path.exists(path) else id(dataset), str(device))
    if key not in _swap_probe_memo:
        say(f'training the probe on the {len(dataset)} reals (once per data set; tens of seconds on a CPU) ...')
        _swap_probe_memo[key] = swap.train_swap_probe(dataset, device=device)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    say(f'rendering {spec.num_gen} latents in each of the {G.c_dim} domains and judging them ...')
    results = swap.calc_swap_metrics(G, dataset, num_samples=spec.num_gen, device=device, probe=_swap_probe_memo[key])
    results = {k: float(v) for k, v in results.items() if isinstance(v, (int, float, np.floating)) and k not in ('num_samples', 'num_domains')}
    total_time = time.time() - start
    return dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time,
                           total_time_str=dnnlib.util.format_time(total_time), num_gpus=num_gpus, mode=None,
                           reference=dict(path=os.path.abspath(path) if path else None, hash=key[0] if path else None),
                           num_images=spec.num_gen * G.c_dim, num_reals=len(dataset), feature_extractor='swap-probe')

#----------------------------------------------------------------------------

def fetch_weights(metrics, inception=None, vgg16=None):
    """Download the weight files `metrics` need when missing (online only); errors are left for calc_metric to raise."""
    paths = dict(inception=inception, vgg16=vgg16)
    for spec in {spec for metric in metrics for spec in required_weights(metric)}:
        try:
            weights.find(spec, paths[spec.key], allow_download=True)
        except MetricUnavailableError:
            pass


MODE_NOTES = dict(clean="clean-fid's resize; not comparable with published FIDs, which use legacy_tensorflow",
                  legacy_tensorflow="NVIDIA's / TensorFlow's resize, comparable with published FIDs",
                  nvidia="NVIDIA's protocol, comparable with published numbers")

def format_result(result_dict) -> str:
    """One human line per result naming the metric and its mode, e.g. 'fid50k_full: fid50k_full 12.3 (mode clean: ...)'."""
    values = ', '.join(f'{k} {v:.4g}' for k, v in result_dict['results'].items())
    mode = result_dict.get('mode')
    note = f' (mode {mode}: {MODE_NOTES[mode]})' if mode in MODE_NOTES else (f' (mode {mode})' if mode else '')
    return f'{result_dict["metric"]}: {values}{note} [{result_dict["total_time_str"]}]'


def report_metric(result_dict, run_dir=None, snapshot_pkl=None, verbose=True):
    """Append the result as one JSON line to <run_dir>/metric-<metric>.jsonl (NVIDIA's record shape plus ours)."""
    metric = result_dict['metric']
    if snapshot_pkl is not None and run_dir is not None and os.path.dirname(os.path.abspath(snapshot_pkl)) == os.path.abspath(run_dir):
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    record = dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time())
    line = json.dumps(record)
    if verbose:
        print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(line + '\n')  # one write per line: concurrent appends do not interleave
    return record

#----------------------------------------------------------------------------
