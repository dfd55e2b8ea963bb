"""generate.py end to end on small random networks (our .pt format and an NVIDIA-format pickle)."""
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import generate
from tests import fixtures_nvidia as fx
from torch_utils import snapshot

#----------------------------------------------------------------------------

def _G(c_dim):
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=c_dim,
        img_resolution=8, img_channels=3, mapping_kwargs=dnnlib.EasyDict(num_layers=2),
        synthesis_kwargs=dnnlib.EasyDict(channel_base=64, channel_max=16))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope='module')
def snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp('nets')
    cond, uncond = folder / 'cond.pt', folder / 'uncond.pt'
    snapshot.save_snapshot(str(cond), dict(G_ema=_G(2), training_set_kwargs=dict(path='x.zip', domain_names=['cat', 'dog'])))
    snapshot.save_snapshot(str(uncond), dict(G_ema=_G(0)))
    return dict(cond=str(cond), uncond=str(uncond))


def _run(*args):
    return CliRunner().invoke(generate.main, [str(a) for a in args], catch_exceptions=False)


def _png(path):
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert('RGB'))

#----------------------------------------------------------------------------

def test_images_written_and_reproducible(snapshots, tmp_path):
    res = _run('--network', snapshots['cond'], '--seeds', '0-2,7', '--domain', 'dog', '--outdir', tmp_path / 'a', '--grid', '--device', 'cpu')
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert names == ['grid.png', 'seed0000.png', 'seed0001.png', 'seed0002.png', 'seed0007.png']
    img = _png(tmp_path / 'a' / 'seed0007.png')
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert _png(tmp_path / 'a' / 'grid.png').shape == (16, 16, 3)
    # Same seed -> same image, also with a different batch composition; equals G's output for NVIDIA's z.
    res = _run('--network', snapshots['cond'], '--seeds', '7', '--class', '1', '--outdir', tmp_path / 'b', '--batch', '1')
    assert res.exit_code == 0, res.output
    assert np.array_equal(_png(tmp_path / 'b' / 'seed0007.png'), img)
    G = snapshot.load_snapshot(snapshots['cond'])['G_ema']
    z = torch.from_numpy(np.random.RandomState(7).randn(1, 8)).float()
    with torch.no_grad():
        ref = generate.to_uint8(G(z, torch.tensor([[0., 1.]]), noise_mode='const'))[0]
    assert np.array_equal(ref, img)
    # Different domain -> different image.
    _run('--network', snapshots['cond'], '--seeds', '7', '--domain', 'cat', '--outdir', tmp_path / 'c')
    assert not np.array_equal(_png(tmp_path / 'c' / 'seed0007.png'), img)


def test_fused_ops_give_the_reference_images(snapshots, tmp_path, monkeypatch):
    pytest.importorskip('triton')
    from torch_utils.ops import fused
    monkeypatch.setenv('TRITON_INTERPRET', '1')   # the kernels on the CPU
    monkeypatch.delitem(sys.modules, 'torch_utils.ops.triton_kernels', raising=False)
    fused.reset()
    try:
        res = _run('--network', snapshots['cond'], '--seeds', '1,5', '--domain', 'dog', '--outdir', tmp_path / 'fused', '--fast', 'fused', '--device', 'cpu')
        assert res.exit_code == 0, res.output
        assert fused.status() and all(fused.status().values())
    finally:
        fused.set_enabled(False)
        fused.reset()
    _run('--network', snapshots['cond'], '--seeds', '1,5', '--domain', 'dog', '--outdir', tmp_path / 'ref', '--device', 'cpu')
    for name in ('seed0001.png', 'seed0005.png'):
        diff = np.abs(_png(tmp_path / 'fused' / name).astype(int) - _png(tmp_path / 'ref' / name).astype(int))
        assert diff.max() <= 1  # float32 rounding can flip one 8-bit level


def test_random_noise_is_seeded(snapshots, tmp_path):
    for sub in ('a', 'b'):
        res = _run('--network', snapshots['uncond'], '--seeds', '3,4', '--noise-mode', 'random', '--outdir', tmp_path / sub)
        assert res.exit_code == 0, res.output
    assert np.array_equal(_png(tmp_path / 'a' / 'seed0004.png'), _png(tmp_path / 'b' / 'seed0004.png'))


def test_nvidia_pickle_works(tmp_path):
    G = _G(0)
    path = tmp_path / 'nvidia.pkl'
    path.write_bytes(fx.nvidia_pickle_bytes(dict(G_ema=G, G=G, D=None)))
    res = _run('--network', path, '--seeds', '1', '--outdir', tmp_path / 'out', '--trunc', '0.5')
    assert res.exit_code == 0, res.output
    assert _png(tmp_path / 'out' / 'seed0001.png').shape == (8, 8, 3)


@pytest.mark.parametrize('args,sentence', [
    (['--seeds', '1-x'], '"1-x" is not a list of seeds; use numbers and ranges like 0-7,12'),
    (['--seeds', '5-2'], 'is not a list of seeds'),
    (['--seeds', '1'], 'the network is conditional with 2 domains (0=cat, 1=dog): pick one with --domain (or --class).'),
    (['--seeds', '1', '--domain', 'bird'], 'unknown domain "bird": use one of cat, dog or an index 0..1.'),
    (['--seeds', '1', '--domain', '5'], '--domain=5 is out of range: the network has domains 0..1.'),
])
def test_user_errors_are_one_sentence(snapshots, tmp_path, args, sentence):
    res = _run('--network', snapshots['cond'], '--outdir', tmp_path, *args)
    assert res.exit_code != 0
    assert sentence in res.output and 'Traceback' not in res.output


def test_bad_network_files(tmp_path):
    (tmp_path / 'notes.txt').write_text('hello')
    res = _run('--network', tmp_path / 'notes.txt', '--seeds', '1', '--outdir', tmp_path / 'o')
    assert res.exit_code == 1 and 'is a text file, not a network snapshot' in res.output
    res = _run('--network', tmp_path / 'missing.pkl', '--seeds', '1', '--outdir', tmp_path / 'o')
    assert res.exit_code == 1 and 'File not found' in res.output


def test_parse_range():
    assert generate.parse_range('0-3,7, 9-10') == [0, 1, 2, 3, 7, 9, 10]
    assert generate.parse_range([1, 2]) == [1, 2]
    with pytest.raises(ValueError):
        generate.parse_range('')

#----------------------------------------------------------------------------
