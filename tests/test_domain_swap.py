"""Swap grids, style swaps, traversals and PNG grids of a (tiny, random) CG-GAN generator."""
import os

import numpy as np
import PIL.Image
import pytest
import torch

from training.domain_swap import list_active, save_grid_png, seed_to_z, swap_grid, swap_style, traverse, to_uint8
from training.networks import Generator

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def G():
    torch.manual_seed(0)
    G = Generator(16, 3, 12, 16, 3, mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping',
        num_layers=2, i_dim=6, layer_features=16), synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval()
    with torch.no_grad():
        G.mapping.importance[0] = torch.tensor([1.0, 0.05, 2.0, 0.0, 0.5, 0.3])
        getattr(G.mapping, f'flow_fc{G.mapping.num_layers}').weight.mul_(30)
    return G

def _onehot(k, n=1):
    return torch.eye(3)[[k] * n]

#----------------------------------------------------------------------------

def test_swap_grid_rows_share_eps_and_columns_are_domains(G):
    grid = swap_grid(G, seeds=[1, 7], domains=[0, 2, 1], truncation_psi=0.7)
    assert grid.shape == (2, 3, 3, 16, 16) and grid.dtype == torch.uint8
    for i, seed in enumerate([1, 7]):
        for j, d in enumerate([0, 2, 1]):
            ref = to_uint8(G(seed_to_z(G, seed), _onehot(d), truncation_psi=0.7, noise_mode='const'))[0]
            assert torch.equal(grid[i, j], ref)
    assert not torch.equal(grid[0, 0], grid[0, 1])
    with pytest.raises(ValueError, match='domain 5 does not exist'):
        swap_grid(G, seeds=[0], domains=[5])


def test_swap_style_takes_style_dims_from_src_and_the_rest_from_dst(G):
    src, dst, swapped = swap_style(G, 3, 4, 1, truncation_psi=1)
    z = seed_to_z(G, 4).clone()
    active = [0, 2, 4, 5]
    z[0, active] = seed_to_z(G, 3)[0, active]
    assert torch.equal(swapped, to_uint8(G(z, _onehot(1), noise_mode='const'))[0])
    assert torch.equal(src, to_uint8(G(seed_to_z(G, 3), _onehot(1), noise_mode='const'))[0])
    saved = G.mapping.importance.detach().clone()
    try:
        with torch.no_grad():
            G.mapping.importance.zero_()                        # nothing domain-specific: swap = dst
        src, dst, swapped = swap_style(G, 3, 4, 1)
        assert torch.equal(swapped, dst) and not torch.equal(src, dst)
    finally:
        with torch.no_grad():
            G.mapping.importance.copy_(saved)


def test_traverse_sets_one_eps_dim(G):
    imgs = traverse(G, 5, 2, dim=2, values=[-2, 0, 2], truncation_psi=1)
    assert imgs.shape == (3, 3, 16, 16)
    z = seed_to_z(G, 5).clone()
    z[0, 2] = 2.0
    assert torch.equal(imgs[2], to_uint8(G(z, _onehot(2), noise_mode='const'))[0])
    assert not torch.equal(imgs[0], imgs[2])
    with pytest.raises(ValueError, match='outside the latent'):
        traverse(G, 5, 2, dim=16, values=[0])


def test_list_active_sorted(G):
    assert [d for d, r in list_active(G)] == [2, 0, 4, 5]
    assert list_active(G)[0][1] == pytest.approx(2.0)


def test_save_grid_png_with_headers(G, tmp_path):
    grid = swap_grid(G, seeds=[0, 1], truncation_psi=0.7)
    path = tmp_path / 'sub' / 'grid.png'
    save_grid_png(grid, str(path), col_headers=['red-on-dark', 'green', 'blue'], row_headers=['seed0', 'seed1'])
    assert os.listdir(path.parent) == ['grid.png']
    img = np.asarray(PIL.Image.open(path).convert('RGB'))
    save_grid_png(grid, str(tmp_path / 'plain.png'))
    plain = np.asarray(PIL.Image.open(tmp_path / 'plain.png').convert('RGB'))
    assert img.shape[0] > plain.shape[0] and img.shape[1] > plain.shape[1]   # room for headers
    top = img[: img.shape[0] - plain.shape[0]]
    assert (top < 100).any()                                    # text was drawn
    # the tiles are the images
    assert np.array_equal(plain[2:18, 2:18], grid[0, 0].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match='column headers'):
        save_grid_png(grid, str(tmp_path / 'bad.png'), col_headers=['a'])

@pytest.mark.parametrize('res', [4, 16, 64])
def test_column_headers_never_overlap(res):
    from training.domain_swap import grid_image
    headers = ['red-on-dark', 'green-on-grey', 'blue-on-light']
    tiles = torch.full([2, 3, 3, res, res], 128, dtype=torch.uint8)
    img = np.asarray(grid_image(tiles, col_headers=headers)).min(axis=2)
    ink = np.nonzero((img[:12] < 128).any(axis=0))[0]                          # x of the header text pixels
    lo, hi = ink.min(), ink.max()
    cell = (img.shape[1] - 2) // 3                                              # equal columns, 2 px margin
    owners = [(x - 2) // cell for x in ink]
    assert sorted(set(owners)) == [0, 1, 2] and np.all(np.diff(owners) >= 0) and lo >= 2 and hi < img.shape[1] - 2
    for j in range(3):                                                          # each column holds its own header whole
        mine = ink[np.array(owners) == j]
        assert mine.max() - mine.min() + 1 <= cell - 2
    gray = np.nonzero((img[14:] == 128).any(axis=0))[0]
    assert len(gray) == 3 * res                                                 # tiles intact, one per column

#----------------------------------------------------------------------------
