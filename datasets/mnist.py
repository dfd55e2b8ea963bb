"""MNIST-family source (MNIST, Fashion-MNIST, ...): the four standard IDX files, gzipped or not.

Without --colours the images stay grayscale and the class is the domain. With --colours=K each image is
assigned, at random with --seed, to one of K domains and drawn in that domain's fixed colour on black
("K-colour MNIST", as in i-StyleGAN's two-colour MNIST); the class is kept as the factor "class".
28x28 images are zero-padded to 32x32 (NVIDIA's convention) before any resizing.
"""
import colorsys
import gzip
import math
import os

import numpy as np
import PIL.Image

from .errors import DatasetError
from .folders import subsample
from .source import Item, Source

SPLITS = ('train', 'test', 'all')
MAX_IDX_BYTES = 1 << 30  # one IDX file after unzipping (EMNIST's largest: 0.55 GB)
PALETTE = [('red', (230, 25, 75)), ('green', (60, 180, 75)), ('blue', (0, 130, 200)), ('yellow', (255, 225, 25)),
           ('magenta', (240, 50, 230)), ('cyan', (70, 240, 240)), ('orange', (245, 130, 48)),
           ('purple', (145, 30, 180)), ('lime', (210, 245, 60)), ('pink', (250, 190, 212))]

#----------------------------------------------------------------------------

def find_idx_file(folder: str, prefix: str, kind: str):
    """Path of e.g. train-images-idx3-ubyte[.gz] (also the train-images.idx3-ubyte spelling), or None."""
    n = 3 if kind == 'images' else 1
    for stem in (f'{prefix}-{kind}-idx{n}-ubyte', f'{prefix}-{kind}.idx{n}-ubyte'):
        for ext in ('', '.gz'):
            path = os.path.join(folder, stem + ext)
            if os.path.isfile(path):
                return path
    return None

#----------------------------------------------------------------------------

def is_mnist_folder(path: str) -> bool:
    return os.path.isdir(path) and any(find_idx_file(path, p, 'images') for p in ('train', 't10k'))

#----------------------------------------------------------------------------

def read_idx(path: str, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (magic 0x0000080N) with `ndim` dimensions."""
    try:
        with (gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')) as f:
            data = f.read(MAX_IDX_BYTES + 1)  # a gzip bomb stops here
    except (OSError, EOFError) as e:
        raise DatasetError(f'Cannot read IDX file "{path}" ({e}); download it again.') from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != ndim:
        raise DatasetError(f'Wrong IDX header in "{path}": expected magic 0x000008{ndim:02x} (unsigned bytes, '
                           f'{ndim} dimensions); use the original MNIST-format file.')
    if len(data) > MAX_IDX_BYTES:
        raise DatasetError(f'IDX file "{path}" holds more than {MAX_IDX_BYTES} bytes (unzipped); that is not an MNIST-family file.')
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f'Wrong IDX header in "{path}": the file ends inside the header; download it again.')
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim)]
    if len(data) != header + math.prod(dims):
        raise DatasetError(f'Wrong IDX header in "{path}": dimensions {dims} need {header + math.prod(dims)} bytes '
                           f'but the file has {len(data)}; download it again.')
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)

#----------------------------------------------------------------------------

def load_split(folder: str, prefix: str):
    """(images N x H x W, labels N) of one split ('train' or 't10k')."""
    paths = {k: find_idx_file(folder, prefix, k) for k in ('images', 'labels')}
    for k, p in paths.items():
        if p is None:
            n = 3 if k == 'images' else 1
            raise DatasetError(f'"{folder}" lacks {prefix}-{k}-idx{n}-ubyte[.gz]; add the file or choose another --split.')
    images, labels = read_idx(paths['images'], 3), read_idx(paths['labels'], 1)
    if len(images) != len(labels):
        raise DatasetError(f'"{paths["images"]}" holds {len(images)} images but "{paths["labels"]}" '
                           f'{len(labels)} labels; use matching files.')
    return images, labels

#----------------------------------------------------------------------------

def colour_palette(k: int):
    """(names, uint8 K x 3 colours): fixed distinct colours, evenly spaced hues beyond ten."""
    if k <= len(PALETTE):
        return [n for n, _ in PALETTE[:k]], np.array([c for _, c in PALETTE[:k]], dtype=np.uint8)
    rgb = [colorsys.hsv_to_rgb(i / k, 0.85, 1.0) for i in range(k)]
    return [f'hue{i:02d}' for i in range(k)], np.round(np.array(rgb) * 255).astype(np.uint8)

#----------------------------------------------------------------------------

def open_mnist(source: str, split: str = 'all', colours=None, max_images=None, seed: int = 0) -> Source:
    """A Source for a folder of MNIST-format IDX files."""
    if split not in SPLITS:
        raise DatasetError(f'--split={split} does not exist for MNIST-format data; use one of {", ".join(SPLITS)}.')
    if colours is not None and not 1 <= colours <= 256:
        raise DatasetError(f'--colours={colours} is out of range; use a number of domains between 1 and 256.')
    parts = [load_split(source, p) for p in {'train': ['train'], 'test': ['t10k'], 'all': ['train', 't10k']}[split]]
    images = np.concatenate([p[0] for p in parts])
    classes = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if colours is not None:
        domain_of = np.random.RandomState(seed).randint(colours, size=len(images)) # a random domain per image
        names, palette = colour_palette(colours)
    else:
        domain_of, names = classes, [str(c) for c in range(max(10, int(classes.max()) + 1))]
    keep = subsample(len(images), max_images, seed)
    h, w = images.shape[1:]
    size = 1 << max(int(np.ceil(np.log2(max(h, w)))), 0)
    pad = ((size - h) // 2, (size - h + 1) // 2), ((size - w) // 2, (size - w + 1) // 2)

    def load(i):
        img = np.pad(images[i], pad)
        if colours is None:
            return PIL.Image.fromarray(img, 'L')
        rgb = np.round(img[:, :, None].astype(np.float32) / 255 * palette[domain_of[i]]).astype(np.uint8)
        return PIL.Image.fromarray(rgb, 'RGB')

    def items():
        for i in keep:
            yield Item(name=f'image {i}', load=lambda i=i: load(i), label=int(domain_of[i]), factors=[int(classes[i])])
    return Source(items=items, num_items=len(keep), channels=1 if colours is None else 3, domains=names,
                  factor_names=['class'], native_resolution=size)

#----------------------------------------------------------------------------
