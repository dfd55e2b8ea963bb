"""L_m and L_s: the sparse-mixing regulariser must be a real Jacobian estimate (none of the released bugs)."""
import pytest
import torch

from training.cg_regularizers import importance_l1, jacobian_column_l1, jacobian_sparsity_penalty
from training.domain_flow import DomainFlowMapping

#----------------------------------------------------------------------------
# Toy generators: identity mapping over a latent of size D with chosen active style columns, and
# synthesis modules whose Jacobian we know.

class ToyMapping(torch.nn.Module):
    def __init__(self, D=16, active=(5, 11), num_ws=3):
        super().__init__()
        self.D, self.num_ws, self.active = D, num_ws, list(active)
        self.scale = torch.nn.Parameter(torch.ones([]))

    def style_mask(self, device=None):
        m = torch.zeros([self.D], dtype=torch.bool, device=device)
        m[self.active] = True
        return m

    def latent(self, z, c):
        return z * self.scale

    def mlp(self, x):
        return x


class RecordingSynthesis(torch.nn.Module):
    """img[b, 0, 0, :] = func(ws[b, 0, :]) (+ noise); remembers every ws it saw."""
    def __init__(self, func=lambda w: w, use_all_ws=False):
        super().__init__()
        self.func, self.use_all_ws, self.seen, self.fp32 = func, use_all_ws, [], []

    def forward(self, ws, noise_mode='const', force_fp32=False):
        self.seen.append(ws.detach().clone())
        self.fp32.append(force_fp32)
        h = ws.mean(1) if self.use_all_ws else ws[:, 0]
        img = self.func(h)[:, None, None, :]
        if noise_mode == 'random':
            img = img + torch.randn_like(img)
        return img


class ToyG(torch.nn.Module):
    def __init__(self, mapping, synthesis):
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis


class ConvSynthesis(torch.nn.Module):
    """Small nonlinear synthesis with parameters: ws -> [B, 3, 8, 8]."""
    def __init__(self, w_dim, num_ws):
        super().__init__()
        torch.manual_seed(3)
        self.fc = torch.nn.Linear(w_dim * num_ws, 4 * 8 * 8)
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, ws, noise_mode='const', force_fp32=False):
        h = torch.tanh(self.fc(ws.flatten(1))).reshape(-1, 4, 8, 8)
        return self.conv(torch.nn.functional.softplus(h))


def _flow_G(seed=0, num_ws=4):
    torch.manual_seed(seed)
    m = DomainFlowMapping(12, 3, 10, num_ws, num_layers=2, layer_features=16, embed_features=8, i_dim=6)
    with torch.no_grad():
        m.importance[0, [1, 4]] = 0.0
    return ToyG(m, ConvSynthesis(10, num_ws))

def _zc(B=5, D=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g), torch.eye(3)[torch.randint(0, 3, [B], generator=g)]

#----------------------------------------------------------------------------

def test_importance_l1():
    m = _flow_G().mapping
    with torch.no_grad():
        m.importance[0] = torch.tensor([1.0, -2.0, 0.5, 0.0, 0.05, 3.0])
    torch.testing.assert_close(importance_l1(m), torch.tensor(6.55 / 6))
    concat = DomainFlowMapping(8, 2, 8, 2, num_layers=1, cond_mode='concat')
    assert float(importance_l1(concat)) == 0


def test_zero_when_generator_ignores_the_column_positive_otherwise():
    z = torch.randn(8, 16)
    ignore = ToyG(ToyMapping(), RecordingSynthesis(lambda w: w[:, [0, 1, 2]]))           # content dims only
    use = ToyG(ToyMapping(), RecordingSynthesis(lambda w: w[:, [0, 5, 11]]))
    for est in ('fd', 'jvp'):
        assert float(jacobian_sparsity_penalty(ignore, z, None, estimator=est, style_mixing_prob=0)) == 0
        assert float(jacobian_sparsity_penalty(use, z, None, estimator=est, style_mixing_prob=0)) > 0


def test_fd_value_is_the_naive_difference_quotient_and_depends_on_delta():
    func = lambda w: torch.tanh(3 * w) * w
    z = torch.randn(8, 16)
    G = ToyG(ToyMapping(), RecordingSynthesis(func))
    vals = {}
    for delta in (0.1, 1.0):
        for seed in range(4):
            gen = torch.Generator().manual_seed(seed)
            got = jacobian_sparsity_penalty(G, z, None, delta=delta, style_mixing_prob=0, generator=gen)
            x, x2 = G.synthesis.seen[-1][:8, 0], G.synthesis.seen[-1][8:, 0]
            k = int(torch.nonzero((x2 - x).abs().sum(0))[0])
            s = round(float((x2 - x)[0, k]) / delta)
            assert abs(float((x2 - x)[0, k]) - s * delta) < 1e-5
            e = torch.zeros(16); e[k] = s * delta
            ref = (func(z + e) - func(z)).abs().mean() / delta            # one channel: sum over C is the identity
            torch.testing.assert_close(got, ref)
            vals[(delta, k, s)] = float(got)
    # same column and sign, different delta: a different value (the perturbation matters)
    pairs = [(vals[(0.1, k, s)], vals[(1.0, k, s)]) for (d, k, s) in vals if d == 0.1 and (1.0, k, s) in vals]
    assert pairs and all(abs(a - b) > 1e-3 for a, b in pairs)


class UpsampledSynthesis(torch.nn.Module):
    """The same 3-channel picture of the ws at any resolution (nearest upsampling of an 4x4 image)."""
    def __init__(self, res):
        super().__init__()
        torch.manual_seed(5)
        self.fc, self.res = torch.nn.Linear(16, 3 * 4 * 4), res

    def forward(self, ws, noise_mode='const', force_fp32=False):
        img = torch.tanh(self.fc(ws[:, 0])).reshape(-1, 3, 4, 4)
        return torch.nn.functional.interpolate(img, scale_factor=self.res // 4, mode='nearest')


@pytest.mark.parametrize('estimator', ['fd', 'jvp'])
def test_value_is_the_area_normalised_column_l1_the_same_at_every_resolution(estimator):
    z = torch.randn(6, 16)
    vals = []
    for res in (4, 16, 64):
        G = ToyG(ToyMapping(), UpsampledSynthesis(res))
        vals.append(float(jacobian_sparsity_penalty(G, z, None, estimator=estimator, delta=1e-3, style_mixing_prob=0,
                                                    generator=torch.Generator().manual_seed(1))))
    G = ToyG(ToyMapping(), UpsampledSynthesis(4))
    k = int(torch.randperm(2, generator=torch.Generator().manual_seed(1))[0])
    k = G.mapping.active[k]
    J = torch.autograd.functional.jacobian(lambda x: G.synthesis(x[:, None].repeat(1, 3, 1)), z)     # [B, 3, 4, 4, B, 16]
    col = torch.stack([J[b, :, :, :, b, k] for b in range(6)])                                       # d img_b / d x_bk
    ref = float(col.abs().sum(1).mean())                                                             # sum over colour, mean over area
    assert vals == pytest.approx([ref] * 3, rel=2e-3 if estimator == 'fd' else 1e-5)


def test_passes_run_in_fp32_even_where_the_blocks_would_use_fp16(monkeypatch):
    """With fp16 switched on (as on CUDA), a normal forward runs the fp16 blocks in float16, the L_s passes in float32."""
    from training import networks
    monkeypatch.setattr(networks, 'fp16_supported', lambda device: True)
    torch.manual_seed(0)
    G = networks.Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs=dict(num_layers=2, class_name='training.domain_flow.DomainFlowMapping', i_dim=8),
                           synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=2, conv_clamp=256))
    seen = []
    hooks = [b.register_forward_hook(lambda mod, args, out: seen.append(out[0].dtype))
             for name, b in G.synthesis.named_children() if getattr(b, 'use_fp16', False)]
    z, c = torch.randn(4, 16), torch.eye(3)[[0, 1, 2, 0]]
    G(z, c, noise_mode='const')
    assert seen and all(d == torch.float16 for d in seen)                  # the test can see fp16 when it runs
    seen.clear()
    for est in ('fd', 'jvp'):
        loss = jacobian_sparsity_penalty(G, z, c, estimator=est, style_mixing_prob=0)
        assert torch.isfinite(loss) and float(loss) > 0
    assert seen and all(d == torch.float32 for d in seen)
    for h in hooks:
        h.remove()


def test_never_picks_a_batch_index_and_perturbs_only_active_columns():
    G = ToyG(ToyMapping(D=16, active=(5, 11)), RecordingSynthesis())
    z = torch.randn(12, 16)                                              # batch > every active index
    picked = set()
    for seed in range(30):
        G.synthesis.seen.clear()
        jacobian_sparsity_penalty(G, z, None, num_columns=1, style_mixing_prob=0, generator=torch.Generator().manual_seed(seed))
        ws = G.synthesis.seen[-1]
        d = (ws[12:] - ws[:12])[:, 0]
        cols = torch.nonzero(d.abs().sum(0)).flatten().tolist()
        assert len(cols) == 1 and cols[0] in (5, 11)
        assert torch.allclose(d[:, cols[0]], d[0, cols[0]].expand(12))   # the same column for every row
        picked.add(cols[0])
    assert picked == {5, 11}
    G.synthesis.seen.clear()
    jacobian_sparsity_penalty(G, z, None, num_columns=5, style_mixing_prob=0)
    ws = G.synthesis.seen[-1]
    assert ws.shape[0] == 12 * 3                                         # two active columns, both used


def test_same_style_mixing_and_same_noise_in_both_passes():
    G = ToyG(ToyMapping(D=16, active=(5,), num_ws=4), RecordingSynthesis(use_all_ws=True))
    z = torch.randn(6, 16)
    jacobian_sparsity_penalty(G, z, None, style_mixing_prob=1.0, generator=torch.Generator().manual_seed(0))
    ws = G.synthesis.seen[-1]
    ws0, ws1 = ws[:6], ws[6:]
    cut = int((ws0 != ws0[:, :1]).any(2).any(0).nonzero()[0])           # first layer taken from the second eps
    assert 1 <= cut < 4
    assert torch.equal(ws0[:, cut:], ws1[:, cut:])                       # mixing identical in both passes
    assert not torch.equal(ws0[:, :cut], ws1[:, :cut])
    # Random noise: identical in both passes, so a generator that only outputs noise gives exactly 0,
    # and a real one gives the noiseless value.
    noise_only = ToyG(ToyMapping(), RecordingSynthesis(lambda w: w[:, :3] * 0))
    assert float(jacobian_sparsity_penalty(noise_only, z[:, :16], None, noise_mode='random', style_mixing_prob=0)) == 0
    G2 = ToyG(ToyMapping(), RecordingSynthesis(lambda w: torch.sin(w)))
    a = jacobian_sparsity_penalty(G2, z, None, noise_mode='random', style_mixing_prob=0, generator=torch.Generator().manual_seed(2))
    b = jacobian_sparsity_penalty(G2, z, None, noise_mode='const', style_mixing_prob=0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('mixing', [0.0, 1.0])
def test_finite_difference_matches_jvp_for_small_delta(mixing):
    G = _flow_G()
    z, c = _zc()
    for seed in range(3):
        jvp = jacobian_sparsity_penalty(G, z, c, delta=1e-3, estimator='jvp', style_mixing_prob=mixing, generator=torch.Generator().manual_seed(seed))
        fd = jacobian_sparsity_penalty(G, z, c, delta=1e-3, estimator='fd', style_mixing_prob=mixing, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fd, jvp, rtol=2e-2, atol=1e-6)
        assert float(jvp) > 0


@pytest.mark.parametrize('estimator', ['fd', 'jvp'])
def test_gradients_reach_mapping_and_synthesis(estimator):
    G = _flow_G()
    z, c = _zc()
    loss = jacobian_sparsity_penalty(G, z, c, estimator=estimator, num_columns=2, generator=torch.Generator().manual_seed(0))
    loss.backward()
    m = G.mapping
    for p in (m.fc0.weight, m.flow_fc0.weight, m.flow.model[0].w_, m.flow.model[1].u_, G.synthesis.fc.weight, G.synthesis.conv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert m.importance.grad[0, [1, 4]].abs().sum() == 0                # pruned dims stay gradient-free


def test_zero_with_grad_when_no_column_is_active():
    G = _flow_G()
    with torch.no_grad():
        G.mapping.importance.zero_()
    z, c = _zc()
    loss = jacobian_sparsity_penalty(G, z, c)
    assert float(loss) == 0 and loss.requires_grad
    loss.backward()
    concat = ToyG(DomainFlowMapping(12, 3, 10, 4, num_layers=1, cond_mode='concat'), ConvSynthesis(10, 4))
    assert float(jacobian_sparsity_penalty(concat, z, c)) == 0


class _NoForwardAD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.square()

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return 2 * x * g


def test_jvp_falls_back_to_double_backward():
    G = ToyG(ToyMapping(), RecordingSynthesis(lambda w: _NoForwardAD.apply(w)))
    z = torch.randn(4, 16)
    got = jacobian_sparsity_penalty(G, z, None, estimator='jvp', delta=1.0, style_mixing_prob=0, generator=torch.Generator().manual_seed(0))
    k = 5 if int(torch.randperm(2, generator=torch.Generator().manual_seed(0))[0]) == 0 else 11
    torch.testing.assert_close(got, (2 * z[:, k]).abs().mean() / 16)


def test_jacobian_column_l1_measures_style_and_content_columns():
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(16, 7, generator=gen)
    G = ToyG(ToyMapping(), RecordingSynthesis(lambda w: w @ A))
    A[3] = 0                                                             # column 3 unused
    z = torch.randn(5, 16, generator=gen)
    for est, atol in (('fd', 1e-4), ('jvp', 0)):
        # fd: the two matmul passes may round differently (BLAS blocking), ~1e-7 / (2 delta) per entry
        got = jacobian_column_l1(G, z, None, [3, 5, 0], estimator=est)
        ref = torch.stack([A[k].abs().mean() for k in (3, 5, 0)])
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=max(atol, 1e-6))
        assert abs(float(got[0])) <= atol


def test_bad_arguments():
    G = ToyG(ToyMapping(), RecordingSynthesis())
    z = torch.randn(2, 16)
    with pytest.raises(ValueError, match='estimator'):
        jacobian_sparsity_penalty(G, z, None, estimator='exact')
    with pytest.raises(ValueError, match='delta'):
        jacobian_sparsity_penalty(G, z, None, delta=0)
    with pytest.raises(ValueError, match='outside'):
        jacobian_column_l1(G, z, None, [16])

#----------------------------------------------------------------------------

def test_real_generator_fd_matches_jvp_and_trains_synthesis():
    from training.networks import Generator
    torch.manual_seed(0)
    G = Generator(16, 3, 12, 16, 3, mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping',
        num_layers=2, i_dim=8, layer_features=16), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    z, c = _zc(B=3, D=16)
    gen = lambda: torch.Generator().manual_seed(4)
    jvp = jacobian_sparsity_penalty(G, z, c, delta=1e-3, estimator='jvp', generator=gen())
    fd = jacobian_sparsity_penalty(G, z, c, delta=1e-3, generator=gen())
    torch.testing.assert_close(fd, jvp, rtol=2e-2, atol=1e-6)
    jvp.backward()
    assert G.synthesis.b16.conv1.weight.grad.abs().sum() > 0 and G.mapping.fc0.weight.grad.abs().sum() > 0

#----------------------------------------------------------------------------
