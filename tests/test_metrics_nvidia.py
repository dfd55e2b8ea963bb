"""NVIDIA's pr50k3_full, is50k and ppl* metrics: the formulas against direct computations, and the metrics end to
end with stand-in weight files written here (TorchScript with NVIDIA's call contract), checked like the real ones."""
import dataclasses
import functools
import hashlib
import json

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.s:FutureWarning")  # the stand-ins are TorchScript, as NVIDIA's files
import torch

import dnnlib
from metrics import inception_score, metric_main, perceptual_path_length, precision_recall, weights
from tests.test_metrics_main import TinyGenerator, make_dataset

#----------------------------------------------------------------------------
# Stand-ins with the call contracts of NVIDIA's vgg16.pt and inception-2015-12-05.pt.

class StandInVGG16(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, img, return_features: bool = False, return_lpips: bool = False, resize_images: bool = True):
        x = img.to(torch.float32) / 255
        if resize_images:
            x = torch.nn.functional.interpolate(x, size=(16, 16), mode='area')
        h = torch.tanh(self.conv(x))
        if return_lpips:
            return h.flatten(1) / 32.0
        return h.mean([2, 3]) if return_features else h.sum([1, 2, 3])


class StandInInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 10)

    def forward(self, img, return_features: bool = False, no_output_bias: bool = False):
        assert img.dtype == torch.uint8  # NVIDIA's metrics feed uint8 images
        logits = self.fc(img.to(torch.float32).mean([2, 3]) / 32)
        if no_output_bias:
            logits = logits - self.fc.bias
        return logits.softmax(dim=1)


def _write(module, path):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Stand-in files at their default cache locations; their hashes pinned in place of NVIDIA's."""
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    for spec, module in ((weights.VGG16, StandInVGG16()), (weights.INCEPTION, StandInInception())):
        path = tmp_path / 'cache' / spec.key / spec.filename
        path.parent.mkdir(parents=True)
        monkeypatch.setattr(weights, spec.key.upper(), dataclasses.replace(spec, sha256=_write(module, path), size=None))
    for name in ('pr50k3_full', 'is50k', 'ppl2_wend', 'ppl_zfull', 'swap1k'):  # a few samples: a CPU test
        spec = metric_main._metric_specs[name]
        monkeypatch.setitem(metric_main._metric_specs, name, dnnlib.EasyDict(spec, num_gen=40, **({'max_real': 20} if 'max_real' in spec else {})))
    return tmp_path


def _tiny_generator(c_dim=2):
    from training.networks import Generator
    torch.manual_seed(0)
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=8, img_channels=3,
                     mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8))

#----------------------------------------------------------------------------

def test_formulas_match_direct_computations():
    rnd = np.random.RandomState(0)
    real, fake = rnd.randn(30, 5), rnd.randn(25, 5) + 0.7
    def direct(manifold, probes, k=3):
        d_mm = np.linalg.norm(manifold[:, None] - manifold[None], axis=2)
        radii = np.sort(d_mm, axis=1)[:, k]                                      # column 0 is the point itself
        return (np.linalg.norm(probes[:, None] - manifold[None], axis=2) <= radii[None]).any(axis=1).mean()
    p, r = precision_recall.precision_recall(real, fake, nhood_size=3, block=7)   # blocks smaller than the sets
    assert p == pytest.approx(direct(real, fake)) and r == pytest.approx(direct(fake, real))
    assert 0 < p < 1 and 0 < r < 1

    assert inception_score.inception_score(np.full([20, 4], 0.25)) == pytest.approx((1.0, 0.0))       # no information
    assert inception_score.inception_score(np.eye(5)[np.arange(50) % 5], num_splits=10)[0] == pytest.approx(5.0)
    probs = rnd.dirichlet(np.ones(6), size=40)
    kl = [(q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean() for q in np.split(probs, 4)]
    assert inception_score.inception_score(probs, num_splits=4) == pytest.approx((np.mean(np.exp(kl)), np.std(np.exp(kl))))

    d = np.arange(200, dtype=np.float64)
    d[0], d[-1] = -1e9, 1e9                                                      # outliers are cut at the 1st / 99th percentile
    assert perceptual_path_length.perceptual_path_length(d) == pytest.approx(d[2:198].mean())
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    mid = perceptual_path_length.slerp(a, b, torch.full([3, 1], 0.5))
    assert torch.allclose(mid.norm(dim=1), torch.ones(3)) and torch.allclose(perceptual_path_length.slerp(a, b, torch.zeros(3, 1)), a / a.norm(dim=1, keepdim=True))


def test_path_length_is_zero_for_a_generator_that_ignores_its_latent(tmp_path):
    from metrics.vgg16 import VGG16Features
    G = _tiny_generator(c_dim=0).eval()
    _write(StandInVGG16(), tmp_path / 'vgg16.pt')
    vgg = VGG16Features(dataclasses.replace(weights.VGG16, sha256=None), path=str(tmp_path / 'vgg16.pt'))
    c = torch.zeros([4, 0])
    gen = lambda: torch.Generator().manual_seed(1)
    d = perceptual_path_length.path_distances(G, vgg, c, epsilon=1e-2, space='w', sampling='full', generator=gen())
    assert d.shape == (4,) and np.all(d > 0)
    with torch.no_grad():                                                        # image = toRGB biases only
        G.synthesis.b4.torgb.weight.zero_()
        G.synthesis.b8.torgb.weight.zero_()
    assert np.allclose(perceptual_path_length.path_distances(G, vgg, c, epsilon=1e-2, space='z', sampling='end', generator=gen()), 0)


def test_registration_and_required_weights():
    for name in ('pr50k3_full', 'is50k', 'ppl2_wend', 'ppl_zfull', 'ppl_wfull', 'ppl_zend', 'ppl_wend'):
        assert metric_main.is_valid_metric(name)
    assert metric_main.required_weights('pr50k3_full') == [weights.VGG16] == metric_main.required_weights('ppl2_wend')
    assert metric_main.required_weights('is50k') == [weights.INCEPTION] == metric_main.required_weights('fid50k_full')
    assert metric_main.required_weights('fid50k_full', 'random-conv') == [] == metric_main.required_weights('swap1k')


def test_missing_or_wrong_weights_are_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    data = make_dataset(tmp_path / 'data', counts=(4, 4))
    with pytest.raises(metric_main.MetricUnavailableError, match='VGG16 weights not found at .*vgg16.pt: download https://nvlabs-fi-cdn'):
        metric_main.calc_metric('pr50k3_full', TinyGenerator(), data, progress=False)
    (tmp_path / 'vgg16.pt').write_bytes(b'<html>quota exceeded</html>')
    with pytest.raises(metric_main.MetricUnavailableError, match='is not NVIDIA.s vgg16.pt .a TorchScript archive'):
        metric_main.calc_metric('ppl2_wend', TinyGenerator(), data, progress=False, vgg16=str(tmp_path / 'vgg16.pt'))


def test_metrics_end_to_end_with_stand_in_weights(stand_ins):
    data = make_dataset(stand_ins / 'data', counts=(12, 12))
    res = metric_main.calc_metric('is50k', TinyGenerator(), data, progress=False, num_workers=0)
    assert set(res.results) == {'is50k_mean', 'is50k_std'} and res.mode == 'nvidia' and res.num_images == 40
    assert 1 <= res.results.is50k_mean <= 10
    res = metric_main.calc_metric('pr50k3_full', TinyGenerator(), data, progress=False, num_workers=0)
    assert set(res.results) == {'pr50k3_full_precision', 'pr50k3_full_recall'} and res.num_reals == 20   # max_real
    assert all(0 <= v <= 1 for v in res.results.values())
    for name in ('ppl2_wend', 'ppl_zfull'):
        res = metric_main.calc_metric(name, _tiny_generator(), data, progress=False, seed=3)
        again = metric_main.calc_metric(name, _tiny_generator(), data, progress=False, seed=3)
        assert np.isfinite(res.results[name]) and res.results[name] > 0 and res.results == again.results   # seeded
    # A file that is not the pinned one is refused before use.
    (stand_ins / 'cache' / 'inception' / 'inception-2015-12-05.pt').write_bytes(b'PK\x03\x04 other')
    with pytest.raises(metric_main.MetricUnavailableError, match='SHA-256 must be'):
        metric_main.calc_metric('is50k', TinyGenerator(), data, progress=False)


def test_calc_metrics_table_names_the_mode_and_swap1k_needs_no_inception(stand_ins, monkeypatch):
    from click.testing import CliRunner
    import calc_metrics
    from torch_utils.snapshot import save_snapshot
    data = make_dataset(stand_ins / 'data', counts=(12, 12))
    save_snapshot(str(stand_ins / 'run' / 'network-snapshot-000000.pt'), dict(G_ema=_tiny_generator(), training_set_kwargs=data))
    args = ['--network', str(stand_ins / 'run' / 'network-snapshot-000000.pt'), '--gpus=0', '--verbose=false', '--mirror=1']
    r = CliRunner().invoke(calc_metrics.main, ['--metrics=is50k,ppl2_wend', *args])
    assert r.exit_code == 0, r.output
    assert '| network | is50k_mean (nvidia) | is50k_std (nvidia) | ppl2_wend (nvidia) |' in r.output and '{"results"' not in r.output
    assert "mode: nvidia (NVIDIA's protocol, comparable with published numbers)" in r.output
    (stand_ins / 'cache' / 'inception' / 'inception-2015-12-05.pt').unlink()     # swap1k never touches Inception
    from metrics import swap
    monkeypatch.setattr(swap, 'train_swap_probe', functools.partial(swap.train_swap_probe, num_train=24, train_steps=5, probe_res=8))
    r = CliRunner().invoke(calc_metrics.main, ['--metrics=swap1k', *args])
    assert r.exit_code == 0 and 'swap_domain_acc' in r.output and 'Inception' not in r.output, r.output


def test_training_reports_metrics_to_tensorboard_and_warns_once(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tests.test_training_loop import tiny_kwargs
    from training.training_loop import training_loop
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    monkeypatch.setattr(metric_main, 'calc_metric', functools.partial(metric_main.calc_metric, feature_extractor='random-conv',
                                                                      progress=False, num_workers=0))
    import dataset_tool
    data = str(tmp_path / 'shapes-16.zip')                   # metrics build only allow-listed data sets: a real one
    dataset_tool.convert_dataset('builtin:shapes', data, resolution=16, max_images=32, progress=False)
    log = []
    training_loop(**tiny_kwargs(str(tmp_path / 'run'), total_kimg=0.032, metrics=['fid1k_full', 'is50k'], network_snapshot_ticks=1,
                                log_fn=log.append, training_set_kwargs=dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset',
                                                                                      path=data, use_labels=True)))
    warnings = [l for l in log if l.startswith('Warning: metric')]
    assert len(warnings) == 1 and 'is50k skipped for the rest of this run: Inception weights not found' in warnings[0]   # 3 snapshots
    assert 'set CGGAN_INCEPTION=PATH for the run' in warnings[0] and '--inception' not in warnings[0]      # train.py has no --inception
    lines = [l for l in log if l.startswith('fd1k_full@random-conv: fd1k_full@random-conv ')]             # each line names its metric
    assert len(lines) == 3 and f'Last metrics:        {lines[-1]}' in log                               # and the end repeats the last
    events = EventAccumulator(str(tmp_path / 'run')).Reload()
    scalars = events.Scalars('Metrics/fd1k_full@random-conv')
    recorded = [json.loads(l)['results']['fd1k_full@random-conv'] for l in open(tmp_path / 'run' / 'metric-fd1k_full@random-conv.jsonl')]
    assert [s.step for s in scalars] == [0, 0, 0] and [s.value for s in scalars] == pytest.approx(recorded)   # kimg 0.008..0.032

#----------------------------------------------------------------------------
