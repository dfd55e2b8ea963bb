"""Reference features of a dataset, computed once and cached on disk.

Key: the dataset's content hash, its resolution, the resize mode, the feature extractor's name and
the number of images used. A changed dataset has another hash, so stale statistics are never reused.
Entries are .npz files (features float32 [N, D], domain labels int64 [N]) under
`<cache>/gan-metrics/` ($CGGAN_CACHE_DIR, else ~/.cache/cggan); about 8 kB per image for Inception.
"""
import hashlib
import json
import os
import zipfile

import numpy as np

import dnnlib

#----------------------------------------------------------------------------

_folder_hashes = dict()  # stat signature of a folder -> content hash, so repeated calls stay cheap

def dataset_fingerprint(path: str) -> str:
    """SHA-256 identifying a dataset's content: a zip by its member names, sizes and CRC-32s; a folder by its bytes."""
    path = os.path.abspath(path)
    h = hashlib.sha256()
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                h.update(f'{info.filename}\0{info.file_size}\0{info.CRC:08x}\n'.encode('utf-8'))
        return 'zip:' + h.hexdigest()
    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(root, f), path).replace(os.sep, '/')
                       for root, _dirs, names in os.walk(path) for f in names)
        stats = [(f, os.stat(os.path.join(path, f))) for f in files]
        signature = (path, tuple((f, s.st_size, s.st_mtime_ns) for f, s in stats))
        if signature not in _folder_hashes:
            for f, _s in stats:
                h.update(f.encode('utf-8') + b'\0')
                with open(os.path.join(path, f), 'rb') as fp:
                    for chunk in iter(lambda: fp.read(1 << 20), b''):
                        h.update(chunk)
                h.update(b'\n')
            _folder_hashes[signature] = 'dir:' + h.hexdigest()
        return _folder_hashes[signature]
    if os.path.isfile(path):
        with open(path, 'rb') as fp:
            for chunk in iter(lambda: fp.read(1 << 20), b''):
                h.update(chunk)
        return 'file:' + h.hexdigest()
    raise FileNotFoundError(f'dataset not found: {path}')

#----------------------------------------------------------------------------

def cache_path(key: dict, cache_dir: str = None) -> str:
    """File for a key (any JSON-able dict): <cache_dir>/<dataset name>-<hash of the key>.npz."""
    cache_dir = cache_dir or dnnlib.util.make_cache_dir_path('gan-metrics')
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode('utf-8')).hexdigest()[:20]
    stem = os.path.splitext(os.path.basename(str(key.get('dataset', 'dataset')).rstrip('/\\')))[0] or 'dataset'
    return os.path.join(cache_dir, f'{stem}-{digest}.npz')


def load(path: str):
    """(features, labels) from a cache file, or None when absent or unreadable."""
    try:
        with np.load(path) as data:
            return data['features'], data['labels']
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save(path: str, features: np.ndarray, labels: np.ndarray, key: dict):
    """Atomic write: temp file in the same folder, then rename."""
    with dnnlib.util.atomic_write(path) as f:
        np.savez(f, features=features.astype(np.float32), labels=labels.astype(np.int64), key=json.dumps(key, sort_keys=True))

#----------------------------------------------------------------------------
