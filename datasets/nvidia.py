"""Pass-through source: an existing NVIDIA-format data set (zip or folder with dataset.json).

Works for files written by NVIDIA's or i-StyleGAN's dataset_tool and by ours: labels, domain names and
factors are carried over; images are re-encoded (and resized or cropped if asked).
"""
import io
import json
import os
import zipfile

from tqdm import tqdm

from .errors import DatasetError
from .folders import list_images, subsample
from .images import MAX_IMAGE_BYTES, is_gray_mode, is_image_name, open_image, read_member
from .source import Item, Source

#----------------------------------------------------------------------------

def is_nvidia_dataset(path: str) -> bool:
    return (os.path.isfile(path) and path.lower().endswith('.zip')) or os.path.isfile(os.path.join(path, 'dataset.json'))

#----------------------------------------------------------------------------

def open_nvidia(source: str, max_images=None, seed: int = 0) -> Source:
    """A Source for an NVIDIA-format zip or folder."""
    if os.path.isfile(source):
        try:
            zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f'Cannot read zip file "{source}" ({e}); check the file or rebuild it.') from None
        names = sorted(n for n in zf.namelist() if is_image_name(n) and not n.endswith('/'))
        read = lambda name: read_member(zf, name, MAX_IMAGE_BYTES * 4 if name == 'dataset.json' else MAX_IMAGE_BYTES)
        has = lambda name: name in zf.NameToInfo
    else:
        zf = None
        names = [p.replace(os.sep, '/') for p in list_images(source)]
        def read(name):
            with open(os.path.join(source, name), 'rb') as f:
                return f.read()
        has = lambda name: os.path.isfile(os.path.join(source, name))
    if not names:
        raise DatasetError(f'"{source}" contains no images; check that it is an NVIDIA-format data set.')
    meta = {}
    if has('dataset.json'):
        try:
            meta = json.loads(read('dataset.json'))
        except ValueError as e:
            raise DatasetError(f'dataset.json in "{source}" is not valid JSON ({e}); fix or remove it.') from None
    try:
        labels = dict(meta.get('labels') or [])
        factors = meta.get('factors') or None
        factor_values = dict(factors['values']) if factors else {}
    except (TypeError, ValueError, KeyError, AttributeError):
        raise DatasetError(f'dataset.json in "{source}" has malformed "labels" or "factors"; fix or remove it.') from None
    if labels:
        missing = [n for n in names if n not in labels]
        if missing:
            raise DatasetError(f'Image "{missing[0]}" has no label in dataset.json of "{source}"; '
                               'add its label or remove the image.')
    keep = subsample(len(names), max_images, seed)
    names = [names[i] for i in keep]
    sizes, gray = {}, True
    for n in tqdm(names, desc='Checking images', unit='img', disable=len(names) < 2000, leave=False):
        img = open_image(io.BytesIO(read(n)), n, header_only=True)
        sizes.setdefault(img.size, n)
        gray = gray and is_gray_mode(img.mode)

    def items():
        for n in names:
            yield Item(name=n, load=lambda n=n: open_image(io.BytesIO(read(n)), n),
                       label=labels.get(n), factors=factor_values.get(n))
    extra = {k: v for k, v in meta.items() if k not in ('labels', 'domains', 'factors', 'cggan_dataset_tool')}
    return Source(items=items, num_items=len(names), channels=1 if gray else 3, domains=meta.get('domains'),
                  factor_names=factors['names'] if factors else None, sizes=sizes, extra=extra)

#----------------------------------------------------------------------------
