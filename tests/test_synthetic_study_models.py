"""CG-VAE models: exact flow log-det, priors, Jacobian penalty, determinism, and a short training."""
import math

import pytest
import torch

from torch_utils import persistence
from synthetic_study.models import (MLP, GaussianPrior, MonotoneFlowPrior, SyntheticVAE, jacobian_sparsity_penalty,
                                    negative_elbo, posterior_mean, train_synthetic_vae)

#----------------------------------------------------------------------------

def test_flow_logdet_matches_autograd():
    torch.manual_seed(0)
    flow = MonotoneFlowPrior(z_dim=4, num_domains=3, num_terms=3)
    with torch.no_grad():
        flow.embed.weight.normal_(0, 1.0)  # far from the near-identity init
    z, u = torch.randn(6, 4) * 2, torch.tensor([0, 1, 2, 0, 1, 2])
    eps, logdet = flow(z, u)
    for i in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None], u[i:i + 1])[0][0], z[i])
        assert torch.allclose(jac, torch.diag(torch.diagonal(jac)), atol=1e-6)  # component-wise
        assert (torch.diagonal(jac) > 0).all()  # strictly increasing
        assert torch.allclose(logdet[i], torch.logdet(jac), atol=1e-4)


def test_flow_depends_on_domain_and_integrates_to_one():
    torch.manual_seed(1)
    flow = MonotoneFlowPrior(z_dim=1, num_domains=2, num_terms=2)
    with torch.no_grad():
        flow.embed.weight.normal_(0, 1.0)
    grid = torch.linspace(-40, 40, 80001)[:, None]
    for k in range(2):
        with torch.no_grad():
            dens = flow.log_prob(grid, torch.full([len(grid)], k)).exp()
        assert float(torch.trapezoid(dens, grid[:, 0])) == pytest.approx(1.0, abs=1e-3)
    assert not torch.allclose(flow(grid[:5], torch.zeros(5, dtype=torch.long))[0], flow(grid[:5], torch.ones(5, dtype=torch.long))[0])


def test_gaussian_prior_matches_torch_distributions():
    torch.manual_seed(2)
    prior = GaussianPrior(z_dim=3, num_domains=4)
    with torch.no_grad():
        prior.embed.weight.normal_(0, 1.0)
    z, u = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 1])
    mean, logvar = prior.embed(u).chunk(2, dim=-1)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z, u), ref, atol=1e-5)
    std = GaussianPrior(z_dim=3, num_domains=0)
    assert torch.allclose(std.log_prob(z, u), torch.distributions.Normal(0., 1.).log_prob(z).sum(-1), atol=1e-5)

#----------------------------------------------------------------------------

def test_jacobian_penalty_matches_naive_and_has_gradient():
    torch.manual_seed(3)
    dec = MLP(3, 4, hidden=8)
    z = torch.randn(5, 3)
    ref = sum(torch.autograd.functional.jacobian(dec, z[i]).abs().sum() for i in range(5)) / 5
    pen = jacobian_sparsity_penalty(dec, z)
    assert torch.allclose(pen, ref, atol=1e-6)
    pen.backward()
    assert all(dec.net[i].weight.grad.abs().sum() > 0 for i in (0, 2, 4))  # reaches every weight


def test_scaled_penalty_is_invariant_to_rescaling_latents():
    torch.manual_seed(5)
    dec = MLP(3, 4, hidden=8)
    z, c = torch.randn(32, 3), torch.tensor([10.0, 0.5, 3.0])
    plain = jacobian_sparsity_penalty(dec, z)
    scaled = jacobian_sparsity_penalty(dec, z, z.std(0))
    rescaled_dec = lambda v: dec(v / c)  # same model, latents measured in other units
    assert torch.allclose(jacobian_sparsity_penalty(rescaled_dec, z * c, (z * c).std(0)), scaled, atol=1e-5)
    assert not torch.allclose(jacobian_sparsity_penalty(rescaled_dec, z * c), plain, rtol=0.1)


def test_sparsity_term_only_with_alpha():
    torch.manual_seed(4)
    net = SyntheticVAE(4, 2, 3, prior='flow', hidden=8)
    x, u = torch.randn(16, 4), torch.randint(3, [16])
    assert 'sparsity' not in net.loss(x, u, alpha=0.0)
    terms = net.loss(x, u, alpha=0.5)
    assert terms.sparsity > 0
    assert torch.allclose(terms.total, terms.recon + terms.kl + 0.5 * terms.sparsity)


def test_full_posterior_log_density_and_covariance_match_torch():
    torch.manual_seed(6)
    net = SyntheticVAE(4, 3, 2, prior='gauss', hidden=8, posterior='full')
    x, u = torch.randn(5, 4), torch.randint(2, [5])
    mean, scale = net.encode(x, u)
    assert scale.shape == (5, 3 + 3)  # 3 log-variances + 3 strictly lower entries
    z, log_q = net.sample_posterior(mean, scale)
    chol = torch.zeros(5, 3, 3)
    chol[:, [1, 2, 2], [0, 0, 1]] = scale[:, 3:]  # naive rebuild of the Cholesky factor
    chol = chol + torch.diag_embed(torch.exp(0.5 * scale[:, :3]))
    ref = torch.distributions.MultivariateNormal(mean, scale_tril=chol)
    assert torch.allclose(log_q, ref.log_prob(z), atol=1e-4)
    torch.manual_seed(7)
    many = torch.stack([net.sample_posterior(mean[:1], scale[:1])[0][0] for _ in range(20000)])
    assert torch.allclose(torch.cov(many.T), (chol[0] @ chol[0].T).detach(), atol=0.05)


def test_diag_posterior_is_the_diagonal_case():
    torch.manual_seed(8)
    net = SyntheticVAE(4, 3, 2, prior='gauss', hidden=8, posterior='diag')
    x, u = torch.randn(5, 4), torch.randint(2, [5])
    mean, logvar = net.encode(x, u)
    assert logvar.shape == (5, 3)
    z, log_q = net.sample_posterior(mean, logvar)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_q, ref, atol=1e-5)


def test_persistent_spec_round_trip():
    net = SyntheticVAE(4, 2, 3, prior='gauss', hidden=8)
    spec = persistence.module_spec(net)
    assert spec['class_name'] == 'synthetic_study.models.SyntheticVAE' and spec['init_kwargs']['prior'] == 'gauss'
    import dnnlib
    copy = dnnlib.util.construct_class_by_name(class_name=spec['class_name'], **spec['init_kwargs'])
    copy.load_state_dict(net.state_dict())


def test_unknown_names():
    with pytest.raises(ValueError, match='prior must be'):
        SyntheticVAE(4, 2, 3, prior='laplace')
    with pytest.raises(ValueError, match='posterior must be'):
        SyntheticVAE(4, 2, 3, posterior='flow')
    with pytest.raises(ValueError, match='lr_schedule must be'):
        train_synthetic_vae(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), model='ivae', lr_schedule='step')
    with pytest.raises(ValueError, match='unknown model'):
        train_synthetic_vae(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), model='vae2')

#----------------------------------------------------------------------------

@pytest.mark.parametrize('model', ['cg_vae', 'ivae', 'beta_vae', 'sparse_only', 'cg_vae_nosparse'])
def test_training_is_deterministic(model):
    x, u = torch.randn(64, 3), torch.randint(2, [64])
    a, sa = train_synthetic_vae(x, u, model=model, steps=5, batch=16, seed=3, hidden=8)
    b, sb = train_synthetic_vae(x, u, model=model, steps=5, batch=16, seed=3, hidden=8)
    assert sa['final'] == sb['final']
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert math.isfinite(sa['final']['total'])

#----------------------------------------------------------------------------

def test_short_training_on_linear_mixing_beats_reading_x():
    from synthetic_study.data import benchmark_settings, make_synthetic_dataset
    from synthetic_study.mcc import mean_corr_coef
    data = make_synthetic_dataset(n=4, num_domains=10, samples=200, num_layers=1, seed=0, **benchmark_settings('hard', 4))
    untrained, _ = train_synthetic_vae(data.x_train, data.u_train, model='ivae', steps=1, seed=0, hidden=32)
    net, _ = train_synthetic_vae(data.x_train, data.u_train, model='ivae', steps=1000, seed=0, hidden=32, lr=3e-3, lr_schedule='cosine')
    mcc = mean_corr_coef(data.z_test, posterior_mean(net, data.x_test))
    assert mcc > 0.8
    assert mcc > mean_corr_coef(data.z_test, data.x_test) + 0.15  # better than reading the observations
    assert negative_elbo(net, data.x_test, data.u_test) < negative_elbo(untrained, data.x_test, data.u_test) - 5


def test_negative_elbo_is_reproducible_and_leaves_the_global_generator_alone():
    torch.manual_seed(9)
    net = SyntheticVAE(4, 2, 3, prior='flow', hidden=8)
    x, u = torch.randn(64, 4), torch.randint(3, [64])
    state = torch.get_rng_state()
    a, b = negative_elbo(net, x, u, seed=1), negative_elbo(net, x, u, seed=1)
    assert a == b and torch.equal(torch.get_rng_state(), state)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        terms = net.loss((x - net.x_mean) / net.x_std, u, alpha=0.0)
    assert a == pytest.approx(float(terms.recon + terms.kl))

#----------------------------------------------------------------------------

def test_scaled_l1_of_the_true_mixing_exceeds_reading_x_on_the_hard_benchmark():
    """Why L_s can pull towards x: decoding zhat = standardised x costs exactly n, the true g more."""
    from synthetic_study.data import benchmark_settings, make_synthetic_dataset
    true_l1 = []
    for seed in range(3):
        d = make_synthetic_dataset(n=5, num_domains=4, samples=100, seed=seed, **benchmark_settings('hard', 5))
        mean, std = d.x_train.mean(0), d.x_train.std(0)
        z, xs = d.z_train, (d.x_train - mean) / std
        assert float(jacobian_sparsity_penalty(lambda v: v, xs, xs.std(0))) == pytest.approx(5.0, rel=1e-5)
        true_l1.append(float(jacobian_sparsity_penalty(lambda v: (d.mixing(v) - mean) / std, z, z.std(0))))
    assert min(true_l1) > 5.5
