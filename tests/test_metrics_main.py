"""calc_metric / report_metric: per-domain split, label sampling, naming, caching, jsonl records."""
import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

from metrics import features as feature_utils
from metrics import frechet, metric_main

#----------------------------------------------------------------------------
# Test fixtures: a tiny two-domain dataset, a stand-in generator, a cheap named feature extractor.

def make_dataset(root, counts=(24, 8), res=8, seed=0):
    """Domain k images: grey level 40 + 160 k plus noise (domain 0 dark, domain 1 bright)."""
    rnd = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    labels = []
    for k, n in enumerate(counts):
        for i in range(n):
            img = np.clip(40 + 160 * k + rnd.randn(res, res, 3) * 20, 0, 255).astype(np.uint8)
            name = f'd{k}/img{i:04d}.png'
            os.makedirs(os.path.join(root, f'd{k}'), exist_ok=True)
            PIL.Image.fromarray(img).save(os.path.join(root, name))
            labels.append([name, k])
    with open(os.path.join(root, 'dataset.json'), 'w') as f:
        json.dump(dict(labels=labels, domains=['dark', 'bright']), f)
    return dict(class_name='training.dataset.ImageFolderDataset', path=str(root), use_labels=True)


class TinyGenerator(torch.nn.Module):
    """Stand-in with NVIDIA's Generator interface: domain k -> grey level of dataset domain `perm[k]`."""
    def __init__(self, c_dim=2, res=8, perm=(0, 1)):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, c_dim, res, 3
        self.register_buffer('perm', torch.tensor(perm, dtype=torch.float32))
        self.proj = torch.nn.Linear(4, 3 * res * res)
        with torch.no_grad():  # seeded: every instance is the same network
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.1)
            self.proj.bias.zero_()

    def forward(self, z, c, truncation_psi=1, noise_mode='const'):
        level = (40 + 160 * (c @ self.perm if self.c_dim else 0)) / 127.5 - 1  # [-1, 1] scale
        noise = self.proj(z).view(-1, 3, self.img_resolution, self.img_resolution)
        return level.view(-1, 1, 1, 1) + noise * 1.2


class PixelStats(feature_utils.FeatureExtractor):
    """Per-channel mean and std at native resolution; counts the images it sees."""
    name, resize_mode = 'pixel-stats', None

    def __init__(self):
        self.seen = 0

    def __call__(self, x):
        self.seen += x.shape[0]
        return torch.cat([x.mean([2, 3]), x.std([2, 3])], dim=1)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    return str(tmp_path / 'cache' / 'gan-metrics')

#----------------------------------------------------------------------------

def test_registry_names():
    for name in ('fid50k_full', 'kid50k_full', 'fid10k_full', 'kid10k_full', 'fid50k_domain', 'fid1k_full'):
        assert metric_main.is_valid_metric(name) and name in metric_main.list_valid_metrics()
    assert not metric_main.is_valid_metric('fid60k')
    for legacy, full in (('fid50k', 'fid50k_full'), ('kid50k', 'kid50k_full'), ('pr50k3', 'pr50k3_full')):   # NVIDIA's legacy names
        assert metric_main.is_valid_metric(legacy) and metric_main.canonical_metric(legacy) == full
        assert f'computing {full}' in metric_main.legacy_note(legacy)
    assert metric_main.legacy_note('fid50k_full') is None and metric_main.required_weights('pr50k3') == metric_main.required_weights('pr50k3_full')
    assert metric_main.metric_label('fid50k_full', 'inception-v3-2015-12-05') == 'fid50k_full'
    assert metric_main.metric_label('kid1k_full', 'dino') == 'kd1k_full@dino'


def test_per_domain_split_uses_the_right_images(tmp_path, cache_dir):
    data = make_dataset(tmp_path / 'data')
    ext = PixelStats()
    good = metric_main.calc_metric('fid1k_domain', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=250)
    swapped = metric_main.calc_metric('fid1k_domain', TinyGenerator(perm=(1, 0)), data, feature_extractor=ext, progress=False, batch_size=250)
    keys = ['fd1k_domain@pixel-stats', 'fd1k_domain_dark@pixel-stats', 'fd1k_domain_bright@pixel-stats']
    assert list(good.results.keys()) == keys and good.metric == keys[0]
    assert good.results[keys[0]] == pytest.approx((good.results[keys[1]] + good.results[keys[2]]) / 2)
    assert max(good.results[keys[1]], good.results[keys[2]]) < 0.05 * min(swapped.results[keys[1]], swapped.results[keys[2]])
    # Direct reference: reals of domain 'bright' only (loaded from disk), fakes with c = bright.
    files = sorted(os.listdir(os.path.join(data['path'], 'd1')))
    bright = torch.stack([torch.from_numpy(np.array(PIL.Image.open(os.path.join(data['path'], 'd1', f)))).permute(2, 0, 1) for f in files])
    real_feats = feature_utils.extract(ext, bright)
    fake_feats = feature_utils.generator_features(TinyGenerator(), ext, 1000, feature_utils.fixed_label_sampler(2, 1), batch_size=250, progress=False)
    assert good.results[keys[2]] == pytest.approx(frechet.frechet_distance_from_features(fake_feats, real_feats), rel=1e-6)


def test_full_metrics_draw_labels_from_the_dataset(tmp_path, cache_dir):
    data = make_dataset(tmp_path / 'data', counts=(24, 8))
    from training.dataset import ImageFolderDataset
    ds = ImageFolderDataset(data['path'], use_labels=True)
    drawn = feature_utils.DatasetLabelSampler(ds, seed=0)(4000)
    assert drawn[:, 1].mean() == pytest.approx(8 / 32, abs=0.03)
    ext = PixelStats()
    fid = metric_main.calc_metric('fid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    wrong = metric_main.calc_metric('fid1k_full', TinyGenerator(perm=(1, 0)), data, feature_extractor=ext, progress=False, batch_size=500)
    assert fid.results['fd1k_full@pixel-stats'] < 0.2 * wrong.results['fd1k_full@pixel-stats']
    kid = metric_main.calc_metric('kid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    assert kid.metric == 'kd1k_full@pixel-stats' and kid.num_reals == 32 and kid.num_images == 1000
    again = metric_main.calc_metric('kid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    assert again.results == kid.results  # seeded: reproducible


def test_cache_reused_and_invalidated(tmp_path, cache_dir):
    data = make_dataset(tmp_path / 'data', counts=(6, 6))
    ext = PixelStats()
    first = metric_main.calc_metric('fid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    assert ext.seen == 12 + 1000 and len(os.listdir(cache_dir)) == 1
    second = metric_main.calc_metric('fid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    assert ext.seen == 12 + 2000 and second.results == first.results  # reals came from the cache
    assert second.reference['hash'] == first.reference['hash'] and second.reference['path'] == os.path.abspath(data['path'])
    PIL.Image.fromarray(np.full([8, 8, 3], 255, np.uint8)).save(os.path.join(data['path'], 'd0', 'img0000.png'))
    third = metric_main.calc_metric('fid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500)
    assert ext.seen == 2 * 12 + 3000 and third.reference['hash'] != first.reference['hash']
    assert third.results != first.results and len(os.listdir(cache_dir)) == 2
    metric_main.calc_metric('fid1k_full', TinyGenerator(), data, feature_extractor=ext, progress=False, batch_size=500, cache=False)
    assert ext.seen == 3 * 12 + 4000


def test_zip_fingerprint_follows_content(tmp_path):
    import zipfile
    from metrics import cache
    path = tmp_path / 'a.zip'
    for content, expect_same in ((b'one', None), (b'one', True), (b'two', False)):
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('x.png', content)
        fp = cache.dataset_fingerprint(str(path))
        if expect_same is not None:
            assert (fp == prev) == expect_same
        prev = fp


def test_errors_are_sentences(tmp_path, cache_dir):
    data = make_dataset(tmp_path / 'data', counts=(3, 3))
    with pytest.raises(ValueError, match='16x16 images but the dataset holds 8x8'):
        metric_main.calc_metric('fid1k_full', TinyGenerator(res=16), data, feature_extractor=PixelStats(), progress=False)
    with pytest.raises(ValueError, match='needs a conditional generator'):
        metric_main.calc_metric('fid1k_domain', TinyGenerator(c_dim=0), data, feature_extractor=PixelStats(), progress=False)
    with pytest.raises(ValueError, match='unknown metric'):
        metric_main.calc_metric('fid7k', TinyGenerator(), data, feature_extractor=PixelStats())


def test_training_hook_records_a_metric_at_a_snapshot(tmp_path, cache_dir, monkeypatch):
    """What train.py does at each snapshot on rank 0: calc_metric + report_metric into the run's jsonl."""
    data = make_dataset(tmp_path / 'data', counts=(4, 4))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    snap = str(run_dir / 'network-snapshot-000040.pt')
    result = metric_main.calc_metric('fid1k_full', TinyGenerator(), data, num_gpus=1, rank=0, device='cpu',
                                     feature_extractor='random-conv', progress=False)
    metric_main.report_metric(result, run_dir=str(run_dir), snapshot_pkl=snap, verbose=False)
    lines = (run_dir / 'metric-fd1k_full@random-conv.jsonl').read_text().splitlines()
    rec = json.loads(lines[-1])
    assert rec['snapshot_pkl'] == 'network-snapshot-000040.pt' and rec['metric'] == 'fd1k_full@random-conv'
    assert set(rec) >= {'results', 'metric', 'total_time', 'total_time_str', 'num_gpus', 'snapshot_pkl', 'timestamp',
                        'mode', 'reference', 'num_images', 'feature_extractor'}
    assert rec['feature_extractor'] == 'random-conv' and np.isfinite(rec['results']['fd1k_full@random-conv'])
    # Inception missing: MetricUnavailableError, which the training loop turns into one warning line.
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    with pytest.raises(metric_main.MetricUnavailableError, match='Inception weights not found'):
        metric_main.calc_metric('fid1k_full', TinyGenerator(), data, progress=False)

#----------------------------------------------------------------------------

def test_training_loop_hook_records_or_warns(tmp_path, cache_dir, monkeypatch):
    """The training loop's own hook: a jsonl line per snapshot; a missing Inception file is one warning line."""
    import functools
    from training import training_loop
    hook = getattr(training_loop, '_evaluate_metrics', None)
    if hook is None:
        pytest.skip('training_loop has no _evaluate_metrics hook')
    data = make_dataset(tmp_path / 'data', counts=(4, 4))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    log = []
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    hook(['fid1k_full'], TinyGenerator(), data, 1, 0, torch.device('cpu'), str(run_dir), str(run_dir / 'network-snapshot-000000.pt'), log.append)
    assert len(log) == 1 and log[0].startswith('Warning: metric fid1k_full skipped for the rest of this run: Inception weights not found')
    assert os.listdir(run_dir) == []
    monkeypatch.setattr(metric_main, 'calc_metric', functools.partial(metric_main.calc_metric, feature_extractor='random-conv', progress=False))
    hook(['fid1k_full'], TinyGenerator(), data, 1, 0, torch.device('cpu'), str(run_dir), str(run_dir / 'network-snapshot-000004.pt'), log.append)
    rec = json.loads((run_dir / 'metric-fd1k_full@random-conv.jsonl').read_text())
    assert rec['snapshot_pkl'] == 'network-snapshot-000004.pt' and rec['num_images'] == 1000
