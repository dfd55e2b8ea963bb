"""Ensemble models: exact flow log-det and decoder Jacobian against autograd, priors and posterior against
torch.distributions, the scaled L1, an ensemble trains each member exactly as alone, plateau and rule (b)."""
import pytest
import torch

import dnnlib
from synthetic_study.fit import train_ensemble
from synthetic_study.models import EnsembleMLP, EnsembleVAE, FlowPrior, GaussianPrior, member_generators, scaled_l1

#----------------------------------------------------------------------------

def test_decoder_jacobian_matches_autograd_for_every_member():
    mlp = EnsembleMLP(member_generators([0, 1, 2]), 3, 4, hidden=8)
    z = torch.randn(3, 5, 3)
    y, jac = mlp(z, jacobian=True)
    for i in range(3):
        member = lambda v: mlp(torch.stack([v if j == i else z[j, 0] for j in range(3)])[:, None])[i, 0]
        for b in range(5):
            assert torch.allclose(jac[i, b], torch.autograd.functional.jacobian(member, z[i, b]), atol=1e-6)
    assert torch.allclose(y, mlp(z))


def test_flow_logdet_matches_autograd():
    flow = FlowPrior(member_generators([0, 1]), z_dim=3, num_domains=2, num_terms=3)
    with torch.no_grad():
        flow.table.normal_(0, 1.0)  # far from the near-identity init
    z, u = torch.randn(2, 4, 3) * 2, torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0]])
    eps, logdet = flow(z, u)
    for i in range(2):
        for b in range(4):
            f = lambda v: flow(torch.stack([v if j == i else z[j, b] for j in range(2)])[:, None], u[:, b:b + 1])[0][i, 0]
            jac = torch.autograd.functional.jacobian(f, z[i, b])
            assert torch.allclose(jac, torch.diag(torch.diagonal(jac)), atol=1e-6) and (torch.diagonal(jac) > 0).all()
            assert torch.allclose(logdet[i, b], torch.logdet(jac), atol=1e-4)


def test_gaussian_prior_and_full_posterior_match_torch_distributions():
    prior = GaussianPrior(member_generators([4]), z_dim=3, num_domains=4)
    z, u = torch.randn(1, 5, 3), torch.tensor([[0, 1, 2, 3, 1]])
    mean, logvar = prior.table[0, u[0]].chunk(2, dim=-1)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(z[0]).sum(-1)
    assert torch.allclose(prior.log_prob(z, u)[0], ref, atol=1e-5)
    net = EnsembleVAE([6], 4, 3, 2, prior='gauss', hidden=8)
    m, scale = net.encode(torch.randn(1, 5, 4))
    zs, log_q = net.sample_posterior(m, scale, torch.randn(1, 5, 3))
    chol = torch.zeros(5, 3, 3)
    chol[:, [1, 2, 2], [0, 0, 1]] = scale[0, :, 3:]
    chol = chol + torch.diag_embed(torch.exp(0.5 * scale[0, :, :3]))
    assert torch.allclose(log_q[0], torch.distributions.MultivariateNormal(m[0], scale_tril=chol).log_prob(zs[0]), atol=1e-4)


def test_scaled_l1_is_invariant_to_rescaling_latents():
    jac, z = torch.randn(2, 7, 4, 3), torch.randn(2, 7, 3)
    c = torch.tensor([10.0, 0.5, 3.0])
    assert torch.allclose(scaled_l1(jac / c, (z * c).std(1)), scaled_l1(jac, z.std(1)), atol=1e-5)
    assert torch.allclose(scaled_l1(jac, torch.ones(2, 3)), jac.abs().sum((2, 3)).mean(1))

#----------------------------------------------------------------------------

def _toy(seed, n=3, m=4, k=2, samples=48):
    g = torch.Generator().manual_seed(seed)
    z, u = torch.randn(k * samples, n, generator=g), torch.arange(k).repeat_interleave(samples)
    x = torch.nn.functional.leaky_relu(z @ torch.randn(n, m, generator=g), 0.2)
    return dnnlib.EasyDict(x_train=x[:-16], u_train=u[:-16], x_val=x[-16:], u_val=u[-16:], n=n)


CFG = dict(max_steps=40, eval_every=10, patience=2, batch=16, l1_batch=8, hidden=8)


@pytest.mark.parametrize('arm,alpha', [('ivae', 0.0), ('cg_vae', 0.3), ('cg_vae_constrained', None)])
def test_ensemble_member_equals_the_single_run(arm, alpha):
    data = [_toy(3), _toy(5)]
    pair, pair_stats = train_ensemble(data, [3, 5], arm, [alpha, alpha], 2, CFG)
    single, single_stats = train_ensemble(data[:1], [3], arm, [alpha], 2, CFG)
    assert pair_stats[0]['val_nelbo'] == pytest.approx(single_stats[0]['val_nelbo'], abs=1e-4)
    assert pair_stats[0]['best_step'] == single_stats[0]['best_step']
    for (name, p), q in zip(pair.state_dict().items(), single.state_dict().values()):
        assert torch.allclose(p[0], q[0], atol=1e-5), name
    assert not torch.allclose(pair.decoder.weights[0][0], pair.decoder.weights[0][1])  # the members differ


def test_plateau_stops_early_and_keeps_the_best_checkpoint():
    _, stats = train_ensemble([_toy(1)], [1], 'ivae', [0.0], 2, dict(CFG, max_steps=5000, lr=1e-12))
    assert stats[0]['stop_step'] == 20 and stats[0]['best_step'] == 0  # nothing improves: stops after 2 evaluations


def test_constrained_rule_raises_alpha_from_zero_and_meets_the_constraint():
    cfg = dict(CFG, max_steps=600, patience=2, min_delta=0.5, tau=0.5, eta=1.0, lr=3e-3)
    _, stats = train_ensemble([_toy(2)], [2], 'cg_vae_constrained', [None], 2, cfg)
    s = stats[0]
    assert s['fit_steps'] is not None and s['nelbo0'] is not None  # phase 1 plateaued
    assert s['val_nelbo'] <= s['nelbo0'] + 0.5 + 1e-6  # the checkpoint meets nELBO <= nELBO_0 + tau
    assert s['best_step'] >= s['fit_steps'] and s['alpha_used'] >= 0


def test_unknown_names_and_mismatched_members():
    with pytest.raises(ValueError, match='unknown arm'):
        train_ensemble([_toy(0)], [0], 'vae2', [0.0], 2)
    with pytest.raises(ValueError, match='one alpha per member'):
        train_ensemble([_toy(0)], [0], 'ivae', [0.0, 0.0], 2)
    with pytest.raises(ValueError, match='prior must be'):
        EnsembleVAE([0], 4, 2, 3, prior='laplace')

#----------------------------------------------------------------------------
