"""CG-VAE and its baselines as ensembles: S independent models trained side by side with a leading member
dimension on every weight, so one optimiser step costs about what one small model's step costs.

Member i is initialised from its own generator (seeded by its seed), so it is the same model whatever the
other members are; its loss never touches another member's weights, so the sum of the members' losses
trains each exactly as alone (tests: ensemble == single run).

Arms (ARMS): prior of zhat given u and the L1 weight alpha on the decoder Jacobian dxhat/dzhat.
  cg_vae              component-wise monotone flow eps = F_u(zhat), alpha from the blind rule (a)
  cg_vae_nosparse     the same flow, alpha = 0 (changes alone)
  cg_vae_constrained  the same flow, alpha from the constrained rule (b): fit at alpha = 0, then minimise
                      L1 subject to nELBO <= nELBO_0 + tau (fit.py)
  ivae                Gaussian N(mu_u, diag sigma_u^2), alpha = 0 (changes alone)
  ivae_l1             the same Gaussian prior, alpha from rule (a): isolates the penalty from the prior
  sparse_only         N(0, I), no u, alpha from rule (a) (sparsity alone)
  beta_vae            N(0, I), no u, alpha = 0 (beta = 1 by default: a plain VAE)
Every arm has the same encoder, decoder, full-covariance posterior and budget.

The posterior q(zhat|x) is a full-covariance Gaussian: a diagonal one biases the ELBO towards decoders with
orthogonal Jacobian columns (0.5 * (sum_i log (J^T J)_ii - log det J^T J) nats per sample at small noise).
"""
import math

import torch

import dnnlib

#----------------------------------------------------------------------------

ARMS = {
    'cg_vae':             dict(prior='flow',  rule='blind'),
    'cg_vae_nosparse':    dict(prior='flow',  rule='none'),
    'cg_vae_constrained': dict(prior='flow',  rule='constrained'),
    'ivae':               dict(prior='gauss', rule='none'),
    'ivae_l1':            dict(prior='gauss', rule='blind'),
    'sparse_only':        dict(prior='none',  rule='blind'),
    'beta_vae':           dict(prior='none',  rule='none'),
}
ALPHA_ZERO_ARM = {'cg_vae': 'cg_vae_nosparse', 'ivae_l1': 'ivae', 'sparse_only': 'beta_vae'}  # same model at alpha = 0
SLOPE = 0.2

#----------------------------------------------------------------------------

def member_generators(seeds) -> list:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _uniform(shape, bound, gens):
    return torch.stack([(torch.rand(shape, generator=g) * 2 - 1) * bound for g in gens])


class EnsembleMLP(torch.nn.Module):
    """S leaky-ReLU MLPs with weights [S, out, in]; torch.nn.Linear's default initialisation per member."""

    def __init__(self, gens: list, in_dim: int, out_dim: int, hidden: int = 64, num_layers: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.weights, self.biases = torch.nn.ParameterList(), torch.nn.ParameterList()
        for idx in range(num_layers):
            bound = 1 / math.sqrt(dims[idx])
            self.weights.append(torch.nn.Parameter(_uniform([dims[idx + 1], dims[idx]], bound, gens)))
            self.biases.append(torch.nn.Parameter(_uniform([dims[idx + 1]], bound, gens)))

    def forward(self, x, jacobian: bool = False):
        """x [S, B, in] -> y [S, B, out]; with jacobian=True also dy/dx [S, B, out, in] (exact, by the chain rule)."""
        S, B, n = x.shape
        jac = None  # laid out [S, width, B, n] so that each layer is one batched matmul
        last = len(self.weights) - 1
        for idx, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))
            if jacobian:
                jac = w[:, :, None, :] if jac is None else torch.bmm(w, jac.reshape(S, w.shape[2], B * n)).reshape(S, -1, B, n)
            if idx < last:
                slope = torch.where(x > 0, 1.0, SLOPE)
                if jacobian:
                    jac = jac * slope.transpose(1, 2)[..., None]
                x = x * slope
        return (x, jac.permute(0, 2, 1, 3)) if jacobian else x

#----------------------------------------------------------------------------

def _pick(table, u):
    """table [S, K, P], u [S, B] -> [S, B, P]."""
    return table[torch.arange(len(table))[:, None], u]


class FlowPrior(torch.nn.Module):
    """Component-wise monotone flow eps_i = F_u,i(z_i), parameters from a per-domain table.

    F(z) = a*z + b + sum_k c_k * tanh(d_k*z + e_k) with a, c_k, d_k > 0 (strictly increasing), so
    log|dF/dz| = log(a + sum_k c_k d_k (1 - tanh^2)) is exact, and p(z|u) = N(F_u(z); 0, I) |F_u'(z)|.
    """

    def __init__(self, gens: list, z_dim: int, num_domains: int, num_terms: int = 4):
        super().__init__()
        self.z_dim, self.num_terms = z_dim, num_terms
        shape = [num_domains, z_dim * (2 + 3 * num_terms)]
        self.table = torch.nn.Parameter(torch.stack([torch.randn(shape, generator=g) * 0.1 for g in gens]))

    def forward(self, z, u):
        """Returns (eps, log|det dF/dz|) with shapes [S, B, n] and [S, B]."""
        q = _pick(self.table, u).reshape(z.shape + (2 + 3 * self.num_terms,))
        nt = self.num_terms
        a = torch.nn.functional.softplus(q[..., 0] + 0.5413)           # softplus(0.5413) = 1
        c = torch.nn.functional.softplus(q[..., 2:2 + nt] - 2)          # small at init
        d = torch.nn.functional.softplus(q[..., 2 + nt:2 + 2 * nt] + 0.5413)
        t = torch.tanh(d * z[..., None] + q[..., 2 + 2 * nt:] * 3)
        eps = a * z + q[..., 1] + (c * t).sum(-1)
        return eps, torch.log(a + (c * d * (1 - t * t)).sum(-1)).sum(-1)

    def log_prob(self, z, u):
        eps, logdet = self(z, u)
        return standard_normal_log_prob(eps) + logdet


class GaussianPrior(torch.nn.Module):
    """iVAE prior p(z|u) = N(mu_u, diag exp(logvar_u)); with num_domains = 0, N(0, I)."""

    def __init__(self, gens: list, z_dim: int, num_domains: int):
        super().__init__()
        self.table = None
        if num_domains > 0:
            self.table = torch.nn.Parameter(torch.stack([torch.randn([num_domains, 2 * z_dim], generator=g) * 0.1 for g in gens]))

    def log_prob(self, z, u):
        if self.table is None:
            return standard_normal_log_prob(z)
        mean, logvar = _pick(self.table, u).chunk(2, dim=-1)
        return standard_normal_log_prob((z - mean) * torch.exp(-0.5 * logvar)) - 0.5 * logvar.sum(-1)


def standard_normal_log_prob(eps):
    return -0.5 * (eps * eps).sum(-1) - 0.5 * eps.shape[-1] * math.log(2 * math.pi)


def scaled_l1(jac, scale):
    """Mean over samples of ||J diag(scale)||_1: jac [..., B, m, n], scale [..., n] -> [...].

    The ELBO cannot see a rescaling z_j -> c z_j (the prior absorbs it), so the plain L1 could be lowered by
    inflating z; multiplying column j by the std of z_j removes that."""
    return (jac * scale[..., None, None, :]).abs().sum(dim=(-2, -1)).mean(-1)

#----------------------------------------------------------------------------

class EnsembleVAE(torch.nn.Module):
    """S VAEs of one arm's prior ('flow', 'gauss' or 'none'), member i seeded by seeds[i]."""

    def __init__(self, seeds, x_dim: int, z_dim: int, num_domains: int, prior: str = 'flow', hidden: int = 64,
                 num_layers: int = 3, num_terms: int = 4, decoder_std: float = 0.1):
        super().__init__()
        if prior not in ('flow', 'gauss', 'none'):
            raise ValueError(f'prior must be "flow", "gauss" or "none", got "{prior}"')
        gens = member_generators(seeds)
        self.size, self.z_dim, self.decoder_std = len(seeds), z_dim, decoder_std
        self.register_buffer('x_mean', torch.zeros(self.size, x_dim))  # data standardisation, set by the trainer
        self.register_buffer('x_std', torch.ones(self.size, x_dim))
        self.encoder = EnsembleMLP(gens, x_dim, z_dim + z_dim * (z_dim + 1) // 2, hidden, num_layers)
        self.decoder = EnsembleMLP(gens, z_dim, x_dim, hidden, num_layers)
        if prior == 'flow':
            self.prior = FlowPrior(gens, z_dim, num_domains, num_terms)
        else:
            self.prior = GaussianPrior(gens, z_dim, num_domains if prior == 'gauss' else 0)

    def standardise(self, x):
        return (x - self.x_mean[:, None]) / self.x_std[:, None]

    def encode(self, xs):
        """Standardised x [S, B, m] -> (mean [S, B, n], scale): n log-variances, then the strictly lower entries."""
        h = self.encoder(xs)
        n = self.z_dim
        return h[..., :n], torch.cat([h[..., n:2 * n].clamp(-12, 6), h[..., 2 * n:]], dim=-1)

    def sample_posterior(self, mean, scale, eps):
        """z = mean + L eps with L lower triangular; returns (z, log q(z|x))."""
        n = self.z_dim
        logvar = scale[..., :n]
        rows, cols = torch.tril_indices(n, n, offset=-1)
        low = mean.new_zeros(mean.shape + (n,))
        low[..., rows, cols] = scale[..., n:]
        chol = low + torch.diag_embed(torch.exp(0.5 * logvar))
        z = mean + (chol @ eps[..., None])[..., 0]
        return z, standard_normal_log_prob(eps) - 0.5 * logvar.sum(-1)

    def terms(self, xs, u, eps, beta: float = 1.0, l1: bool = False, l1_index=None) -> dnnlib.EasyDict:
        """Per-member batch means [S]: recon, kl, nelbo = recon + beta * kl, and (l1=True) the scaled L1, over
        the points l1_index only when given (it bounds the memory of the Jacobian on large held-out sets)."""
        z, log_q = self.sample_posterior(*self.encode(xs), eps)
        whole = l1 and l1_index is None
        xhat, jac = self.decoder(z, jacobian=True) if whole else (self.decoder(z), None)
        recon = 0.5 * ((xs - xhat) / self.decoder_std).square().sum(-1).mean(-1)
        kl = (log_q - self.prior.log_prob(z, u)).mean(-1)
        t = dnnlib.EasyDict(recon=recon, kl=kl, nelbo=recon + beta * kl)
        if l1:
            z = z if whole else z[:, l1_index]
            t.l1 = scaled_l1(jac if whole else self.decoder_jacobian(z), z.std(1))
        return t

    def decoder_jacobian(self, z):
        """dxhat/dzhat [S, B, m, n] in standardised-x units."""
        return self.decoder(z, jacobian=True)[1]

#----------------------------------------------------------------------------
