"""DomainFlowMapping: dense sigmoid flow, importance mask, flow_norm, NVIDIA-compatible mapping API."""
import numpy as np
import pytest
import torch

from training.domain_flow import DenseSigmoidFlow, DomainFlowMapping

#----------------------------------------------------------------------------

def _mapping(cond_mode='flow', z_dim=16, c_dim=3, i_dim=8, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = dict(dict(w_dim=12, num_ws=4, num_layers=2, layer_features=16, embed_features=8), **kwargs)
    return DomainFlowMapping(z_dim, c_dim, cond_mode=cond_mode, i_dim=i_dim, **kwargs)

def _onehot(labels, k=3):
    return torch.eye(k)[torch.as_tensor(labels)]

def _naive_flow(eps, theta, blocks):
    """Per-sample, per-dim loop over the dense sigmoid flow formulas of docs/method.md."""
    out = torch.empty_like(eps)
    c0 = np.log(np.exp(1 - 1e-7) - 1)
    for b in range(eps.shape[0]):
        for i in range(eps.shape[1]):
            x = eps[b, i].reshape(1)
            start = 0
            for blk in blocks:
                H, n_in = blk.u_.shape
                q = theta[b, i, start:start + 3 * H + n_in]
                a = torch.nn.functional.softplus(q[:H] + c0)
                W = torch.softmax(blk.w_ + q[2 * H:3 * H][None, :], dim=1)
                U = torch.softmax(blk.u_ + q[3 * H:][None, :], dim=1)
                x = W @ torch.selu(a * (U @ x) + q[H:2 * H])
                start += 3 * H + n_in
            out[b, i] = x[0]
    return out

#----------------------------------------------------------------------------

@pytest.mark.parametrize('blocks,H,P', [(1, 10, 31), (2, 10, 71), (3, 4, 12 + 1 + 16 + 16)])
def test_flow_param_count_and_naive_reference(blocks, H, P):
    torch.manual_seed(1)
    flow = DenseSigmoidFlow(num_blocks=blocks, hidden_dim=H)
    assert flow.num_params == P
    for blk in flow.model:
        blk.u_.data.normal_(); blk.w_.data.normal_()
    eps = torch.randn(3, 5)
    theta = torch.randn(3, 5, P)
    torch.testing.assert_close(flow(eps, theta), _naive_flow(eps, theta, list(flow.model)), rtol=1e-5, atol=1e-5)


def test_flow_monotone_in_eps_for_every_domain():
    # eps_i -> z_i is strictly increasing (so invertible) in every domain; the 'mlp' ablation is not.
    m = _mapping('flow', flow_norm=False)
    with torch.no_grad():
        m.importance.uniform_(0.3, 2.0)
        getattr(m, f'flow_fc{m.num_layers}').weight.mul_(30) # large, varied theta(u)
    grid = torch.linspace(-4, 4, 201)
    base = torch.randn(1, m.z_dim).repeat(len(grid), 1)
    for k in range(3):
        for i in range(m.i_dim):
            z = base.clone()
            z[:, i] = grid
            with torch.no_grad():
                x = m.latent(z, _onehot([k] * len(grid)))
            assert (x[1:, i] - x[:-1, i] > 0).all(), f'z_{i} not increasing in eps_{i} for domain {k}'
            # element-wise: other dims do not move
            others = [j for j in range(m.z_dim) if j != i]
            assert torch.equal(x[:, others], x[:1, others].expand(len(grid), -1))


def test_domains_change_style_dims_only():
    m = _mapping('flow', flow_norm=False)
    with torch.no_grad():
        getattr(m, f'flow_fc{m.num_layers}').weight.mul_(30)
    z = torch.randn(5, m.z_dim)
    x0, x1 = [m.latent(z, _onehot([k] * 5)).detach() for k in (0, 1)]
    assert torch.equal(x0[:, m.i_dim:], z[:, m.i_dim:])
    assert torch.equal(x0[:, m.i_dim:], x1[:, m.i_dim:])
    assert (x0[:, :m.i_dim] - x1[:, :m.i_dim]).abs().min() > 0


def test_mask_threshold_and_pruning_stay_pruned():
    m = _mapping('flow')
    with torch.no_grad():
        m.importance[0, :3] = torch.tensor([0.05, 0.1, -0.5]) # r <= 0.1: off (0.1 itself is off)
        m.importance[0, 3] = 0.11
    assert m.active_mask().tolist() == [False, False, False] + [True] * (m.i_dim - 3)
    assert m.num_active() == m.i_dim - 3
    assert m.style_mask().tolist() == [False] * 3 + [True] * (m.i_dim - 3) + [False] * (m.z_dim - m.i_dim)
    # Pruned dims: z_s = eps_s (flow switched off), and no GAN gradient reaches their r.
    z = torch.randn(6, m.z_dim)
    m.flow_norm = False
    x = m.latent(z, _onehot([0, 1, 2, 0, 1, 2]))
    assert torch.equal(x[:, :3], z[:, :3])
    m.flow_norm = True
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for step in range(3):
        opt.zero_grad()
        ws = m(torch.randn(6, m.z_dim), _onehot([0, 1, 2, 0, 1, 2]))
        (ws.square().mean() + ws[:, 0, 0].sum()).backward()
        assert torch.equal(m.importance.grad[0, :3], torch.zeros(3))
        assert m.importance.grad[0, 3:].abs().sum() > 0
        opt.step()
        assert not m.active_mask()[:3].any()


def test_active_dims_sorted_by_importance():
    m = _mapping('mlp', i_dim=6)
    with torch.no_grad():
        m.importance[0] = torch.tensor([0.5, 0.05, 2.0, 0.3, 0.0, 1.0])
    assert m.active_dims() == [2, 5, 0, 3]
    assert _mapping('concat').active_dims() == [] and _mapping('concat').num_active() == 0


@pytest.mark.parametrize('cond_mode', ['flow', 'mlp'])
def test_flow_norm_groups_unit_second_moment(cond_mode):
    m = _mapping(cond_mode, z_dim=20, i_dim=10)
    with torch.no_grad():
        m.importance[0, [1, 4, 7]] = 0.0
    x = m.latent(3 * torch.randn(7, 20), _onehot([0, 1, 2, 0, 1, 2, 0])).detach()
    style = m.style_mask()
    assert style.sum() == 7
    torch.testing.assert_close(x[:, style].square().mean(1), torch.ones(7))
    torch.testing.assert_close(x[:, ~style].square().mean(1), torch.ones(7))


def test_flow_norm_matches_boolean_indexing_reference():
    m = _mapping('flow', z_dim=20, i_dim=10)
    with torch.no_grad():
        m.importance[0, [0, 9]] = 0.0
    z, c = torch.randn(4, 20), _onehot([2, 1, 0, 2])
    x = m.latent(z, c).detach()
    m.flow_norm = False
    raw = m.latent(z, c).detach()
    style = m.style_mask()
    ref = raw.clone()
    for group in (style, ~style):
        v = raw[:, group]
        ref[:, group] = v * (v.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    torch.testing.assert_close(x, ref)


def test_concat_mode_is_plain_stylegan2_mapping():
    m = _mapping('concat')
    z, c = torch.randn(4, 16), _onehot([0, 2, 1, 1])
    nrm = lambda v: v * (v.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    e = c @ (m.embed.weight * m.embed.weight_gain).t() + m.embed.bias * m.embed.bias_gain
    x = torch.cat([nrm(z), nrm(e)], 1)
    for idx in range(m.num_layers):
        fc = getattr(m, f'fc{idx}')
        x = torch.nn.functional.leaky_relu(x @ (fc.weight * fc.weight_gain).t() + fc.bias * fc.bias_gain, 0.2) * np.sqrt(2)
    torch.testing.assert_close(m(z, c), x[:, None].repeat(1, 4, 1), rtol=1e-5, atol=1e-5)


def test_w_avg_tracking_and_truncation():
    m = _mapping('flow').train()
    z, c = torch.randn(8, 16), _onehot([0, 1, 2, 0, 1, 2, 0, 1])
    m(z, c, skip_w_avg_update=True)
    assert torch.equal(m.w_avg, torch.zeros(12))
    m(z, c)                                                    # NVIDIA ADA: updates while training
    w = m.mlp(m.latent(z, c)).detach().mean(0)
    torch.testing.assert_close(m.w_avg, w * (1 - 0.995))
    m.eval()
    before = m.w_avg.clone()
    m(z, c)
    assert torch.equal(m.w_avg, before)
    m(z, c, update_emas=True)
    assert not torch.equal(m.w_avg, before)
    m.train()
    before = m.w_avg.clone()
    m(z, c, update_emas=False)                                 # stylegan3 rule: exactly when asked
    assert torch.equal(m.w_avg, before)
    m.eval()
    ws = m(z, c, truncation_psi=0)
    torch.testing.assert_close(ws, m.w_avg.expand(8, 4, 12))
    ws = m(z, c, truncation_psi=0.5, truncation_cutoff=2)
    full = m(z, c)
    torch.testing.assert_close(ws[:, 2:], full[:, 2:])
    torch.testing.assert_close(ws[:, :2], m.w_avg.lerp(full[:, :2], 0.5))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match='cond_mode'):
        _mapping('film')
    with pytest.raises(ValueError, match='i_dim'):
        _mapping('flow', i_dim=17)
    with pytest.raises(ValueError, match='one-hot'):
        _mapping('flow').latent(torch.randn(2, 16), torch.ones(2, 5))


def test_records_init_kwargs_and_rebuilds():
    from torch_utils import persistence
    import dnnlib
    m = _mapping('mlp')
    spec = persistence.module_spec(m)
    assert spec['class_name'] == 'training.domain_flow.DomainFlowMapping'
    m2 = dnnlib.util.construct_class_by_name(class_name=spec['class_name'], **spec['init_kwargs'])
    m2.load_state_dict(m.state_dict())
    z, c = torch.randn(3, 16), _onehot([0, 1, 2])
    assert torch.equal(m(z, c), m2(z, c))

#----------------------------------------------------------------------------

def test_builds_inside_generator_and_matches_naive_composition():
    from training.networks import Generator
    torch.manual_seed(0)
    G = Generator(16, 3, 12, 16, 3, mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping',
        num_layers=2, i_dim=8, layer_features=16), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    assert isinstance(G.mapping, DomainFlowMapping) and G.mapping.num_ws == G.num_ws
    assert G.init_kwargs['mapping_kwargs']['class_name'] == 'training.domain_flow.DomainFlowMapping'
    z, c = torch.randn(2, 16), _onehot([0, 2])
    img = G(z, c, noise_mode='const')
    ws = G.mapping.mlp(G.mapping.latent(z, c))[:, None].repeat(1, G.num_ws, 1)
    torch.testing.assert_close(img, G.synthesis(ws, noise_mode='const'))
    assert img.shape == (2, 3, 16, 16)

#----------------------------------------------------------------------------
