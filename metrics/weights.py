"""NVIDIA's metric networks (TorchScript files): where each is looked for, how it is checked, the download.

A file is looked for, first match wins, at the `path` argument (`--inception=PATH`, `--vgg16=PATH`), the
environment variable of its spec (CGGAN_INCEPTION, CGGAN_VGG16), then `<cache>/<key>/<filename>` (cache
folder: $CGGAN_CACHE_DIR, else ~/.cache/cggan). A file with a pinned SHA-256 is checked by size and hash
before use; one without (NVIDIA publishes none for vgg16.pt) must be a TorchScript archive, and loading
it is the rest of the check. Downloads happen only when the caller allows them and CGGAN_OFFLINE is not
set, with network timeouts, into a temporary file renamed into place once complete and checked.
"""
import contextlib
import dataclasses
import hashlib
import os

import dnnlib
from dnnlib.url import is_offline

#----------------------------------------------------------------------------

class MetricUnavailableError(RuntimeError):
    """A metric cannot run (e.g. its weights are missing or wrong); the message is one sentence."""

_environment_only = [False]   # True inside environment_only(): the caller has no --inception/--vgg16 options


@contextlib.contextmanager
def environment_only():
    """Messages raised inside name the environment variables, not --inception/--vgg16 (train.py has neither)."""
    old, _environment_only[0] = _environment_only[0], True
    try:
        yield
    finally:
        _environment_only[0] = old


def _point_at(spec) -> str:
    return f'set {spec.env}=PATH for the run' if _environment_only[0] else f'pass --{spec.key}=PATH (or set {spec.env})'

#----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WeightsFile:
    key: str                # option name (--<key>=PATH) and cache sub-folder
    title: str              # for messages: "Inception", "VGG16"
    filename: str
    url: str
    env: str                # environment variable naming the file
    megabytes: float        # for messages
    sha256: str = None      # None: not pinned (the file must be a TorchScript archive)
    size: int = None        # bytes, when known

    def default_path(self) -> str:
        return dnnlib.util.make_cache_dir_path(self.key, self.filename)

    def path(self, path: str = None) -> str:
        """The path to use: the argument, else the environment variable, else the cache location."""
        return os.path.abspath(os.path.expanduser(path or os.environ.get(self.env) or self.default_path()))

_METRICS_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/'

INCEPTION = WeightsFile('inception', 'Inception', 'inception-2015-12-05.pt', _METRICS_URL + 'inception-2015-12-05.pt', 'CGGAN_INCEPTION',
                        95.6, sha256='f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4', size=95_607_719)
VGG16 = WeightsFile('vgg16', 'VGG16', 'vgg16.pt', _METRICS_URL + 'vgg16.pt', 'CGGAN_VGG16', 528)

#----------------------------------------------------------------------------

def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


_verified = dict()  # (path, size, mtime_ns, sha256) -> True: hash each file once per process

def verify(spec: WeightsFile, path: str) -> str:
    """Raise MetricUnavailableError unless `path` is the file `spec` describes; returns `path`."""
    if not os.path.isfile(path):
        raise MetricUnavailableError(
            f'{spec.title} weights not found at {path}: download {spec.url} ({spec.megabytes:g} MB) and put it there, '
            f'or {_point_at(spec)} to point at your copy.')
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, spec.sha256)
    if key in _verified:
        return path
    if spec.sha256 is None:
        with open(path, 'rb') as f:
            ok = f.read(4) == b'PK\x03\x04'  # TorchScript archives are zip files
        rule = 'a TorchScript archive'
    else:
        ok = (spec.size is None or st.st_size == spec.size) and _sha256_of(path) == spec.sha256
        rule = f'SHA-256 must be {spec.sha256}'
    if not ok:
        raise MetricUnavailableError(f'{path} is not NVIDIA\'s {spec.filename} ({rule}): replace it with a fresh download of {spec.url}.')
    _verified[key] = True
    return path


def download(spec: WeightsFile, dest: str, timeout: float = 30) -> str:
    """Fetch the file to `dest` atomically (temp file in the same folder, checked, then renamed)."""
    import requests
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    print(f'Downloading {spec.title} weights from {spec.url} to {dest} ...', flush=True)
    try:
        with dnnlib.util.atomic_write(dest) as f, requests.get(spec.url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            h = hashlib.sha256()
            head = b''
            for chunk in r.iter_content(1 << 20):
                f.write(chunk)
                h.update(chunk)
                head = head or chunk[:4]
            if (spec.sha256 is not None and h.hexdigest() != spec.sha256) or (spec.sha256 is None and head != b'PK\x03\x04'):
                raise OSError('the downloaded file is not the expected one')  # raised inside the block: nothing is renamed
    except (OSError, requests.RequestException) as e:
        reason = type(e).__name__ if isinstance(e, requests.RequestException) else str(e)  # requests' text is a page long
        raise MetricUnavailableError(
            f'Could not download the {spec.title} weights ({reason}): download {spec.url} yourself and '
            f'put it at {dest}, or {_point_at(spec)}.') from None
    return dest


def find(spec: WeightsFile, path: str = None, allow_download: bool = False) -> str:
    """Path of checked weights, downloading them first when allowed and online."""
    path = spec.path(path)
    if not os.path.exists(path) and allow_download and not is_offline():
        download(spec, path)
    return verify(spec, path)


def load_torchscript(spec: WeightsFile, path: str, device):
    """The checked file as a TorchScript module in eval mode on `device`."""
    import warnings
    import torch
    try:
        with warnings.catch_warnings():  # NVIDIA's files are TorchScript; newer PyTorch warns on every load
            warnings.filterwarnings('ignore', category=FutureWarning)
            return torch.jit.load(path, map_location='cpu').eval().to(device)
    except (RuntimeError, ValueError) as e:
        raise MetricUnavailableError(f'{path} does not load as NVIDIA\'s {spec.filename} ({str(e).splitlines()[0][:100]}): '
                                     f'replace it with a fresh download of {spec.url}.') from None

#----------------------------------------------------------------------------
