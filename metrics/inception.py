"""Inception-v3 weights (NVIDIA's `inception-2015-12-05.pt`, the file clean-fid uses): find, verify, load.

Where the file is looked for, first match wins: the `path` argument (`--inception=PATH`), the
environment variable CGGAN_INCEPTION, then `<cache>/inception/inception-2015-12-05.pt` (cache folder:
$CGGAN_CACHE_DIR, else ~/.cache/cggan). The file is checked by size and SHA-256 before use. It is
downloaded only when the caller allows it and CGGAN_OFFLINE is not set, with network timeouts.
"""
import hashlib
import os
import warnings

import torch

import dnnlib
from .features import FeatureExtractor

#----------------------------------------------------------------------------

INCEPTION_FILENAME = 'inception-2015-12-05.pt'
INCEPTION_URL      = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'
INCEPTION_SHA256   = 'f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4'
INCEPTION_SIZE     = 95_607_719
INCEPTION_NAME     = 'inception-v3-2015-12-05'   # the feature extractor's name in results

#----------------------------------------------------------------------------

class MetricUnavailableError(RuntimeError):
    """A metric cannot run (e.g. Inception weights missing or wrong); the message is one sentence."""

#----------------------------------------------------------------------------

def default_inception_path() -> str:
    return dnnlib.util.make_cache_dir_path('inception', INCEPTION_FILENAME)


def inception_path(path: str = None) -> str:
    """The path to use: the argument, else $CGGAN_INCEPTION, else the cache location."""
    return os.path.abspath(os.path.expanduser(path or os.environ.get('CGGAN_INCEPTION') or default_inception_path()))


def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


_verified = dict()  # (path, size, mtime_ns) -> True: hash each file once per process

def verify_inception(path: str, sha256: str = INCEPTION_SHA256, size: int = INCEPTION_SIZE) -> str:
    """Raise MetricUnavailableError unless `path` is the expected file; returns `path`."""
    if not os.path.isfile(path):
        raise MetricUnavailableError(
            f'Inception weights not found at {path}: download {INCEPTION_URL} (95.6 MB) and put it there, '
            f'or pass --inception=PATH (or set CGGAN_INCEPTION) to point at your copy.')
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, sha256)
    if key in _verified:
        return path
    if (size is not None and st.st_size != size) or _sha256_of(path) != sha256:
        raise MetricUnavailableError(
            f'{path} is not NVIDIA\'s {INCEPTION_FILENAME} (SHA-256 must be {sha256}): '
            f'replace it with a fresh download of {INCEPTION_URL}.')
    _verified[key] = True
    return path


def download_inception(dest: str, url: str = INCEPTION_URL, timeout: float = 30) -> str:
    """Fetch the weights to `dest` atomically (temp file in the same folder, verified, then renamed)."""
    import requests
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    print(f'Downloading Inception weights from {url} to {dest} ...', flush=True)
    try:
        with dnnlib.util.atomic_write(dest) as f, requests.get(url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            h = hashlib.sha256()
            for chunk in r.iter_content(1 << 20):
                f.write(chunk)
                h.update(chunk)
            if h.hexdigest() != INCEPTION_SHA256:  # raised inside the block: nothing is renamed into place
                raise OSError('the downloaded file has the wrong SHA-256')
    except (OSError, requests.RequestException) as e:
        reason = type(e).__name__ if isinstance(e, requests.RequestException) else str(e)  # requests' text is a page long
        raise MetricUnavailableError(
            f'Could not download the Inception weights ({reason}): download {url} yourself and '
            f'put it at {dest}, or pass --inception=PATH.') from None
    return dest


def find_inception(path: str = None, allow_download: bool = False) -> str:
    """Path of verified Inception weights, downloading them first when allowed and online."""
    path = inception_path(path)
    offline = os.environ.get('CGGAN_OFFLINE', '').strip().lower() not in ('', '0', 'false', 'no')
    if not os.path.exists(path) and allow_download and not offline:
        download_inception(path)
    return verify_inception(path)

#----------------------------------------------------------------------------

def _load_clean_fid_inception(path: str, resize_inside: bool):
    """clean-fid's InceptionV3W (its preprocessing and forward), loaded from our verified local file."""
    from cleanfid.inception_torchscript import InceptionV3W

    class LocalInceptionV3W(InceptionV3W):
        def __init__(self):  # clean-fid's constructor always downloads to a fixed folder; we never do
            torch.nn.Module.__init__(self)
            with warnings.catch_warnings():  # NVIDIA's file is TorchScript; newer PyTorch warns on every load
                warnings.filterwarnings('ignore', category=FutureWarning)
                self.base = torch.jit.load(path, map_location='cpu').eval()
            self.layers = self.base.layers
            self.resize_inside = resize_inside

    return LocalInceptionV3W().eval()


class InceptionFeatureExtractor(FeatureExtractor):
    """The 2048-d pool features of NVIDIA's Inception-v3, through clean-fid, for `mode` clean or legacy_tensorflow."""

    def __init__(self, mode: str = 'clean', device='cpu', path: str = None, allow_download: bool = False, _sha256: str = INCEPTION_SHA256, _size: int = INCEPTION_SIZE):
        if mode not in ('clean', 'legacy_tensorflow'):
            raise ValueError(f'mode must be clean or legacy_tensorflow, got {mode!r}')
        if _sha256 == INCEPTION_SHA256:
            self.path = find_inception(path, allow_download=allow_download)
        else:  # tests: a stand-in torchscript file with another hash
            self.path = verify_inception(inception_path(path), sha256=_sha256, size=_size)
        self.name = INCEPTION_NAME
        self.resize_mode = mode
        self.feature_dim = 2048
        self.device = torch.device(device)
        self.model = _load_clean_fid_inception(self.path, resize_inside=(mode == 'legacy_tensorflow')).to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.device, torch.float32))

#----------------------------------------------------------------------------
