"""Inception weights: where they are looked for, the SHA-256 check, the sentences, clean-fid's wrapper."""
import hashlib
import os

import numpy as np
import pytest
import torch

from metrics import inception, metric_main
from metrics.features import prepare_images

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    monkeypatch.delenv('CGGAN_INCEPTION', raising=False)


def test_missing_weights_sentence_names_the_place():
    expected = os.path.join(os.environ['CGGAN_CACHE_DIR'], 'inception', 'inception-2015-12-05.pt')
    with pytest.raises(inception.MetricUnavailableError) as e:
        inception.find_inception(allow_download=True)  # offline: must not try the network
    msg = str(e.value)
    assert expected in msg and '--inception=PATH' in msg and inception.INCEPTION_URL in msg and '\n' not in msg
    assert not os.path.exists(expected)


def test_explicit_path_and_env_var_take_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_INCEPTION', str(tmp_path / 'env.pt'))
    assert inception.inception_path() == str(tmp_path / 'env.pt')
    assert inception.inception_path(str(tmp_path / 'arg.pt')) == str(tmp_path / 'arg.pt')


def test_wrong_file_is_rejected_with_its_sentence(tmp_path):
    bad = tmp_path / 'inception-2015-12-05.pt'
    bad.write_bytes(b'not the weights')
    with pytest.raises(inception.MetricUnavailableError, match='is not NVIDIA.s inception-2015-12-05.pt .SHA-256 must be f58cb9b6'):
        inception.find_inception(str(bad))
    # same size, wrong content: the hash decides
    with pytest.raises(inception.MetricUnavailableError, match='SHA-256'):
        inception.verify_inception(str(bad), size=len(b'not the weights'))


def test_metric_main_raises_metric_unavailable_without_weights():
    with pytest.raises(metric_main.MetricUnavailableError):
        metric_main.build_feature_extractor(None, mode='clean')


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    import requests

    class FakeResponse:
        def __enter__(self): return self
        def __exit__(self, *a): return False
        def raise_for_status(self): pass
        def iter_content(self, n): yield b'truncated'

    monkeypatch.setattr(requests, 'get', lambda *a, **k: FakeResponse())
    dest = tmp_path / 'dl' / 'inception-2015-12-05.pt'
    with pytest.raises(inception.MetricUnavailableError, match='Could not download'):
        inception.download_inception(str(dest))
    assert os.listdir(dest.parent) == []

#----------------------------------------------------------------------------

class _FakeLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 2048, 1)

    def forward(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 1))


class _FakeInception(torch.nn.Module):
    """Same interface as NVIDIA's torchscript Inception: .layers, forward(x, return_features)."""
    def __init__(self):
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x, return_features: bool = False):
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
        return self.layers((x - 128) / 128)


@pytest.mark.filterwarnings('ignore::FutureWarning')
def test_clean_fid_wrapper_loads_local_torchscript(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'fake-inception.pt'
    torch.jit.save(torch.jit.script(_FakeInception()), str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    images = torch.randint(0, 256, [2, 3, 16, 16], dtype=torch.uint8)
    ext = inception.InceptionFeatureExtractor(mode='clean', path=str(path), _sha256=sha, _size=None)
    assert ext.name == 'inception-v3-2015-12-05' and ext.resize_mode == 'clean'
    feats = ext(prepare_images(images, 'clean'))
    assert feats.shape == (2, 2048)
    # clean mode = clean-fid's PIL resize to 299 + (x - 128) / 128 + layers
    from cleanfid.resize import build_resizer
    ref_in = torch.from_numpy(np.stack([build_resizer('clean')(a) for a in images.permute(0, 2, 3, 1).numpy()])).permute(0, 3, 1, 2)
    expect = ext.model.layers((ref_in - 128) / 128).view(2, 2048)
    assert torch.allclose(feats, expect, atol=1e-5)
    legacy = inception.InceptionFeatureExtractor(mode='legacy_tensorflow', path=str(path), _sha256=sha, _size=None)
    assert legacy(prepare_images(images, 'legacy_tensorflow')).shape == (2, 2048)

#----------------------------------------------------------------------------
