"""CIFAR-10 source: the python archive `cifar-10-python.tar.gz`, as NVIDIA's dataset_tool reads it.

The five training batches (50,000 32x32 RGB images), the class (0-9) as the domain, in file order. The
batches are Python 2 pickles; they are read with torch_utils.safe_pickle's restricted unpickler (only
numpy arrays, lists and dicts are built, nothing in the file is run), and each batch is checked for
shape and size before use.
"""
import pickle
import tarfile

import numpy as np

from torch_utils import safe_pickle
from .errors import DatasetError
from .folders import subsample
from .source import Item, Source

CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
BATCHES = [f'cifar-10-batches-py/data_batch_{i}' for i in range(1, 6)]
MAX_BATCH_BYTES = 40 << 20   # one batch is 31 MB

#----------------------------------------------------------------------------

def is_cifar10_archive(path: str) -> bool:
    return path.lower().endswith(('.tar.gz', '.tgz', '.tar')) and tarfile.is_tarfile(path)


class _Py2Unpickler(safe_pickle.RestrictedUnpickler):
    """The restricted unpickler for Python 2 pickles (str data decoded as latin-1, as numpy expects)."""

    def __init__(self, file, source):
        super().__init__(file, source, encoding='latin1')


def _read_batch(tar, name, source):
    try:
        member = tar.getmember(name)
    except KeyError:
        raise DatasetError(f'"{source}" has no {name}; pass the python version of CIFAR-10 (cifar-10-python.tar.gz).') from None
    if not member.isfile() or member.size > MAX_BATCH_BYTES:
        raise DatasetError(f'{name} in "{source}" is not a CIFAR-10 batch ({member.size} bytes); download the archive again.')
    try:
        batch = _Py2Unpickler(tar.extractfile(member), f'{source}:{name}').load()
    except safe_pickle.UnsafePickleError as e:
        raise DatasetError(f'{name} in "{source}" is not a plain CIFAR-10 batch ({e}).') from None
    except Exception as e:
        raise DatasetError(f'Cannot read {name} in "{source}" ({type(e).__name__}); download the archive again.') from None
    data, labels = (batch.get(k) if isinstance(batch, dict) else None for k in ('data', 'labels'))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or \
            not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(l, int) and 0 <= l < 10 for l in labels):
        raise DatasetError(f'{name} in "{source}" does not hold uint8 images [N, 3072] and N labels 0-9; download the archive again.')
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def open_cifar10(source: str, max_images=None, seed: int = 0) -> Source:
    """A Source for the CIFAR-10 training set: 50,000 labelled 32x32 images, class names as domains."""
    try:
        with tarfile.open(source) as tar:
            parts = [_read_batch(tar, name, source) for name in BATCHES]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f'Cannot read "{source}" ({e}); download the archive again.') from None
    images = np.concatenate([p[0] for p in parts])
    labels = [l for p in parts for l in p[1]]
    keep = subsample(len(images), max_images, seed)

    def items():
        for i in keep:
            yield Item(name=f'image {i}', load=lambda i=i: images[i], label=labels[i])
    return Source(items=items, num_items=len(keep), channels=3, domains=list(CLASSES), sizes={(32, 32): 'image 0'})

#----------------------------------------------------------------------------
