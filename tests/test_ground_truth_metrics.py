"""Ground-truth metrics: the data set's own renderer scores top, a generator that ignores its inputs scores
bottom; fd_oracle is 0 on equal sets and grows with a shift; the oracle cache round-trips; no factors ->
one sentence."""
import json

import numpy as np
import pytest
import scipy.stats
import torch
from click.testing import CliRunner

from datasets import builtin
from datasets.writer import DatasetWriter, encode_png
from metrics import factor_oracle, ground_truth, metric_main
from training.dataset import ImageFolderDataset

SPEC = builtin.SHAPES_SPEC
QUICK = dict(max_images=1500, steps=500, batch_size=32)      # a brief oracle for tests; the defaults are in the docs

#----------------------------------------------------------------------------

def write_shapes(path, n=1500, res=16, factors=True):
    src = builtin.open_builtin('shapes', n, res, seed=0)
    with DatasetWriter(str(path)) as w:
        for item in src.items():
            w.add_image(encode_png(item.load()), item.label, item.factors if factors else None)
        w.commit(domains=src.domains, factor_names=src.factor_names if factors else None, extra=src.extra if factors else None)
    return str(path)


class _Mask:
    def __init__(self, z_dim, dims):
        self.z_dim, self.dims = z_dim, dims

    def style_mask(self, device=None):
        m = torch.zeros([self.z_dim], dtype=torch.bool, device=device)
        m[self.dims] = True
        return m


class ShapesRenderer(torch.nn.Module):
    """builtin:shapes' own renderer as a generator: eps dims 0-4 -> shape, x, y, scale, rotation (content),
    dims 5-6 -> hue, background inside the domain's law (style, the mask), dim 7 unused. ignore=True draws
    one fixed scene in domain 0's style whatever eps and the domain."""
    def __init__(self, res=16, ignore=False):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.ignore = 8, 3, res, ignore
        self.mapping = _Mask(8, [5, 6])

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='const'):
        u = scipy.stats.norm.cdf(z.cpu().numpy().astype(np.float64))
        d = c.argmax(1).cpu().numpy()
        if self.ignore:
            u, d = np.full_like(u, 0.5), np.zeros_like(d)
        lo, hi = np.asarray(SPEC['background'])[d].T
        f = dict(shape=np.minimum(np.floor(3 * u[:, 0]), 2), x=(u[:, 1] - 0.5) * 2 * SPEC['position'],
                 y=(u[:, 2] - 0.5) * 2 * SPEC['position'], scale=SPEC['scale'][0] + (SPEC['scale'][1] - SPEC['scale'][0]) * u[:, 3],
                 rotation=2 * np.pi * u[:, 4], background=lo + (hi - lo) * u[:, 6],
                 hue=np.mod(np.asarray(SPEC['hue_centre'])[d] + SPEC['hue_spread'] * (2 * u[:, 5] - 1), 1.0))
        img = torch.from_numpy(builtin.render_shapes(f, self.img_resolution)).permute(0, 3, 1, 2)
        return img.to(torch.float32) / 127.5 - 1

class NoiseG(torch.nn.Module):
    """Images unlike any real one: a fixed noise pattern scaled by 1 + |eps[0]|."""
    z_dim, c_dim, img_resolution = 8, 3, 16

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='const'):
        pattern = torch.randn([3, 16, 16], generator=torch.Generator().manual_seed(0))
        return (pattern[None] * (1 + z[:, :1, None, None].abs())).clamp(-1, 1)

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shapes_zip(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp('gt') / 'shapes-16.zip')


@pytest.fixture(scope='module')
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp('cache')


@pytest.fixture(scope='module')
def oracle(shapes_zip, cache_root):
    return factor_oracle.load_or_train(shapes_zip, cache_dir=str(cache_root / 'factor-oracle'), progress=False, **QUICK)


def test_oracle_reads_the_factors(oracle):
    s = oracle.scores
    assert s['oracle_shape_acc_real'] > 0.8 and min(s[f'oracle_{f}_r2_real'] for f in ('x', 'y', 'scale', 'hue', 'background')) > 0.6
    assert 'rotation' not in oracle.names() and oracle.names('style') == ['hue', 'background']
    assert oracle.meta['class_names']['shape'] == ['circle', 'square', 'triangle']
    assert oracle.meta['real_in_range'] > 0.8


def test_perfect_renderer_scores_top_and_ignoring_generator_bottom(oracle):
    top = ground_truth.evaluate(ShapesRenderer(), oracle, num_samples=200)
    bottom = ground_truth.evaluate(ShapesRenderer(ignore=True), oracle, num_samples=200)
    assert top['content_shape_kappa'] > 0.8 and min(top[f'content_{f}_corr'] for f in ('x', 'y', 'scale')) > 0.9
    assert top['style_in_range'] > 0.8 and top['mig_content'] > 0.5 and top['mig_style'] > 0.3 and top['style_dims'] == 2
    assert bottom['content_shape_kappa'] == 0 and bottom['content_kept'] == 0
    assert abs(bottom['style_in_range'] - 1 / 3) < 0.02                      # in range only in domain 0
    assert bottom['mig_content'] == 0 and bottom['mig_style'] == 0
    assert bottom['fd_oracle'] > 10 * top['fd_oracle'] and top['recall_oracle'] > 3 * bottom['recall_oracle']
    assert top['recognised_shape'] > 0.5 and sum(bottom[f'recognised_shape_{s}'] > 0 for s in SPEC['shapes']) <= 1


def test_unrealistic_images_are_not_recognised(oracle):
    r = ground_truth.evaluate(NoiseG(), oracle, num_samples=100)
    _feats, _values, probs = oracle.predict(ground_truth.render_rows(NoiseG(), 100)[1].flatten(0, 1))
    assert (probs['shape'].max(1) >= factor_oracle.RECOGNISED_CONFIDENCE).mean() > 0.5   # confident, yet ...
    assert r['recognised_shape'] == 0 and 0.5 < r['recognised_shape_real'] <= 0.99      # ... not typical of the reals


def test_fd_oracle_is_zero_on_equal_sets_and_grows_with_a_shift(shapes_zip, oracle):
    ds = ImageFolderDataset(shapes_zip, use_labels=True)
    imgs = torch.from_numpy(np.stack([ds[i][0] for i in range(300)]))
    fd = [ground_truth.fd_oracle(oracle, imgs, (imgs.to(torch.int16) + shift).clamp(0, 255).to(torch.uint8)) for shift in (0, 20, 60)]
    assert abs(fd[0]) < 1e-4 and 1e-2 < fd[1] < fd[2]                         # 0 up to round-off


def test_cache_round_trip_and_bad_file(shapes_zip, oracle, cache_root, tmp_path):
    files = list((cache_root / 'factor-oracle').iterdir())
    assert len(files) == 1
    again = factor_oracle.load_or_train(shapes_zip, cache_dir=str(cache_root / 'factor-oracle'), progress=False, **QUICK)
    img = torch.from_numpy(np.stack([ImageFolderDataset(shapes_zip)[i][0] for i in range(20)]))
    assert np.array_equal(oracle.predict(img)[0], again.predict(img)[0]) and oracle.meta == again.meta
    blob = torch.load(files[0], weights_only=True)
    blob['state']['heads.0.weight'] = torch.zeros([3, 3])                               # wrong size -> not used
    torch.save(blob, tmp_path / 'bad.pt')
    assert factor_oracle.load_oracle(str(tmp_path / 'bad.pt')) is None
    blob = torch.load(files[0], weights_only=True)
    meta = json.loads(blob['meta'])
    meta['style_ranges']['hue'] = meta['style_ranges']['hue'][:1]                      # one domain's range for three
    torch.save(dict(blob, meta=json.dumps(meta)), tmp_path / 'bad_meta.pt')
    assert factor_oracle.load_oracle(str(tmp_path / 'bad_meta.pt')) is None
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    assert factor_oracle.load_oracle(str(tmp_path / 'junk.pt')) is None


def test_no_factors_is_one_sentence(tmp_path):
    path = write_shapes(tmp_path / 'plain.zip', n=20, factors=False)
    with pytest.raises(ValueError, match=r'stores no ground-truth factors; .*--source=builtin:shapes\.$'):
        factor_oracle.load_or_train(path, cache_dir=str(tmp_path), progress=False)


def test_gt1k_through_calc_metrics(shapes_zip, oracle, cache_root, tmp_path, monkeypatch):
    """The registered metric runs through calc_metrics.py without Inception weights (oracle from the cache)."""
    import calc_metrics
    from torch_utils.snapshot import save_snapshot
    from training.networks import Generator
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(cache_root))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    for k, v in QUICK.items():
        monkeypatch.setitem(factor_oracle.DEFAULTS, k, v)
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=16, img_channels=3,
                  mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    save_snapshot(str(tmp_path / 'network-snapshot-000000.pt'), dict(G_ema=G))
    args = ['--metrics=gt1k', f'--network={tmp_path / "network-snapshot-000000.pt"}', '--gpus=0', '--quiet']
    res = CliRunner().invoke(calc_metrics.main, args + [f'--data={shapes_zip}'], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert 'fd_oracle' in res.output and 'content_shape_kappa' in res.output and 'fid' not in res.output.lower()
    plain = write_shapes(tmp_path / 'plain.zip', n=20, factors=False)
    res = CliRunner().invoke(calc_metrics.main, args + [f'--data={plain}'], catch_exceptions=False)
    assert res.exit_code == 1 and 'stores no ground-truth factors' in res.output and 'Traceback' not in res.output
    assert metric_main.is_valid_metric('gt1k') and metric_main.required_weights('gt1k') == []

#----------------------------------------------------------------------------

class ClassOnly:
    """K-colour-MNIST-like view of the shapes set: one factor 'class', no factor_kinds."""
    factor_names, has_factors, num_domains = ['class'], True, 3

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    def get_factors(self, i):
        return self.ds.get_factors(i)[:1]


def test_class_only_data_set_has_content_metrics_only(shapes_zip):
    o = factor_oracle.load_or_train(ClassOnly(ImageFolderDataset(shapes_zip, use_labels=True)), progress=False, max_images=300, steps=20)
    assert o.names('content') == ['class'] and o.names('style') == [] and o.meta['class_names']['class'] == ['0', '1', '2']
    r = ground_truth.evaluate(ShapesRenderer(), o, num_samples=30)
    assert 'content_class_kappa' in r and 'recognised_class_2' in r and 'mig_content' in r
    assert not any(k.startswith('style_in') or k == 'mig_style' for k in r)
