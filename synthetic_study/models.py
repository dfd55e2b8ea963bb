"""CG-VAE and its baselines for the synthetic study, the one training loop and the held-out ELBO.

CG-VAE: encoder q(zhat|x), decoder xhat = ghat(zhat), prior p(zhat|u) through a u-conditioned
component-wise monotone flow eps = F_u(zhat) with exact log-det, and alpha * L1 of dxhat/dzhat.
Baselines (same code, other prior / alpha): iVAE (Gaussian prior, u-dependent mean and variance),
beta-VAE (N(0, I) prior, no u), sparsity only (N(0, I) prior + L1), CG-VAE without sparsity.

The posterior q(zhat|x) is a full-covariance Gaussian by default. A diagonal one biases the ELBO: at
small decoder noise the true posterior has precision J^T J / sigma^2 (J = dg/dz), and the best diagonal
fit costs 0.5 * (sum_i log (J^T J)_ii - log det J^T J) nats per sample, which the model lowers by making
the decoder's Jacobian columns orthogonal instead of recovering z (2.6 nats on the dense 2-layer mixing).
"""
import math
import time

import numpy as np
import torch
import tqdm

import dnnlib
from torch_utils import persistence

#----------------------------------------------------------------------------
# Model presets: name -> prior and default sparsity weight alpha.

MODELS = {
    'cg_vae':          dict(prior='flow',  alpha=None),  # alpha from the caller (default 1.0)
    'cg_vae_nosparse': dict(prior='flow',  alpha=0.0),
    'ivae':            dict(prior='gauss', alpha=0.0),
    'beta_vae':        dict(prior='none',  alpha=0.0),
    'sparse_only':     dict(prior='none',  alpha=None),
}

#----------------------------------------------------------------------------

@persistence.persistent_class
class MLP(torch.nn.Module):
    """Fully connected net with leaky ReLU (0.2) between layers."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, num_layers: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layers = []
        for idx in range(num_layers):
            layers.append(torch.nn.Linear(dims[idx], dims[idx + 1]))
            if idx < num_layers - 1:
                layers.append(torch.nn.LeakyReLU(0.2))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

#----------------------------------------------------------------------------

@persistence.persistent_class
class MonotoneFlowPrior(torch.nn.Module):
    """Component-wise monotone flow eps_i = F_u,i(z_i), parameters from an embedding of u.

    F(z) = a*z + b + sum_k c_k * tanh(d_k*z + e_k) with a, c_k, d_k > 0 (strictly increasing), so
    log|dF/dz| = log(a + sum_k c_k d_k (1 - tanh^2)) is exact, and p(z|u) = N(F_u(z); 0, I) |F_u'(z)|.
    The Gaussian iVAE prior is the special case c = 0.
    """

    def __init__(self, z_dim: int, num_domains: int, num_terms: int = 4):
        super().__init__()
        self.z_dim, self.num_terms = z_dim, num_terms
        self.embed = torch.nn.Embedding(num_domains, z_dim * (2 + 3 * num_terms))
        with torch.no_grad():
            self.embed.weight.normal_(0, 0.1)

    def params(self, u):
        q = self.embed(u).reshape(-1, self.z_dim, 2 + 3 * self.num_terms)
        nt = self.num_terms
        a = torch.nn.functional.softplus(q[..., 0] + 0.5413)           # softplus(0.5413) = 1
        b = q[..., 1]
        c = torch.nn.functional.softplus(q[..., 2:2 + nt] - 2)          # small at init
        d = torch.nn.functional.softplus(q[..., 2 + nt:2 + 2 * nt] + 0.5413)
        e = q[..., 2 + 2 * nt:] * 3
        return a, b, c, d, e

    def forward(self, z, u):
        """Returns (eps, log|det dF/dz|) with shapes [B, n] and [B]."""
        a, b, c, d, e = self.params(u)
        t = torch.tanh(d * z[..., None] + e)
        eps = a * z + b + (c * t).sum(-1)
        slope = a + (c * d * (1 - t * t)).sum(-1)
        return eps, torch.log(slope).sum(-1)

    def log_prob(self, z, u):
        eps, logdet = self(z, u)
        return standard_normal_log_prob(eps) + logdet

#----------------------------------------------------------------------------

@persistence.persistent_class
class GaussianPrior(torch.nn.Module):
    """iVAE prior p(z|u) = N(mu_u, diag exp(logvar_u)); with num_domains = 0, N(0, I)."""

    def __init__(self, z_dim: int, num_domains: int):
        super().__init__()
        self.z_dim = z_dim
        self.embed = torch.nn.Embedding(num_domains, 2 * z_dim) if num_domains > 0 else None
        if self.embed is not None:
            with torch.no_grad():
                self.embed.weight.normal_(0, 0.1)

    def log_prob(self, z, u):
        if self.embed is None:
            return standard_normal_log_prob(z)
        mean, logvar = self.embed(u).chunk(2, dim=-1)
        return standard_normal_log_prob((z - mean) * torch.exp(-0.5 * logvar)) - 0.5 * logvar.sum(-1)

#----------------------------------------------------------------------------

def standard_normal_log_prob(eps):
    return -0.5 * (eps * eps).sum(-1) - 0.5 * eps.shape[-1] * math.log(2 * math.pi)


def jacobian_sparsity_penalty(decoder, z, scale=None):
    """L_s = mean over the batch of ||dxhat/dzhat * diag(scale)||_1, exact (vmap of jacrev; small n).

    scale=None is the plain L1 (paper Eq. 9). The ELBO cannot see a rescaling z_j -> c z_j (the prior
    absorbs it), so the plain L1 can be lowered by inflating z; scale = batch std of z removes that.
    """
    jac = torch.func.vmap(torch.func.jacrev(decoder))(z)  # [B, m, n]
    if scale is not None:
        jac = jac * scale
    return jac.abs().sum(dim=(1, 2)).mean()

#----------------------------------------------------------------------------

@persistence.persistent_class
class SyntheticVAE(torch.nn.Module):
    """VAE with prior 'flow' (CG-VAE), 'gauss' (iVAE) or 'none' (N(0, I): beta-VAE / sparsity only)."""

    def __init__(self, x_dim: int, z_dim: int, num_domains: int, prior: str = 'flow', hidden: int = 64,
                 num_layers: int = 3, num_terms: int = 4, decoder_std: float = 0.1, encoder_u: bool = False,
                 scale_invariant_sparsity: bool = True, posterior: str = 'full'):
        super().__init__()
        if posterior not in ('diag', 'full'):
            raise ValueError(f'posterior must be "diag" or "full", got "{posterior}"')
        self.num_domains, self.encoder_u, self.scale_invariant_sparsity = num_domains, encoder_u, scale_invariant_sparsity
        self.z_dim, self.decoder_std, self.posterior = z_dim, decoder_std, posterior
        self.register_buffer('x_mean', torch.zeros(x_dim))  # data standardisation, set by the trainer
        self.register_buffer('x_std', torch.ones(x_dim))
        num_scale = z_dim if posterior == 'diag' else z_dim * (z_dim + 1) // 2  # log-variances (+ strictly lower entries)
        self.encoder = MLP(x_dim + (num_domains if encoder_u else 0), z_dim + num_scale, hidden, num_layers)
        self.decoder = MLP(z_dim, x_dim, hidden, num_layers)
        if prior == 'flow':
            self.prior = MonotoneFlowPrior(z_dim, num_domains, num_terms)
        elif prior == 'gauss':
            self.prior = GaussianPrior(z_dim, num_domains)
        elif prior == 'none':
            self.prior = GaussianPrior(z_dim, 0)
        else:
            raise ValueError(f'prior must be "flow", "gauss" or "none", got "{prior}"')

    def encode(self, x, u=None):
        """Returns (mean, scale): scale = log-variances [B, n] ('diag'), or [B, n + n(n-1)/2] ('full')."""
        if self.encoder_u:  # iVAE's q(z|x,u)
            x = torch.cat([x, torch.nn.functional.one_hot(u, self.num_domains).to(x.dtype)], dim=-1)
        h = self.encoder(x)
        mean, scale = h[..., :self.z_dim], h[..., self.z_dim:]
        logvar = scale[..., :self.z_dim].clamp(-12, 6)
        return mean, torch.cat([logvar, scale[..., self.z_dim:]], dim=-1)

    def sample_posterior(self, mean, scale):
        """z = mean + L eps, eps ~ N(0, I); returns (z, log q(z|x)). L is diagonal or lower triangular."""
        n = self.z_dim
        logvar = scale[..., :n]
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(mean)
        if self.posterior == 'diag':
            z = mean + std * eps
        else:
            rows, cols = torch.tril_indices(n, n, offset=-1, device=mean.device)
            low = mean.new_zeros(mean.shape[:-1] + (n, n))
            low[..., rows, cols] = scale[..., n:]
            chol = low + torch.diag_embed(std)                                  # Cholesky factor of Cov q(z|x)
            z = mean + (chol @ eps[..., None])[..., 0]
        return z, standard_normal_log_prob(eps) - 0.5 * logvar.sum(-1)         # log q = log N(eps) - log|det L|

    def loss(self, x, u, beta: float = 1.0, alpha: float = 0.0):
        """Negative ELBO (recon + beta * KL, one-sample KL estimate) + alpha * L_s, per-sample means."""
        z, log_q = self.sample_posterior(*self.encode(x, u))                  # z ~ q(z|x), log q(z|x)
        xhat = self.decoder(z)
        recon = 0.5 * ((x - xhat) / self.decoder_std).square().sum(-1)          # -log p(x|z) + const
        kl = log_q - self.prior.log_prob(z, u)                                  # KL(q || p(z|u)), MC
        terms = dnnlib.EasyDict(recon=recon.mean(), kl=kl.mean())
        total = terms.recon + beta * terms.kl
        if alpha > 0:
            scale = z.std(0) if self.scale_invariant_sparsity else None
            terms.sparsity = jacobian_sparsity_penalty(self.decoder, z, scale)  # L_s, Eq. 9
            total = total + alpha * terms.sparsity
        terms.total = total
        return terms

#----------------------------------------------------------------------------

def train_synthetic_vae(
    x, u,                               # Training data: x [N, m] float32, u [N] int64.
    model:       str   = 'cg_vae',      # Key of MODELS.
    num_domains: int   = None,          # K; None = u.max() + 1.
    z_dim:       int   = None,          # None = x.shape[1].
    alpha:       float = 1.0,           # Sparsity weight for models that use it.
    beta:        float = 1.0,           # KL weight.
    steps:       int   = 3000,          # Adam steps.
    batch:       int   = 256,           # Minibatch size.
    lr:          float = 1e-3,          # Adam learning rate.
    lr_schedule: str   = 'constant',    # 'constant' or 'cosine' (decays to 0 at the last step).
    seed:        int   = 0,
    progress:    bool  = False,
    **model_kwargs,                     # Passed to SyntheticVAE (hidden, num_layers, ...).
):
    """Train one model; returns (net, stats) with net in eval mode and x standardised inside."""
    if model not in MODELS:
        raise ValueError(f'unknown model "{model}"; choose one of {", ".join(MODELS)}')
    if lr_schedule not in ('constant', 'cosine'):
        raise ValueError(f'lr_schedule must be "constant" or "cosine", got "{lr_schedule}"')
    preset = MODELS[model]
    alpha = alpha if preset['alpha'] is None else preset['alpha']
    num_domains = int(u.max()) + 1 if num_domains is None else num_domains
    z_dim = x.shape[1] if z_dim is None else z_dim
    torch.manual_seed(seed)
    net = SyntheticVAE(x.shape[1], z_dim, num_domains, preset['prior'], **model_kwargs)
    net.x_mean.copy_(x.mean(0))
    net.x_std.copy_(x.std(0).clamp(min=1e-6))
    xs = (x - net.x_mean) / net.x_std
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if lr_schedule == 'cosine' else None
    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    history = []
    for step in tqdm.trange(steps, disable=not progress, leave=False, desc=model):
        idx = torch.randint(len(xs), [min(batch, len(xs))], generator=gen)
        terms = net.loss(xs[idx], u[idx], beta=beta, alpha=alpha)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if step % 100 == 0 or step == steps - 1:
            history.append({k: float(v.detach()) for k, v in terms.items()})
    net.eval()
    stats = dict(model=model, alpha=alpha, beta=beta, steps=steps, lr=lr, lr_schedule=lr_schedule, seconds=time.time() - start,
                 final=history[-1], history=history)
    return net, stats


@torch.no_grad()
def posterior_mean(net, x, u=None):
    """E[zhat | x(, u)] of a trained SyntheticVAE (x in the original, unstandardised units)."""
    return net.encode((x - net.x_mean) / net.x_std, u)[0]


@torch.no_grad()
def negative_elbo(net, x, u, beta: float = 1.0, seed: int = 0) -> float:
    """Mean negative ELBO (recon + beta * KL, no L_s) per sample of x, one posterior draw each; sees no z."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        terms = net.loss((x - net.x_mean) / net.x_std, u, beta=beta, alpha=0.0)
    return float(terms.total)

#----------------------------------------------------------------------------
