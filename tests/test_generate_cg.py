"""generate.py CG-GAN modes end to end: --swap-grid, --swap-style, --traverse, --list-active."""
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import generate
from torch_utils import snapshot

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def cg_snapshot(tmp_path_factory):
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=3,
        img_resolution=8, img_channels=3, synthesis_kwargs=dict(channel_base=64, channel_max=16),
        mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=2, i_dim=4))
    with torch.no_grad():
        G.mapping.importance[0, 1] = 0.05                                              # dim 1 pruned
        G.mapping.importance[0, 2] = 2.0                                               # dim 2 most important
    path = tmp_path_factory.mktemp('cg') / 'cg.pt'
    snapshot.save_snapshot(str(path), dict(G_ema=G.eval(), training_set_kwargs=dict(domain_names=['red', 'green', 'blue'])))
    return str(path), G


def _run(*args):
    return CliRunner().invoke(generate.main, [str(a) for a in args], catch_exceptions=False)


def _png(path):
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert('RGB'))

#----------------------------------------------------------------------------

def test_list_active(cg_snapshot):
    res = _run('--network', cg_snapshot[0], '--list-active')
    assert res.exit_code == 0, res.output
    assert 'active style dims: 3 of 4' in res.output
    lines = [l for l in res.output.splitlines() if l.strip().startswith('dim')]
    assert [int(l.split()[1]) for l in lines] == [2, 0, 3]                             # sorted by r, dim 1 pruned


def test_swap_grid_same_eps_every_domain(cg_snapshot, tmp_path):
    res = _run('--network', cg_snapshot[0], '--swap-grid', '--seeds', '0-2', '--outdir', tmp_path)
    assert res.exit_code == 0, res.output
    grid = _png(tmp_path / 'swap-grid.png')
    assert grid.shape[0] > 3 * 8 and grid.shape[1] > 3 * 8                            # 3x3 tiles plus headers
    G = cg_snapshot[1]
    z = torch.from_numpy(np.random.RandomState(1).randn(1, 8)).float().repeat(3, 1)
    with torch.no_grad():
        ref = generate.to_uint8(G(z, torch.eye(3), truncation_psi=0.7, noise_mode='const'))
    from training import domain_swap
    lib = domain_swap.swap_grid(G, [0, 1, 2], truncation_psi=0.7)
    assert np.array_equal(lib[1].permute(0, 2, 3, 1).numpy(), ref)


def test_swap_style_and_traverse(cg_snapshot, tmp_path):
    res = _run('--network', cg_snapshot[0], '--swap-style', '--seeds', '3,4', '--domain', 'green', '--outdir', tmp_path)
    assert res.exit_code == 0, res.output
    assert (tmp_path / 'swap-style-3-into-4-green.png').exists()
    res = _run('--network', cg_snapshot[0], '--traverse', 2, '--steps', 5, '--seeds', '1,2', '--domain', 0, '--outdir', tmp_path)
    assert res.exit_code == 0, res.output
    assert (tmp_path / 'traverse-dim2.png').exists()


@pytest.mark.parametrize('args, sentence', [
    (['--swap-grid', '--list-active', '--seeds', '0'], 'cannot be combined'),
    (['--swap-style', '--seeds', '1-3', '--domain', '0'], 'exactly two seeds'),
    (['--traverse', 99, '--seeds', '1', '--domain', '0'], 'outside the latent'),
    (['--swap-grid'], '--seeds and --outdir are required'),
])
def test_cg_mode_errors(cg_snapshot, tmp_path, args, sentence):
    res = _run('--network', cg_snapshot[0], '--outdir' if '--seeds' in args else '--device', tmp_path if '--seeds' in args else 'cpu', *args)
    assert res.exit_code != 0 and sentence in res.output, res.output
