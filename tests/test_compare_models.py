"""tools/compare_models.py: Jacobian columns against autograd, sparsity measures on known columns,
column split, run-log parsing, CLI end to end on tiny random snapshots."""
import importlib.util
import json
import math
import os

import pytest
import torch
from click.testing import CliRunner

from training.networks import Generator

_spec = importlib.util.spec_from_file_location('compare_models', os.path.join(os.path.dirname(__file__), '..', 'tools', 'compare_models.py'))
cm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cm)

#----------------------------------------------------------------------------

def _tiny_G(flow, seed=0, pruned=()):
    torch.manual_seed(seed)
    mapping = dict(num_layers=2)
    if flow:
        mapping.update(class_name='training.domain_flow.DomainFlowMapping', cond_mode='flow', i_dim=4, flow_blocks=2, flow_dim=3)
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=mapping,
                  synthesis_kwargs=dict(channel_base=64, channel_max=8))
    if flow:
        with torch.no_grad():
            G.mapping.importance[0, list(pruned)] = 0.0
    return G.eval().requires_grad_(False)


def _autograd_columns(G, z, c, columns):
    """Reference: the full Jacobian of render at x by reverse mode (torch.autograd.functional.jacobian)."""
    x = cm.latent_fn(G.mapping)(z, c)
    cols = []
    for b in range(len(x)):
        J = torch.autograd.functional.jacobian(lambda xx: cm.render(G, xx[None]).flatten(), x[b])        # [n, x_dim]
        cols.append(J[:, columns].T)
    return torch.stack(cols, dim=1)                                                                      # [cols, B, n]

#----------------------------------------------------------------------------

@pytest.mark.parametrize('flow', [False, True])
def test_jacobian_columns_match_autograd(flow):
    G = _tiny_G(flow, pruned=(1,))
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(1))
    c = torch.eye(3)[[0, 2]]
    cols = [0, 1, 5, 7]
    got = cm.jacobian_columns(G, z, c, cols, chunk=3)
    ref = _autograd_columns(G, z, c, cols)
    assert got.shape == ref.shape == (4, 2, 3 * 8 * 8)
    assert ref.abs().max() > 1e-3
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_column_sparsity_known_columns():
    n = 100
    onehot = torch.zeros([1, 1, n], dtype=torch.float64)
    onehot[..., 7] = -3.0
    flat = torch.full([1, 1, n], 0.5, dtype=torch.float64)
    J = torch.cat([onehot, flat])                                                                        # [2 cols, 1 sample, n]
    s = cm.column_sparsity(J, tau=0.05)
    assert s['l1'] == pytest.approx([3.0 / n, 0.5])
    assert s['l1_l2'] == pytest.approx([1 / math.sqrt(n), 1.0])
    assert s['hoyer'] == pytest.approx([1.0, 0.0], abs=1e-12)
    assert s['small'] == pytest.approx([(n - 1) / n, 0.0])
    # Scale-free measures do not move when the whole column shrinks; raw L1 does.
    J2 = torch.randn([3, 4, n], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = cm.column_sparsity(J2), cm.column_sparsity(J2 * 0.01)
    for key in ('l1_l2', 'hoyer', 'small'):
        assert a[key] == pytest.approx(b[key])
    assert b['l1'] == pytest.approx(a['l1'] * 0.01)


def test_column_split_flow_and_baseline():
    style, content, note = cm.column_split(_tiny_G(True, pruned=(1, 2)))
    assert style == [0, 3] and content == [1, 2, 4, 5, 6, 7] and 'active' in note
    style, content, note = cm.column_split(_tiny_G(False))
    assert style == [0, 1, 2, 3] and content == [4, 5, 6, 7] and 'no mask' in note
    assert cm.active_dims(_tiny_G(True, pruned=(1, 2))) == 2 and cm.active_dims(_tiny_G(False)) is None


def test_measure_generator_groups():
    r = cm.measure_generator(_tiny_G(True, pruned=(1,)), num_latents=2, seed=0)
    assert len(r['style_l1_per_column']) == 3 and len(r['content_l1_per_column']) == 5
    assert r['style_l1'] == pytest.approx(sum(r['style_l1_per_column']) / 3)
    assert r['style_content_l1_ratio'] == pytest.approx(r['style_l1'] / r['content_l1'])
    assert 1 / math.sqrt(192) <= r['style_l1_l2'] <= 1
    G = _tiny_G(True, pruned=(1,))
    assert cm.measure_generator(G, columns=cm.domain_columns(G, num_latents=2, seed=0)) == r   # shared columns: same numbers


def test_run_stats(tmp_path):
    ticks = [{'Timing/sec_per_kimg': {'num': 1, 'mean': 100.0}, 'Progress/kimg': {'num': 1, 'mean': 0.032}},
             {'Timing/sec_per_kimg': {'num': 1, 'mean': 10.0}, 'Loss/G/imgsparse': {'num': 3, 'mean': 0.2}, 'Progress/active_dims': {'num': 1, 'mean': 30}, 'Progress/kimg': {'num': 1, 'mean': 4.0}},
             {'Timing/sec_per_kimg': {'num': 1, 'mean': 14.0}, 'Loss/G/imgsparse': {'num': 1, 'mean': 0.6}, 'Progress/active_dims': {'num': 1, 'mean': 28}, 'Progress/kimg': {'num': 1, 'mean': 8.0}}]
    (tmp_path / 'stats.jsonl').write_text(''.join(json.dumps(t) + '\n' for t in ticks))
    s = cm.run_stats(str(tmp_path))
    assert s['sec_per_kimg'] == pytest.approx(12.0) and s['kimg'] == pytest.approx(8.0)
    assert s['ls_applications'] == 4 and s['ls_mean'] == pytest.approx(0.3) and s['active_dims_per_tick'] == [30, 28]
    assert cm.run_stats(str(tmp_path / 'missing')) == {}


def test_train_command():
    cmd = cm.train_command('cg-gan', '/d.zip', 40, 3, '/o', python='py')
    assert cmd[0] == 'py' and cmd[1].endswith('train.py')
    assert {'--cfg=tiny', '--model=cg-gan', '--kimg=40', '--seed=3', '--data=/d.zip', '--outdir=/o', '--metrics=none'} <= set(cmd)

#----------------------------------------------------------------------------

def test_cli_on_snapshots(tmp_path):
    from torch_utils.snapshot import save_snapshot
    paths = []
    for name, flow in (('base', False), ('cg', True)):
        G = _tiny_G(flow, pruned=(2,))
        p = str(tmp_path / f'{name}.pt')
        save_snapshot(p, dict(G=G, G_ema=G))
        paths.append(f'--network={name}={p}')
    out = tmp_path / 'out'
    res = CliRunner().invoke(cm.main, [f'--outdir={out}', '--num-latents=1', '--swap-samples=0'] + paths)
    assert res.exit_code == 0, res.output
    data = json.loads((out / 'results.json').read_text())
    assert set(data) == {'base', 'cg'} and data['cg']['active_G_ema'] == 3 and data['base']['active_G'] is None
    md = (out / 'results.md').read_text()
    assert md.startswith('| model |') and '| cg | 3 / 3 |' in md and 'no mask' in md


def test_cli_user_errors(tmp_path):
    res = CliRunner().invoke(cm.main, [f'--outdir={tmp_path}', '--network=nonsense'])
    assert res.exit_code != 0 and 'NAME=PATH' in res.output and 'Traceback' not in res.output
    res = CliRunner().invoke(cm.main, [f'--outdir={tmp_path}', f'--network=a={tmp_path}/none.pt'])
    assert res.exit_code != 0 and 'does not exist' in res.output
    res = CliRunner().invoke(cm.main, [f'--outdir={tmp_path}'])
    assert res.exit_code != 0 and '--data' in res.output
    res = CliRunner().invoke(cm.main, [f'--outdir={tmp_path}', f'--data={tmp_path}', '--models=foo'])
    assert res.exit_code != 0 and 'unknown model' in res.output

#----------------------------------------------------------------------------

def test_ls_gradient_share_scales_with_weight():
    from training.networks import Discriminator
    torch.manual_seed(0)
    G = _tiny_G(True, pruned=(1,))
    D = Discriminator(c_dim=3, img_resolution=8, img_channels=3, channel_base=64, channel_max=8, epilogue_kwargs=dict(mbstd_group_size=4))
    a = cm.ls_gradient_share(G, D, 0.1, sparse_interval=4, batch=4)
    b = cm.ls_gradient_share(G, D, 0.2, sparse_interval=4, batch=4)
    assert a['grad_norm_adv'] > 0 and a['grad_norm_ls_weighted'] > 0 and a['ls_value'] > 0
    assert b['grad_ratio_ls_to_adv'] == pytest.approx(2 * a['grad_ratio_ls_to_adv'], rel=1e-4)
    assert cm.ls_gradient_share(G, D, 0.0, batch=4)['grad_ratio_ls_to_adv'] == 0
