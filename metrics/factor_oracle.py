"""Oracle factor model: a small CNN trained on the real images of a data set with known factors
(builtin:shapes, K-colour MNIST) to read every ground-truth factor back from an image.

Factor coding (one head each): a factor with <= 16 distinct values is a class (cross-entropy); `hue` is
circular with period 1 (regressed as cos, sin of 2 pi hue); any other factor is a real number
(standardised, squared error). `rotation` is left out: its period depends on the shape (circle: none,
square: pi/2, triangle: 2 pi / 3), so it is not a function of the image. Kinds come from the data set's
`factor_kinds`; without them (K-colour MNIST: `class`) every factor is content.

The oracle trains on 80 % of up to `max_images` reals and is scored on the other 20 % (`scores`:
accuracy for classes, R^2 for reals, R^2 and mean absolute circular error for hue). It keeps what the
ground-truth metrics compare fakes with: the penultimate features of the held-out reals and, per
domain, the 1st-99th percentile range of every style factor of all reals read (ground truth).
`load_or_train` caches it under <cache>/factor-oracle/, keyed by the data set's content hash and the
training settings; the file is read with torch.load(weights_only=True) and every size is checked.
"""
import hashlib
import json
import os

import numpy as np
import torch
import tqdm

import dnnlib
from . import cache as cache_utils

CIRCULAR_FACTORS = ('hue',)           # period 1
SKIPPED_FACTORS = ('rotation',)       # period depends on the shape: not readable from an image
MAX_CLASSES = 16
RECOGNISED_CONFIDENCE = 0.9        # an image shows class c when the oracle gives c at least this probability
TYPICAL_QUANTILE = 99              # ... and its features are as typical as this percentile of held-out reals
MAX_FACTORS = 32
ORACLE_VERSION = 3
DEFAULTS = dict(max_images=10000, steps=1500, batch_size=64, lr=2e-3, width=16, features=128)

#----------------------------------------------------------------------------

class OracleNet(torch.nn.Module):
    """Two small CNN branches, each ending in FC features, and a linear head per factor. Classes read
    the pooled branch (conv-conv-pool-conv-pool: shift-tolerant shape evidence); real numbers read the
    strided branch, which also sees two coordinate channels (positions). Apart, because with shared
    features the regressions starve the classifier."""
    def __init__(self, channels, resolution, head_sizes, head_branch, width, features):
        super().__init__()
        self.splits, self.head_branch = list(head_sizes), list(head_branch)
        self.branches = torch.nn.ModuleDict({str(k): _branch(k, channels, resolution, width, features) for k in sorted(set(head_branch))})
        self.heads = torch.nn.ModuleList(torch.nn.Linear(features, n) for n in head_sizes)

    def forward(self, x):
        """x: float [-1, 1] NCHW -> (features [N, branches * F], list of head outputs)."""
        feats = {k: b(x) for k, b in self.branches.items()}
        return torch.cat(list(feats.values()), dim=1), [h(feats[str(b)]) for h, b in zip(self.heads, self.head_branch)]


class _MinusBackground(torch.nn.Module):
    """x - its per-image, per-channel median (the background: every shape covers under half the image);
    keep=True also passes x through."""
    def __init__(self, keep=False):
        super().__init__()
        self.keep = keep

    def forward(self, x):
        d = x - x.flatten(2).median(dim=2).values[:, :, None, None]
        return torch.cat([x, d], dim=1) if self.keep else d


class _Coordinates(torch.nn.Module):
    def forward(self, x):
        n, _, h, w = x.shape
        gy, gx = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device), indexing='ij')
        return torch.cat([x, gx.expand(n, 1, h, w), gy.expand(n, 1, h, w)], dim=1)


def _branch(kind, channels, resolution, width, features):
    """kind 0: pooled branch; kind 1: strided branch with coordinate channels (class docstring)."""
    act = torch.nn.ReLU if kind == 0 else lambda: torch.nn.LeakyReLU(0.2)
    down = (lambda i, o: [torch.nn.Conv2d(i, o, 3, padding=1), act(), torch.nn.MaxPool2d(2)]) if kind == 0 else \
           (lambda i, o: [torch.nn.Conv2d(i, o, 3, stride=2, padding=1), act()])
    layers, c, r = ([_MinusBackground()], channels, resolution) if kind == 0 else ([_MinusBackground(keep=True), _Coordinates()], 2 * channels + 2, resolution)
    while r > 16:
        layers += down(c, width)
        c, r = width, r // 2
    layers += [torch.nn.Conv2d(c, width, 3, padding=1), act()] + down(width, width) + down(width, 2 * width)
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(2 * width * (r // 4) ** 2, features), act())

#----------------------------------------------------------------------------

def to_float(img):
    """uint8 [0, 255] or float [-1, 1] NCHW -> float32 [-1, 1]."""
    return img.to(torch.float32) / 127.5 - 1 if img.dtype == torch.uint8 else img.to(torch.float32).clamp(-1, 1)


def circular_offset(values, centre):
    """Signed difference on the circle of period 1, in [-0.5, 0.5)."""
    return np.mod(np.asarray(values, np.float64) - centre + 0.5, 1.0) - 0.5


def circular_mean(values):
    a = 2 * np.pi * np.asarray(values, np.float64)
    return float(np.mod(np.arctan2(np.sin(a).mean(), np.cos(a).mean()) / (2 * np.pi), 1.0))

#----------------------------------------------------------------------------

class FactorOracle:
    """A trained oracle. `factors`: list of dicts name, kind ('content' | 'style'), type ('class' |
    'circular' | 'real'), values (classes) or mean/std (reals); `meta`: everything else (JSON-able)."""

    def __init__(self, net, factors, meta, real_features, real_mean, real_precision, device='cpu'):
        self.net, self.factors, self.meta = net.eval().requires_grad_(False), factors, meta
        self.real_features = real_features      # float32 [N_heldout, F]: penultimate features of held-out reals
        self.real_mean, self.real_precision = real_mean, real_precision   # Gaussian of the training reals' features
        self.device = torch.device(device)
        self.net.to(self.device)

    scores = property(lambda self: dict(self.meta['scores']))
    resolution = property(lambda self: int(self.meta['resolution']))
    num_domains = property(lambda self: int(self.meta['num_domains']))

    def typical(self, features):
        """Bool per feature row: its Mahalanobis distance to the training reals' features is within the
        TYPICAL_QUANTILE of the held-out reals' distances (images unlike the reals fail)."""
        return mahalanobis2(features, self.real_mean, self.real_precision) <= float(self.meta['typical_threshold'])

    def names(self, kind=None):
        return [f['name'] for f in self.factors if kind is None or f['kind'] == kind]

    @torch.no_grad()
    def predict(self, img, batch_size=256):
        """Images (uint8 or [-1, 1], NCHW, the oracle's resolution) -> (features float32 [N, F],
        {factor: value per image (class values for classes, hue in [0, 1))}, {class factor: probabilities [N, C]})."""
        if img.ndim != 4 or img.shape[-1] != self.resolution or img.shape[-2] != self.resolution:
            raise ValueError(f'the oracle reads {self.resolution}x{self.resolution} images, got shape {list(img.shape)}')
        feats, outs = [], [[] for _ in self.factors]
        for start in range(0, len(img), batch_size):
            f, o = self.net(to_float(img[start:start + batch_size]).to(self.device))
            feats.append(f.cpu())
            for lst, t in zip(outs, o):
                lst.append(t.cpu())
        values, probs = {}, {}
        for spec, lst in zip(self.factors, outs):
            out = torch.cat(lst).to(torch.float64)
            if spec['type'] == 'class':
                probs[spec['name']] = torch.softmax(out, dim=1).numpy()
                values[spec['name']] = np.asarray(spec['values'], np.float64)[out.argmax(1).numpy()]
            elif spec['type'] == 'circular':
                values[spec['name']] = np.mod(torch.atan2(out[:, 1], out[:, 0]).numpy() / (2 * np.pi), 1.0)
            else:
                values[spec['name']] = out[:, 0].numpy() * spec['std'] + spec['mean']
        return torch.cat(feats).numpy(), values, probs

#----------------------------------------------------------------------------

def read_reals(dataset, max_images, seed, progress=False):
    """(uint8 images [N, C, H, W], domains int64 [N], factors float64 [N, F]) of up to max_images
    reals in a seeded random order."""
    if not getattr(dataset, 'has_factors', bool(getattr(dataset, 'factor_names', None))):
        raise ValueError(f'Dataset "{getattr(dataset, "name", "?")}" stores no ground-truth factors; the ground-truth '
                         'metrics need one built with known factors, e.g. dataset_tool.py --source=builtin:shapes.')
    order = np.random.RandomState(seed).permutation(len(dataset))[:max_images]
    imgs, doms, facs = [], [], []
    for i in tqdm.tqdm(order, desc='oracle reals', leave=False, disable=not progress):
        img, label = dataset[int(i)]
        label = np.asarray(label)
        imgs.append(np.asarray(img))
        doms.append(int(label.argmax()) if label.ndim == 1 and label.size > 1 else 0)
        facs.append(np.asarray(dataset.get_factors(int(i)), np.float64))
    return torch.from_numpy(np.stack(imgs)), np.array(doms, np.int64), np.stack(facs)


def factor_specs(names, kinds, facs):
    """Head specification of every readable factor (module docstring)."""
    if len(names) > MAX_FACTORS or len(names) != facs.shape[1]:
        raise ValueError(f'the data set lists {len(names)} factor names for {facs.shape[1]} values per image (at most {MAX_FACTORS}); rebuild it with dataset_tool.py')
    style = set((kinds or {}).get('style', []))
    specs = []
    for j, name in enumerate(names):
        if not (isinstance(name, str) and name.isidentifier() and len(name) <= 32):
            raise ValueError(f'factor name {str(name)[:40]!r} in the data set is not a short identifier; rebuild it with dataset_tool.py')
        if name in SKIPPED_FACTORS:
            continue
        v = facs[:, j]
        spec = dict(name=str(name), column=j, kind='style' if name in style else 'content')
        uniq = np.unique(v)
        if name in CIRCULAR_FACTORS:
            spec.update(type='circular')
        elif len(uniq) <= MAX_CLASSES:
            spec.update(type='class', values=[float(u) for u in uniq])
        else:
            spec.update(type='real', mean=float(v.mean()), std=float(max(v.std(), 1e-8)))
        specs.append(spec)
    return specs


def _losses(outs, specs, targets):
    total = 0
    for o, spec, t in zip(outs, specs, targets):
        if spec['type'] == 'class':
            total = total + torch.nn.functional.cross_entropy(o, t)
        else:
            total = total + torch.nn.functional.mse_loss(o, t)
    return total


def _targets(specs, facs):
    out = []
    for spec in specs:
        v = facs[:, spec['column']]
        if spec['type'] == 'class':
            out.append(torch.as_tensor(np.searchsorted(np.asarray(spec['values']), v), dtype=torch.int64))
        elif spec['type'] == 'circular':
            out.append(torch.as_tensor(np.stack([np.cos(2 * np.pi * v), np.sin(2 * np.pi * v)], 1), dtype=torch.float32))
        else:
            out.append(torch.as_tensor((v - spec['mean']) / spec['std'], dtype=torch.float32)[:, None])
    return out


def held_out_scores(oracle, imgs, facs):
    """Accuracy (classes), R^2 (reals; hue on the circle) and hue's mean absolute circular error."""
    _feats, values, _probs = oracle.predict(imgs)
    scores = {}
    for spec in oracle.factors:
        true, pred = facs[:, spec['column']], values[spec['name']]
        name = spec['name']
        if spec['type'] == 'class':
            scores[f'oracle_{name}_acc_real'] = float(np.mean(pred == true))
        elif spec['type'] == 'circular':
            err = circular_offset(pred, true)
            spread = circular_offset(true, circular_mean(true))
            scores[f'oracle_{name}_r2_real'] = float(1 - np.mean(err ** 2) / max(np.mean(spread ** 2), 1e-12))
            scores[f'oracle_{name}_mae_real'] = float(np.mean(np.abs(err)))
        else:
            scores[f'oracle_{name}_r2_real'] = float(1 - np.mean((pred - true) ** 2) / max(np.var(true), 1e-12))
    return scores


def style_ranges(specs, doms, facs, num_domains):
    """{style factor: [[lo, hi] per domain]} from the reals' 1st-99th percentiles (hue: [centre, lo, hi] offsets)."""
    ranges = {}
    for spec in specs:
        if spec['kind'] != 'style':
            continue
        rows = []
        for k in range(num_domains):
            v = facs[doms == k, spec['column']]
            if len(v) < 2:
                raise ValueError(f'domain {k} has {len(v)} real images with factors; the style ranges need at least 2 per domain')
            if spec['type'] == 'circular':
                c = circular_mean(v)
                rows.append([c] + [float(q) for q in np.percentile(circular_offset(v, c), [1, 99])])
            else:
                rows.append([float(q) for q in np.percentile(v, [1, 99])])
        ranges[spec['name']] = rows
    return ranges


def train_oracle(dataset, device='cpu', seed=0, progress=True, **settings):
    """Train an oracle on `dataset` (anything with __len__, __getitem__ -> (uint8 CHW, one-hot label),
    factor_names, get_factors; factor_kinds and num_domains optional). settings: see DEFAULTS."""
    s = dnnlib.EasyDict(DEFAULTS, **settings)
    device = torch.device(device)
    imgs, doms, facs = read_reals(dataset, int(s.max_images), seed, progress)
    if len(imgs) < 10:
        raise ValueError(f'the data set has {len(imgs)} images; the oracle needs at least 10')
    resolution = int(imgs.shape[-1])
    if not (16 <= resolution <= 1024 and imgs.shape[-2] == resolution):
        raise ValueError(f'the oracle reads square images of 16 to 1024 pixels, not {list(imgs.shape[-2:])}')
    specs = factor_specs(list(dataset.factor_names), getattr(dataset, 'factor_kinds', None), facs)
    num_domains = max(int(getattr(dataset, 'num_domains', 0) or 0), int(doms.max()) + 1)
    n_tr = len(imgs) - max(1, len(imgs) // 5)
    train_specs = [dict(sp, **({'mean': float(facs[:n_tr, sp['column']].mean()), 'std': float(max(facs[:n_tr, sp['column']].std(), 1e-8))}
                               if sp['type'] == 'real' else {})) for sp in specs]
    head_sizes = [len(sp['values']) if sp['type'] == 'class' else 2 if sp['type'] == 'circular' else 1 for sp in train_specs]
    head_branch = [int(sp['type'] != 'class') for sp in train_specs]      # 0: pooled branch, 1: strided branch
    x_all = to_float(imgs)
    targets = _targets(train_specs, facs)
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)
        net = OracleNet(imgs.shape[1], resolution, head_sizes, head_branch, width=int(s.width), features=int(s.features)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=float(s.lr))
        decay = max(1, int(s.steps) // 5)                            # constant, then linear to 0 over the last fifth
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (int(s.steps) - i) / decay))
        gen = torch.Generator().manual_seed(seed)
        for _ in tqdm.trange(int(s.steps), desc='oracle training', leave=False, disable=not progress):
            b = torch.randint(0, n_tr, [min(int(s.batch_size), n_tr)], generator=gen)
            _f, outs = net(x_all[b].to(device))
            loss = _losses(outs, train_specs, [t[b].to(device) for t in targets])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    meta = dict(version=ORACLE_VERSION, resolution=resolution, channels=int(imgs.shape[1]), num_domains=num_domains,
                head_sizes=head_sizes, head_branch=head_branch, settings=dict(s), seed=int(seed), num_train=int(n_tr), num_heldout=int(len(imgs) - n_tr),
                style_ranges=style_ranges(train_specs, doms, facs, num_domains), class_names=class_names(dataset, train_specs))
    oracle = FactorOracle(net, train_specs, meta, None, None, None, device)
    feats, values, probs = oracle.predict(imgs[n_tr:])
    oracle.real_features = feats
    oracle.real_mean, oracle.real_precision = feature_gaussian(oracle.predict(imgs[:min(n_tr, 4000)])[0])
    meta['typical_threshold'] = float(np.percentile(mahalanobis2(feats, oracle.real_mean, oracle.real_precision), TYPICAL_QUANTILE))
    meta['scores'] = held_out_scores(oracle, imgs[n_tr:], facs[n_tr:])
    meta['real_recognised'] = {name: recognised_shares(p, oracle.typical(feats)) for name, p in probs.items()}
    ok, held_doms = np.ones(len(feats), bool), doms[n_tr:]
    for spec in (sp for sp in train_specs if sp['kind'] == 'style'):
        for k in range(num_domains):
            sel = held_doms == k
            ok[sel] &= in_style_range(spec, meta['style_ranges'], values[spec['name']][sel], k)
    meta['real_in_range'] = float(ok.mean())
    return oracle


def in_style_range(spec, ranges, values, domain):
    """Whether style factor values (array or scalar) lie in the domain's range from `style_ranges`."""
    row = ranges[spec['name']][int(domain)]
    if spec['type'] == 'circular':
        off = circular_offset(values, row[0])
        return (off >= row[1]) & (off <= row[2])
    return (values >= row[0]) & (values <= row[1])


def recognised_shares(probs, typical):
    """Per class c: share of images whose top class is c with probability >= RECOGNISED_CONFIDENCE and
    whose `typical` flag (FactorOracle.typical) is set."""
    top = probs.argmax(1)
    sure = (probs.max(1) >= RECOGNISED_CONFIDENCE) & typical
    return [float(np.mean(sure & (top == c))) for c in range(probs.shape[1])]


def feature_gaussian(features):
    """(mean, precision) float32 of features [N, D], the covariance ridged by 1e-3 of its mean variance."""
    x = np.asarray(features, np.float64)
    cov = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros([x.shape[1]] * 2)
    cov += np.eye(len(cov)) * 1e-3 * max(float(np.trace(cov)) / len(cov), 1e-8)
    return x.mean(0).astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def mahalanobis2(features, mean, precision):
    d = np.asarray(features, np.float64) - mean
    return np.einsum('nd,de,ne->n', d, precision.astype(np.float64), d)


def class_names(dataset, specs):
    """{class factor: [name per class]}: the built-in sets' shape names, else the class values."""
    meta = getattr(dataset, '_meta', None) or {}
    out = {}
    for spec in specs:
        if spec['type'] != 'class':
            continue
        names = [f'{v:g}' for v in spec['values']]
        stored = meta.get('shapes') if spec['name'] == 'shape' else None
        if isinstance(stored, list) and len(stored) >= len(names) and all(isinstance(n, str) and n.isidentifier() and len(n) <= 32 for n in stored) \
                and all(float(v).is_integer() and 0 <= v < len(stored) for v in spec['values']):
            names = [stored[int(v)] for v in spec['values']]
        out[spec['name']] = names
    return out

#----------------------------------------------------------------------------

def _check_meta(meta, state):
    """Raise ValueError unless a cached oracle is self-consistent and of bounded size."""
    sizes, branch = meta['head_sizes'], meta['head_branch']
    if not (isinstance(sizes, list) and 0 < len(sizes) <= MAX_FACTORS and all(isinstance(n, int) and 1 <= n <= MAX_CLASSES for n in sizes)):
        raise ValueError('bad head sizes')
    if not (isinstance(branch, list) and len(branch) == len(sizes) and all(b in (0, 1) for b in branch)):
        raise ValueError('bad head branches')
    if not (16 <= int(meta['resolution']) <= 1024 and int(meta['channels']) in (1, 3) and 1 <= int(meta['num_domains']) <= 256):
        raise ValueError('bad image geometry')
    s = meta['settings']
    if not (8 <= int(s['width']) <= 256 and 8 <= int(s['features']) <= 1024):
        raise ValueError('bad network width')
    net = OracleNet(int(meta['channels']), int(meta['resolution']), sizes, branch, width=int(s['width']), features=int(s['features']))
    expected = net.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(v.shape) or state[k].dtype != v.dtype for k, v in expected.items()):
        raise ValueError('weights do not fit the network')
    return net


def _check_factors(meta, factors):
    """Raise ValueError unless the cached factor list fits the heads and the per-factor tables."""
    ok = isinstance(factors, list) and len(factors) == len(meta['head_sizes'])
    for spec, size in zip(factors if ok else [], meta['head_sizes']):
        kind, typ = spec.get('kind'), spec.get('type')
        ok &= isinstance(spec.get('name'), str) and spec['name'].isidentifier() and kind in ('content', 'style') and isinstance(spec.get('column'), int)
        if typ == 'class':
            names = meta['class_names'].get(spec['name'])
            ok &= len(spec['values']) == size and isinstance(names, list) and len(names) == size and len(meta['real_recognised'][spec['name']]) == size
        elif typ in ('circular', 'real'):
            ok &= size == (2 if typ == 'circular' else 1) and (typ == 'circular' or (float(spec['std']) > 0 and np.isfinite(float(spec['mean']))))
        else:
            ok = False
        if ok and kind == 'style':
            rows = meta['style_ranges'][spec['name']]
            ok &= len(rows) == int(meta['num_domains']) and all(len(r) == (3 if typ == 'circular' else 2) for r in rows)
    if not ok:
        raise ValueError('factor table does not fit the heads')


def save_oracle(oracle, path):
    blob = dict(state=oracle.net.state_dict(), real_features=torch.from_numpy(oracle.real_features),
                real_mean=torch.from_numpy(oracle.real_mean), real_precision=torch.from_numpy(oracle.real_precision),
                meta=json.dumps(oracle.meta), factors=json.dumps(oracle.factors))
    with dnnlib.util.atomic_write(path) as f:
        torch.save(blob, f)


def load_oracle(path, device='cpu'):
    """The oracle saved at `path`, or None when the file is absent, unreadable or inconsistent."""
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
        meta, factors = json.loads(blob['meta']), json.loads(blob['factors'])
        net = _check_meta(meta, blob['state'])
        feats, mean, prec = blob['real_features'], blob['real_mean'], blob['real_precision']
        d = int(meta['settings']['features']) * len(set(meta['head_branch']))
        if len(factors) != len(meta['head_sizes']) or feats.ndim != 2 or feats.shape[1] != d or tuple(mean.shape) != (d,) or \
                tuple(prec.shape) != (d, d) or any(t.dtype != torch.float32 for t in (feats, mean, prec)):
            raise ValueError('features do not fit the network')
        float(meta['typical_threshold'])
        _check_factors(meta, factors)
        net.load_state_dict(blob['state'])
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, __import__('pickle').UnpicklingError):
        return None
    return FactorOracle(net, factors, meta, feats.numpy(), mean.numpy(), prec.numpy(), device)


def load_or_train(dataset, device='cpu', seed=0, cache_dir=None, progress=True, **settings):
    """The oracle of `dataset` (a path to a zip/folder, or a dataset object), from the cache when the
    data set's content, the settings and the seed match, else trained and cached. Objects without a
    `_path` on disk are never cached. Prints the held-out scores when it trains."""
    from training.dataset import ImageFolderDataset
    if isinstance(dataset, (str, os.PathLike)):
        dataset = ImageFolderDataset(path=str(dataset), use_labels=True)
    path = getattr(dataset, '_path', None)
    file = None
    if path is not None and os.path.exists(path):
        key = dict(fingerprint=cache_utils.dataset_fingerprint(path), seed=int(seed), version=ORACLE_VERSION,
                   settings=dict(DEFAULTS, **settings))
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode('utf-8')).hexdigest()[:20]
        stem = os.path.splitext(os.path.basename(str(path).rstrip('/\\')))[0] or 'dataset'
        file = os.path.join(cache_dir or dnnlib.util.make_cache_dir_path('factor-oracle'), f'{stem}-{digest}.pt')
        oracle = load_oracle(file, device) if os.path.isfile(file) else None
        if oracle is not None:
            return oracle
    oracle = train_oracle(dataset, device=device, seed=seed, progress=progress, **settings)
    oracle.meta['fingerprint'] = key['fingerprint'] if file is not None else None
    if progress:
        print('Factor oracle, held-out reals: ' + ', '.join(f'{k[7:-5]} {v:.3f}' for k, v in oracle.scores.items()), flush=True)
    if file is not None:
        save_oracle(oracle, file)
    return oracle

#----------------------------------------------------------------------------
