"""style_mixing.py: NVIDIA's grid (rows take the column seeds' ws at --styles) and a domain axis for conditional networks."""
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import style_mixing
from torch_utils import snapshot
from training import generation

#----------------------------------------------------------------------------

def _generator(c_dim, flow):
    torch.manual_seed(0)
    mapping = dict(num_layers=2)
    if flow:
        mapping.update(class_name='training.domain_flow.DomainFlowMapping', i_dim=4)
    return dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=c_dim,
        img_resolution=8, img_channels=3, synthesis_kwargs=dict(channel_base=64, channel_max=16), mapping_kwargs=mapping).eval()


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('mix')
    out = {}
    for name, c_dim, flow in (('plain', 0, False), ('cg', 3, True)):
        G = _generator(c_dim, flow)
        out[name] = (str(root / f'{name}.pt'), G)
        extra = dict(training_set_kwargs=dict(domain_names=['red', 'green', 'blue'])) if c_dim else {}
        snapshot.save_snapshot(out[name][0], dict(G_ema=G, **extra))
    return out


def _run(*args):
    return CliRunner().invoke(style_mixing.main, [str(a) for a in args])


def _png(path):
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


def _direct(G, row, col, styles, c, psi=1.0):
    with torch.no_grad():
        w_row = G.mapping(generation.seed_to_z(row, G.z_dim), c, truncation_psi=psi)
        w_col = G.mapping(generation.seed_to_z(col, G.z_dim), c, truncation_psi=psi)
        w_row[:, styles] = w_col[:, styles]
        return generation.to_uint8(G.synthesis(w_row, noise_mode='const'))[0]

#----------------------------------------------------------------------------

def test_grid_layout_and_cells_are_nvidias(nets, tmp_path):
    path, G = nets['plain']
    res = _run('--network', path, '--rows', '1,2', '--cols', '3,4,5', '--styles', '0-1', '--outdir', tmp_path)
    assert res.exit_code == 0, res.output
    grid = _png(tmp_path / 'grid.png')
    assert grid.shape == (3 * 8, 4 * 8, 3) and not grid[:8, :8].any()                  # blank corner
    c = torch.zeros([1, 0])
    assert np.array_equal(_png(tmp_path / '2-4.png'), _direct(G, 2, 4, [0, 1], c))
    assert np.array_equal(grid[16:24, 16:24], _direct(G, 2, 4, [0, 1], c))             # row 2, column 4
    assert np.array_equal(grid[:8, 24:32], _png(tmp_path / '5-5.png'))                 # unmixed column seed on top
    assert np.array_equal(_direct(G, 1, 3, list(range(G.num_ws)), c), _png(tmp_path / '3-3.png'))   # all layers: the column


def test_domain_axis_one_grid_per_domain(nets, tmp_path):
    path, G = nets['cg']
    res = _run('--network', path, '--rows', '0,1', '--cols', '2', '--domain', 'blue,0', '--trunc', '0.7', '--outdir', tmp_path)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob('grid-*.png')) == ['grid-blue.png', 'grid-red.png']
    styles = list(range(min(7, G.num_ws)))                                             # NVIDIA's 0-6, within the network
    assert f'styles 0-{styles[-1]}' in res.output
    assert np.array_equal(_png(tmp_path / 'blue-1-2.png'), _direct(G, 1, 2, styles, torch.eye(3)[[2]], psi=0.7))
    res = _run('--network', path, '--rows', '0', '--cols', '1', '--outdir', tmp_path / 'all')
    assert res.exit_code == 0 and len(list((tmp_path / 'all').glob('grid-*.png'))) == 3  # default: every domain


@pytest.mark.parametrize('args, words', [
    (['--styles', '0-40'], 'names layer 40, but the network has layers 0..'),
    (['--domain', '3'], '--domain=3 is out of range'),
    (['--domain', 'purple'], 'unknown domain "purple"'),
    (['--rows', '1-x'], 'is not a list of seeds'),
    (['--device', 'bogus'], '--device=bogus is not a device'),
])
def test_bad_inputs_are_one_sentence(nets, tmp_path, args, words):
    base = {'--network': nets['cg'][0], '--rows': '0', '--cols': '1', '--outdir': str(tmp_path / 'o')}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    res = _run(*[x for kv in base.items() for x in kv])
    assert res.exit_code == 1 and 'Traceback' not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and words in errors[0], res.output
    assert not list(tmp_path.rglob('*.png'))
