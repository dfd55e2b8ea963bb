"""Inception-v3 (NVIDIA's `inception-2015-12-05.pt`, the file clean-fid uses): FID/KID features and IS probabilities.

Where the file is looked for, how it is checked (size and SHA-256) and downloaded: metrics/weights.py.
"""
import dataclasses

import torch

from .features import FeatureExtractor
from .weights import INCEPTION, MetricUnavailableError, load_torchscript  # noqa: F401
from . import weights

#----------------------------------------------------------------------------

INCEPTION_FILENAME = INCEPTION.filename
INCEPTION_URL      = INCEPTION.url
INCEPTION_SHA256   = INCEPTION.sha256
INCEPTION_SIZE     = INCEPTION.size
INCEPTION_NAME     = 'inception-v3-2015-12-05'   # the feature extractor's name in results

#----------------------------------------------------------------------------

def inception_path(path: str = None) -> str:
    return INCEPTION.path(path)


def verify_inception(path: str, sha256: str = INCEPTION_SHA256, size: int = INCEPTION_SIZE) -> str:
    return weights.verify(dataclasses.replace(INCEPTION, sha256=sha256, size=size), path)


def download_inception(dest: str) -> str:
    return weights.download(INCEPTION, dest)


def find_inception(path: str = None, allow_download: bool = False) -> str:
    return weights.find(INCEPTION, path, allow_download=allow_download)

#----------------------------------------------------------------------------

def _load_clean_fid_inception(path: str, resize_inside: bool):
    """clean-fid's InceptionV3W (its preprocessing and forward), loaded from our verified local file."""
    from cleanfid.inception_torchscript import InceptionV3W

    class LocalInceptionV3W(InceptionV3W):
        def __init__(self):  # clean-fid's constructor always downloads to a fixed folder; we never do
            torch.nn.Module.__init__(self)
            self.base = load_torchscript(INCEPTION, path, 'cpu')
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

class InceptionProbabilities(FeatureExtractor):
    """Class probabilities of NVIDIA's Inception-v3 for the Inception Score, as NVIDIA computes them: uint8 images at
    their own resolution (the network resizes), classifier output without its bias (`no_output_bias=True`)."""

    def __init__(self, device='cpu', path: str = None, spec=INCEPTION):
        self.path = weights.verify(spec, spec.path(path))
        self.name, self.resize_mode, self.feature_dim = INCEPTION_NAME + '-probabilities', None, 1008
        self.device = torch.device(device)
        self.model = load_torchscript(spec, self.path, self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.round().clamp(0, 255).to(self.device, torch.uint8), no_output_bias=True)

#----------------------------------------------------------------------------
