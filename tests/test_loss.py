"""StyleGAN2Loss against hand-written references on tiny networks: logistic losses, R1, path length, CG terms."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.loss import StyleGAN2Loss

#----------------------------------------------------------------------------

class LinearMapping(torch.nn.Module):
    def __init__(self, z_dim=3, w_dim=4, num_ws=2):
        super().__init__()
        self.A = torch.nn.Parameter(torch.randn(w_dim, z_dim))
        self.num_ws = num_ws

    def forward(self, z, c, update_emas=False, skip_w_avg_update=None):
        return (z @ self.A.T).unsqueeze(1).repeat(1, self.num_ws, 1)


class LinearSynthesis(torch.nn.Module):
    """img = tanh(sum_l ws[:, l] @ B_l) reshaped to [N, 1, 2, 2]: nonlinear, so PL has a weight gradient."""
    def __init__(self, w_dim=4, num_ws=2):
        super().__init__()
        self.B = torch.nn.Parameter(torch.randn(num_ws, w_dim, 4) * 0.5)

    def forward(self, ws):
        return torch.tanh(torch.einsum('nlw,lwp->np', ws, self.B)).reshape(-1, 1, 2, 2)


class TinyG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping = LinearMapping()
        self.synthesis = LinearSynthesis()
        self.z_dim = 3


class TinyD(torch.nn.Module):
    """D(x) = sum(w * tanh(x)) + b."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(1, 1, 2, 2))
        self.b = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c):
        return (self.w * torch.tanh(img)).sum([1, 2, 3]).unsqueeze(1) + self.b


def make(**kwargs):
    torch.manual_seed(0)
    G, D = TinyG().double().requires_grad_(False), TinyD().double().requires_grad_(False)  # the loop enables one at a time
    loss = StyleGAN2Loss('cpu', G, D, style_mixing_prob=0, **kwargs)
    loss.pl_mean = loss.pl_mean.double()
    return G, D, loss


def grads(module):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]

#----------------------------------------------------------------------------

def test_generator_non_saturating_loss_matches_reference():
    G, D, loss = make()
    z = torch.randn(5, 3, dtype=torch.float64)
    G.requires_grad_(True)
    loss.accumulate_gradients('Gmain', None, None, z, None, gain=3.0)
    got = grads(G)
    G.zero_grad()
    ref = 3.0 * F.softplus(-D(G.synthesis(G.mapping(z, None)), None)).mean()  # E[softplus(-D(G(z)))]
    ref.backward()
    for a, b in zip(got, grads(G)):
        torch.testing.assert_close(a, b)


def test_discriminator_loss_matches_reference():
    G, D, loss = make(r1_gamma=0)
    z = torch.randn(4, 3, dtype=torch.float64)
    real = torch.rand(4, 1, 2, 2, dtype=torch.float64) * 2 - 1
    D.requires_grad_(True)
    loss.accumulate_gradients('Dmain', real, None, z, None, gain=1.0)
    got = grads(D)
    D.zero_grad()
    fake = G.synthesis(G.mapping(z, None)).detach()
    (F.softplus(D(fake, None)).mean() + F.softplus(-D(real, None)).mean()).backward()
    for a, b in zip(got, grads(D)):
        torch.testing.assert_close(a, b)


def test_r1_matches_closed_form_gradient():
    # D(x) = sum w * tanh(x) + b: grad_x D = w * (1 - tanh^2 x); R1 = gamma/2 |grad_x D|^2, so
    # dR1/dw = gamma * w * (1 - tanh^2 x)^2 (mean over the batch), dR1/db = 0.
    gamma, gain = 0.7, 16
    G, D, loss = make(r1_gamma=gamma)
    real = torch.rand(6, 1, 2, 2, dtype=torch.float64) * 2 - 1
    D.requires_grad_(True)
    loss.accumulate_gradients('Dreg', real, None, torch.randn(6, 3, dtype=torch.float64), None, gain=gain)
    s = 1 - torch.tanh(real).square()
    expected_w = gain * gamma * (D.w.detach() * s.square()).mean(0, keepdim=True)
    torch.testing.assert_close(D.w.grad, expected_w)
    torch.testing.assert_close(D.b.grad, torch.zeros([], dtype=torch.float64))


def test_path_length_penalty_matches_reference_and_updates_mean():
    G, D, loss = make(pl_weight=2, pl_batch_shrink=2, pl_decay=0.01)
    loss.pl_mean.fill_(0.3)
    z = torch.randn(8, 3, dtype=torch.float64)
    G.requires_grad_(True)
    torch.manual_seed(123)
    loss.accumulate_gradients('Greg', None, None, z, torch.zeros(8, 0), gain=4.0)
    got = grads(G)
    # Reference: first 4 latents; y ~ N(0, I)/sqrt(HW) drawn with the same seed; |J_w^T y| per sample
    # (mean over ws of squared norms, then sqrt); loss = weight * mean((|J^T y| - a)^2) with a the stored mean.
    G.zero_grad()
    torch.manual_seed(123)
    zs = z[:4]
    ws = G.mapping(zs, None)
    img = G.synthesis(ws)
    y = torch.randn_like(img) / np.sqrt(4)
    B = G.synthesis.B
    pre = torch.einsum('nlw,lwp->np', ws, B)
    dimg_dpre = (1 - torch.tanh(pre).square()) * y.reshape(4, 4)          # d(sum img*y)/d pre, by hand
    jty = torch.einsum('np,lwp->nlw', dimg_dpre, B)                       # J_w^T y, by hand
    lengths = jty.square().sum(2).mean(1).sqrt()
    (4.0 * 2 * (lengths - 0.3).square().mean()).backward()
    for a, b in zip(got, grads(G)):
        torch.testing.assert_close(a, b)
    assert float(loss.pl_mean) == pytest.approx(0.3)                        # unchanged until the phase ends
    loss.finish_phase('Greg')
    assert float(loss.pl_mean) == pytest.approx(0.3 + 0.01 * (float(lengths.detach().mean()) - 0.3))


def test_nonfinite_loss_is_flagged_per_phase_not_hidden():
    G, D, loss = make()
    D.b.data.fill_(float('nan'))
    G.requires_grad_(True)
    loss.accumulate_gradients('Gmain', None, None, torch.randn(2, 3, dtype=torch.float64), None, gain=1)
    assert loss.pop_nonfinite() == ['Gmain']
    assert loss.pop_nonfinite() == []

#----------------------------------------------------------------------------

def test_cg_terms_add_mask_loss_and_jacobian_penalty():
    import dnnlib
    torch.manual_seed(0)
    kw = dict(z_dim=16, c_dim=2, w_dim=16, img_resolution=8, img_channels=3,
              mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=2, i_dim=8, flow_dim=4),
              synthesis_kwargs=dict(channel_base=128, channel_max=16))
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', **kw)
    D = dnnlib.util.construct_class_by_name(class_name='training.networks.Discriminator', c_dim=2, img_resolution=8, img_channels=3,
                                            channel_base=128, channel_max=16)
    z = torch.randn(4, 16)
    c = torch.eye(2)[[0, 1, 0, 1]]

    def importance_grad(cur_step=0, **kwargs):
        G.zero_grad(set_to_none=True)
        G.requires_grad_(True)
        loss = StyleGAN2Loss('cpu', G, D, style_mixing_prob=0, **kwargs)
        torch.manual_seed(5)
        loss.accumulate_gradients('Gmain', None, None, z, c, gain=1.0, cur_step=cur_step)
        return G.mapping.importance.grad.clone()

    base = importance_grad()
    with_mask = importance_grad(lambda_sparse=0.5)
    # d/dr of 0.5 * mean|r| = 0.5 * sign(r) / i_dim  (mask loss L_m)
    torch.testing.assert_close(with_mask - base, 0.5 * torch.sign(G.mapping.importance.detach()) / 8)
    with_jac = importance_grad(lambda_imgsparse=1.0, imgsparse_kwargs=dict(delta=0.1))
    assert not torch.allclose(with_jac, base)                        # L_s reaches the mapping
    skipped = importance_grad(lambda_imgsparse=1.0, imgsparse_kwargs=dict(delta=0.1), sparse_interval=2, cur_step=1)
    torch.testing.assert_close(skipped, base)                        # lazy: not on odd steps

#----------------------------------------------------------------------------
