"""metrics/region_metrics.py: the data set's own renderer scores perfect, generators that ignore their
latent (or redraw the image under a swap) score bottom; DCI; bad input is one sentence."""
import numpy as np
import pytest
import torch

from datasets import builtin, patches
from metrics import region_metrics as rm

SPEC = builtin.get_spec('patches')
RES = 16

#----------------------------------------------------------------------------

def _rows(n=60, seed=0, redraw=False, name='patches'):
    """[n, K, C, H, W] uint8: n content draws, each rendered with a style drawn in every domain (the true
    generator); redraw=True draws fresh content in every domain (a swap that keeps nothing)."""
    spec = builtin.get_spec(name)
    K = len(spec['domains'])
    _, f = builtin.sample_factors(name, n, seed)
    pool_labels, pool = builtin.sample_factors(name, 20 * n, seed + 1)
    _, fresh = builtin.sample_factors(name, K * n, seed + 2)
    cols = []
    for d in range(K):
        g = {k: (fresh[k][d * n:(d + 1) * n] if redraw else v).copy() for k, v in f.items()}
        idx = np.flatnonzero(pool_labels == d)[:n]
        for k in spec['style']:
            g[k] = pool[k][idx]
        cols.append(patches.render_patches(spec, g, RES))
    return torch.from_numpy(np.stack(cols, 1)).permute(0, 1, 4, 2, 3)


def _inside():
    return rm.union(builtin.style_region_masks('patches', RES))

#----------------------------------------------------------------------------

def test_leakage_perfect_for_the_renderer_chance_for_a_redraw_inf_for_a_constant():
    perfect = rm.leakage(_rows(), _inside())
    assert perfect['leakage'] == 0 and perfect['swap_in_region'] > 0.05
    assert rm.leakage(_rows(redraw=True), _inside())['leakage'] == pytest.approx(1.0, abs=0.15)
    const = _rows(name='patches-global')[:1].repeat(10, 1, 1, 1, 1)    # ignores eps: every latent the same rows
    assert rm.leakage(const, _inside())['leakage'] == float('inf')
    assert np.isnan(rm.leakage(_rows()[:1].repeat(10, 1, 1, 1, 1), _inside())['leakage'])    # nothing changes outside: 0 / 0
    assert rm.leakage(_rows(name='patches-global'), _inside())['leakage'] > 0.3  # the control: a true swap leaks


def _fd_jacobian(factor_names, n=40, step=1e-3):
    """Central-difference Jacobian columns of the renderer w.r.t. the named factors: [cols, n, C, H, W]."""
    _, f = builtin.sample_factors('patches', n, 5)
    cols = []
    for k in factor_names:
        up, dn = dict(f), dict(f)
        up[k], dn[k] = f[k] + step, f[k] - step
        d = (patches.render_patches_float(SPEC, up, RES) - patches.render_patches_float(SPEC, dn, RES)) / (2 * step)
        cols.append(np.transpose(d, (0, 3, 1, 2)))
    return torch.from_numpy(np.stack(cols))


def test_region_share_is_one_for_the_true_style_factors_zero_for_content_and_silent_columns():
    inside = _inside()
    assert rm.region_share(_fd_jacobian(['hue', 'level']), inside) == pytest.approx([1.0, 1.0])
    assert rm.region_share(_fd_jacobian(['x', 'size']), inside) == pytest.approx([0.0, 0.0])
    flat = _fd_jacobian(['hue']).flatten(2)                              # [cols, B, C*H*W] is accepted too
    assert rm.region_share(flat, inside) == pytest.approx([1.0])
    assert rm.region_share(torch.zeros([2, 4, 3, RES, RES]), inside).tolist() == [0.0, 0.0]  # ignores its latent
    uniform = torch.ones([1, 4, 3, RES, RES])
    assert rm.region_share(uniform, inside)[0] == pytest.approx(inside.mean())                  # chance = area


def test_dci_perfect_for_the_true_factors_low_for_codes_that_ignore_them():
    _, f = builtin.sample_factors('patches', 2000, 0)
    factors = [(f['shape'], 'class'), (f['x'], 'real'), (f['y'], 'real'), (f['size'], 'real'), (f['hue'], 'circular'), (f['level'], 'real')]
    true_codes = np.stack([f['shape'], f['x'], f['y'], f['size'], np.cos(2 * np.pi * f['hue']), f['level']], 1)
    good = rm.dci(true_codes, factors)
    assert good['dci_disentanglement'] > 0.85 and good['dci_completeness'] > 0.8 and good['dci_informativeness'] > 0.85
    noise = rm.dci(np.random.RandomState(1).randn(2000, 6), factors)
    assert noise['dci_informativeness'] < 0.1                         # bottom: nothing predicted
    assert noise['dci_disentanglement'] < good['dci_disentanglement'] - 0.4
    mixed = rm.dci(true_codes @ np.random.RandomState(2).randn(6, 6), factors)     # same information, entangled
    assert mixed['dci_disentanglement'] < good['dci_disentanglement'] - 0.3


@pytest.mark.parametrize('meta, res, msg', [
    ({}, 16, 'stores no style regions'),
    ({'style_regions': {'a': [0, 0, 2, 1]}}, 16, 'malformed'),
    ({'style_regions': {'a': [0.5, 0, 0.2, 1]}}, 16, 'malformed'),
    ({'style_regions': {'a': [0, 0, 'x', 1]}}, 16, 'malformed'),
    ({'style_regions': {f'r{i}': [0, 0, 1, 1] for i in range(9)}}, 16, 'malformed'),
    ({'style_regions': {'a': [0.01, 0.01, 0.02, 0.02]}}, 16, 'cover no pixel'),
    ({'style_regions': {'a': [0, 0, 1, 1]}}, 8, '16 to 1024'),
])
def test_bad_region_metadata_is_one_sentence(meta, res, msg):
    with pytest.raises(ValueError, match=msg):
        rm.regions_from_meta(meta, res)

#----------------------------------------------------------------------------

def _tiny_flow_G(res=16, pruned=()):
    from training.networks import Generator
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2, class_name='training.domain_flow.DomainFlowMapping', cond_mode='flow', i_dim=4, flow_blocks=2, flow_dim=3),
                  synthesis_kwargs=dict(channel_base=64, channel_max=8))
    with torch.no_grad():
        G.mapping.importance[0, list(pruned)] = 0.0
    return G.eval().requires_grad_(False)


def test_generator_shares_and_map_agree_with_the_columns_they_summarise():
    masks = builtin.style_region_masks('patches', RES)
    G = _tiny_flow_G(pruned=(1,))
    out = rm.generator_region_shares(G, masks, num_latents=3)
    from metrics.generator_jacobian import domain_columns
    assert rm.generator_region_shares(G, masks, columns=domain_columns(G, num_latents=3)) == out   # shared columns: same numbers
    assert len(out['style_in_region_share_per_column']) == 3 and len(out['content_in_region_share_per_column']) == 5
    assert 0 < out['style_in_region_share'] < 1 and out['region_area_share'] == pytest.approx(36 / 256)
    m = rm.style_jacobian_map(G, num_latents=3)
    assert m.shape == (RES, RES) and m.sum() == pytest.approx(1.0)
    # The map pools the same columns: its in-region mass lies within the per-column shares' range.
    cols = out['style_in_region_share_per_column']
    assert min(cols) - 1e-9 <= m[rm.union(masks)].sum() <= max(cols) + 1e-9
    silent = _tiny_flow_G(pruned=(0, 1, 2, 3))                          # no active style dim
    assert np.isnan(rm.generator_region_shares(silent, masks, num_latents=2)['style_in_region_share'])
    assert rm.style_jacobian_map(silent, num_latents=2).sum() == 0
    leak = rm.generator_leakage(G, masks, num_samples=12)
    assert leak['leakage'] > 0 and np.isfinite(leak['leakage'])
