"""Feature extractors and the loops that feed them real (dataset) and fake (generator) images.

Interface (what any network must offer to stand in for Inception): an object with
    name         str, the label printed with every number it produces ("fd..@name", never "FID")
    resize_mode  'clean' | 'legacy_tensorflow' | None: clean-fid's preprocessing applied to the
                 images before the call ('clean': PIL bicubic to 299x299 without quantisation;
                 'legacy_tensorflow' and None: images at their own resolution)
    __call__(images) -> [N, D] features, images a float32 tensor [N, 3, H, W] with values in [0, 255].
Any callable that works as clean-fid's `custom_feat_extractor` works here when wrapped in
`CustomFeatureExtractor(fn, name, resize_mode='clean')`.
"""
import concurrent.futures
import os

import numpy as np
import torch
import tqdm

#----------------------------------------------------------------------------

class FeatureExtractor:
    """Base class; see the module docstring for the contract."""
    name: str = 'features'
    resize_mode: str = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class CustomFeatureExtractor(FeatureExtractor):
    """Wrap any callable (an nn.Module, a clean-fid custom_feat_extractor) as a named extractor."""

    def __init__(self, fn, name: str, resize_mode: str = 'clean', device='cpu'):
        if not name or name.lower().startswith('inception'):
            raise ValueError('a custom feature extractor needs its own name (not "inception...")')
        self.fn, self.name, self.resize_mode, self.device = fn, name, resize_mode, torch.device(device)
        if isinstance(fn, torch.nn.Module):
            self.fn = fn.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()
    def __call__(self, images):
        return self.fn(images.to(self.device))


class RandomConvFeatureExtractor(FeatureExtractor):
    """A fixed random conv net (seeded) at native resolution: cheap features for CPU smoke runs and tests.

    Its numbers are not FID and are labelled `@random-conv`; use them to see a metric pipeline run, not
    to rank models."""

    def __init__(self, device='cpu', seed: int = 0, channels: int = 32):
        gen = torch.Generator().manual_seed(seed)
        w1 = torch.randn([channels, 3, 3, 3], generator=gen) / np.sqrt(27)
        w2 = torch.randn([channels * 2, channels, 3, 3], generator=gen) / np.sqrt(channels * 9)
        self.device = torch.device(device)
        self.weights = [w1.to(self.device), w2.to(self.device)]
        self.name, self.resize_mode, self.feature_dim = f'random-conv{seed}' if seed else 'random-conv', None, channels * 3

    @torch.no_grad()
    def __call__(self, images):
        x = images.to(self.device, torch.float32) / 127.5 - 1
        h1 = torch.nn.functional.conv2d(x, self.weights[0], padding=1, stride=2).relu()
        h2 = torch.nn.functional.conv2d(h1, self.weights[1], padding=1, stride=2).relu()
        return torch.cat([h1.mean([2, 3]), h2.mean([2, 3])], dim=1)

#----------------------------------------------------------------------------

_pool = None

def _thread_pool():
    global _pool
    if _pool is None:  # PIL's resize releases the GIL, so threads resize in parallel
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    return _pool


def prepare_images(images: torch.Tensor, resize_mode: str = None) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 3, H', W'] in [0, 255], resized the way clean-fid does for `resize_mode`."""
    if images.dtype != torch.uint8:
        raise TypeError(f'expected uint8 images, got {images.dtype}')
    if images.shape[1] == 1:
        images = images.repeat([1, 3, 1, 1])
    if images.shape[1] != 3:
        raise ValueError(f'expected 1 or 3 image channels, got {images.shape[1]}')
    if resize_mode in (None, 'legacy_tensorflow'):  # clean-fid leaves these to the network
        return images.to(torch.float32)
    from cleanfid.resize import build_resizer
    resize = build_resizer(resize_mode)
    arrays = images.permute(0, 2, 3, 1).cpu().numpy()
    out = list(_thread_pool().map(lambda a: np.asarray(resize(a), dtype=np.float32), arrays))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def extract(extractor, images_uint8: torch.Tensor) -> np.ndarray:
    feats = extractor(prepare_images(images_uint8, extractor.resize_mode))
    return torch.as_tensor(feats).detach().to(torch.float32).reshape(images_uint8.shape[0], -1).cpu().numpy()

#----------------------------------------------------------------------------

def gather_rows(local: np.ndarray, num_gpus: int, order: str = 'interleave') -> np.ndarray:
    """All ranks' rows, on every rank. 'interleave': rank r held rows r, r+G, ...; 'concat': blocks in rank order."""
    if num_gpus == 1:
        return local
    import torch.distributed as dist
    device = torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else torch.device('cpu')
    t = torch.from_numpy(np.ascontiguousarray(local)).to(device)
    count = torch.tensor([t.shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(num_gpus)]
    dist.all_gather(counts, count)
    n_max = int(max(c.item() for c in counts))
    padded = torch.zeros([n_max, *t.shape[1:]], dtype=t.dtype, device=device)
    padded[:t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(num_gpus)]
    dist.all_gather(parts, padded)
    parts = [p[:int(c.item())].cpu().numpy() for p, c in zip(parts, counts)]
    if order == 'concat':
        return np.concatenate(parts)
    out = np.zeros([sum(len(p) for p in parts), *local.shape[1:]], dtype=local.dtype)
    for r, p in enumerate(parts):
        out[r::num_gpus] = p
    return out

#----------------------------------------------------------------------------

def dataset_features(dataset, extractor, batch_size=64, num_workers=2, max_items=None, rank=0, num_gpus=1, progress=True, desc='reals'):
    """Features [N, D] (float32) and integer domain labels [N] (-1 when unlabelled) of a dataset's images."""
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    indices = list(range(rank, num_items, num_gpus))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    for images, c in tqdm.tqdm(loader, desc=desc, disable=(not progress or rank != 0), unit='batch'):
        feats.append(extract(extractor, torch.as_tensor(images)))
        c = torch.as_tensor(c)
        labels.append(c.argmax(dim=1).numpy() if c.ndim == 2 and c.shape[1] > 0 else np.full([len(images)], -1))
    feats = np.concatenate(feats) if feats else np.zeros([0, 0], np.float32)
    labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros([0], np.int64)
    return gather_rows(feats, num_gpus), gather_rows(labels, num_gpus)


class DatasetLabelSampler:
    """Draws conditioning labels as NVIDIA does: the label of a uniformly random dataset item."""

    def __init__(self, dataset, seed=0):
        self.dataset, self.rnd = dataset, np.random.RandomState(seed)

    def __call__(self, n):
        return np.stack([self.dataset.get_label(self.rnd.randint(len(self.dataset))) for _ in range(n)]).astype(np.float32)


def fixed_label_sampler(c_dim, domain):
    """Every fake in domain `domain` (one-hot)."""
    def sample(n):
        c = np.zeros([n, c_dim], np.float32)
        c[:, domain] = 1
        return c
    return sample


def generator_features(G, extractor, num_images, label_sampler=None, batch_size=64, seed=0, device='cpu', rank=0, num_gpus=1,
                       G_kwargs=None, progress=True, desc='fakes'):
    """Features [num_images, D] of images G(z, c) with z ~ N(0, I), c from `label_sampler` (zeros when None).

    Fakes are quantised to uint8 as NVIDIA does, (x * 127.5 + 128).clamp(0, 255), before clean-fid's resize.
    Each rank makes its share from its own seed; random streams are seeded locally (global RNG untouched)."""
    G_kwargs = dict(truncation_psi=1, noise_mode='random') if G_kwargs is None else G_kwargs
    device = torch.device(device)
    per_rank = (num_images - rank + num_gpus - 1) // num_gpus
    feats = []
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed * 1000003 + rank)
        label_rnd_seed = seed * 1000003 + rank
        if isinstance(label_sampler, DatasetLabelSampler):
            label_sampler.rnd = np.random.RandomState(label_rnd_seed)
        bar = tqdm.tqdm(total=per_rank, desc=desc, disable=(not progress or rank != 0), unit='img')
        done = 0
        while done < per_rank:
            n = min(batch_size, per_rank - done)
            z = torch.randn([n, G.z_dim], device=device)
            c = torch.zeros([n, G.c_dim], device=device) if label_sampler is None or G.c_dim == 0 else \
                torch.from_numpy(label_sampler(n)).to(device)
            with torch.no_grad():
                img = G(z, c, **G_kwargs)
            img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
            feats.append(extract(extractor, img))
            done += n
            bar.update(n)
        bar.close()
    local = np.concatenate(feats) if feats else np.zeros([0, 0], np.float32)
    return gather_rows(local, num_gpus, order='interleave')[:num_images]

#----------------------------------------------------------------------------
