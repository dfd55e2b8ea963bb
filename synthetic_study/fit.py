"""Training of an ensemble to a validation plateau, the constrained rule (b), held-out ELBO and posterior means.

Every member has its own data set (its seed's), its own minibatch and noise generators, its own early stop
and its own checkpoint: the best validation objective (nELBO + alpha * L1) seen on an evaluation every
`eval_every` steps; a member stops when that has not improved by `min_delta` for `patience` evaluations,
or at `max_steps`. The loop runs until every member has stopped; stopped members keep being stepped (that
is cheaper than taking them out) but their checkpoint is what comes back, so each member ends exactly as
it would alone.

Constrained rule (b), alpha = None: phase 1 trains at alpha = 0 to the plateau and restores the best
checkpoint, whose validation nELBO is nELBO_0. Phase 2 anneals alpha up from 0 by a multiplier update at
every evaluation, alpha <- clip(alpha - eta * (nELBO_val - nELBO_0 - tau), 0, alpha_max): it grows while
the constraint nELBO <= nELBO_0 + tau has slack and shrinks when it is violated. The checkpoint is the
evaluation with the lowest validation L1 among those meeting the constraint (phase 1's end meets it).
"""
import time

import torch

import dnnlib
from synthetic_study.models import ARMS, EnsembleVAE

#----------------------------------------------------------------------------

TRAIN_DEFAULTS = dict(batch=256, l1_batch=64, lr=1e-3, max_steps=30000, eval_every=250, patience=8, min_delta=0.01, beta=1.0,
                      tau=0.1, eta=2.0, alpha_max=10.0, hidden=64)
BATCH_OFFSET, NOISE_OFFSET, VAL_OFFSET, TEST_OFFSET = 10**9, 2 * 10**9, 3 * 10**9, 4 * 10**9


def _stack(tensors, what):
    if len({tuple(t.shape) for t in tensors}) != 1:
        raise ValueError(f'every member needs a {what} of the same shape, got {sorted({tuple(t.shape) for t in tensors})}')
    return torch.stack(tensors)


def fixed_noise(seeds, shape, offset):
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s) + offset)) for s in seeds])


L1_POINTS = 2000


def spread(total: int, count: int = L1_POINTS):
    """At most `count` indices spread evenly over range(total) (the splits are sorted by domain)."""
    return torch.unique(torch.linspace(0, total - 1, min(total, count)).round().long())


@torch.no_grad()
def evaluate(net, xs, u, eps, beta: float) -> dnnlib.EasyDict:
    """Per-member nELBO on standardised x [S, N, m] with fixed noise eps [S, N, n], and the scaled L1 on
    at most L1_POINTS of the points."""
    return net.terms(xs, u, eps, beta=beta, l1=True, l1_index=spread(xs.shape[1]))


def _member_state(net, i):
    return {k: v[i].clone() for k, v in net.state_dict().items()}


@torch.no_grad()
def _restore(net, i, state):
    for k, v in net.state_dict().items():
        v[i].copy_(state[k])


def train_ensemble(data: list, seeds: list, arm: str, alphas: list, num_domains: int, cfg: dict = None,
                   progress=None) -> tuple:
    """Train one member per (data set, seed, alpha); alpha None = constrained rule (b).

    data: per member EasyDict with x_train, u_train, x_val, u_val. Returns (net, stats per member)."""
    if arm not in ARMS:
        raise ValueError(f'unknown arm "{arm}"; choose one of {", ".join(ARMS)}')
    if not len(data) == len(seeds) == len(alphas) >= 1:
        raise ValueError('need one data set, one seed and one alpha per member')
    c = dnnlib.EasyDict(TRAIN_DEFAULTS, **(cfg or {}))
    start = time.time()
    x = _stack([d.x_train for d in data], 'training set')
    u = _stack([d.u_train for d in data], 'training set')
    xv, uv = _stack([d.x_val for d in data], 'validation set'), _stack([d.u_val for d in data], 'validation set')
    S, N, m = x.shape
    n = data[0].n
    net = EnsembleVAE(seeds, m, n, num_domains, ARMS[arm]['prior'], hidden=c.hidden)
    net.x_mean.copy_(x.mean(1))
    net.x_std.copy_(x.std(1).clamp(min=1e-6))
    xs, xvs = net.standardise(x), net.standardise(xv)
    eps_val = fixed_noise(seeds, xv.shape[1:2] + (n,), VAL_OFFSET)
    batch_gens = [torch.Generator().manual_seed(int(s) + BATCH_OFFSET) for s in seeds]
    noise_gens = [torch.Generator().manual_seed(int(s) + NOISE_OFFSET) for s in seeds]
    constrained = [a is None for a in alphas]
    alpha = torch.tensor([0.0 if a is None else float(a) for a in alphas])
    need_l1 = any(constrained) or bool((alpha > 0).any())
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    members = torch.arange(S)[:, None]
    B = min(c.batch, N)
    l1_index = None if c.l1_batch >= B else torch.arange(c.l1_batch)  # the L1 on the first l1_batch points of a batch
    st = [dnnlib.EasyDict(best=float('inf'), best_step=0, stale=0, done=False, nelbo0=None, val_nelbo=None, val_l1=None,
                          alpha=float(alpha[i]), state=None, phase=1 if a is None else 0)  # 1, 2: rule (b)'s fit, constraint
          for i, a in enumerate(alphas)]
    step = 0
    while True:
        if step % c.eval_every == 0 or step == c.max_steps:
            v = evaluate(net, xvs, uv, eps_val, c.beta)
            for i, s in enumerate(st):
                if s.done:
                    continue
                vn, vl, a_now = float(v.nelbo[i]), float(v.l1[i]), float(alpha[i])
                if s.phase == 2:
                    slack = vn - s.nelbo0 - c.tau
                    better = slack <= 0 and vl < s.best - c.min_delta
                    score = vl
                    alpha[i] = min(max(a_now - c.eta * slack, 0.0), c.alpha_max)
                else:
                    score = vn + a_now * vl
                    better = score < s.best - c.min_delta
                if better:
                    s.update(best=score, best_step=step, stale=0, val_nelbo=vn, val_l1=vl, alpha=a_now, state=_member_state(net, i))
                else:
                    s.stale += 1
                if s.stale >= c.patience or step >= c.max_steps:
                    if s.phase == 1 and step < c.max_steps:  # the fit has plateaued: restore it, then constrain
                        _restore(net, i, s.state)
                        s.update(phase=2, nelbo0=s.val_nelbo, best=s.val_l1, stale=0, fit_steps=s.best_step)
                        alpha[i] = 0.0
                    else:
                        s.done = True
            if progress is not None:
                progress(step, sum(s.done for s in st), S)
            if all(s.done for s in st):
                break
        idx = torch.stack([torch.randint(N, [B], generator=g) for g in batch_gens])
        eps = torch.stack([torch.randn([B, n], generator=g) for g in noise_gens])
        t = net.terms(xs[members, idx], u[members, idx], eps, beta=c.beta, l1=need_l1, l1_index=l1_index)
        loss = t.nelbo.sum() + ((alpha * t.l1).sum() if need_l1 else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    for i, s in enumerate(st):
        _restore(net, i, s.state)
    seconds = time.time() - start
    stats = [dict(best_step=s.best_step, stop_step=step, val_nelbo=round(s.val_nelbo, 4), val_l1=round(s.val_l1, 4),
                  alpha_used=round(s.alpha, 6), nelbo0=None if s.nelbo0 is None else round(s.nelbo0, 4),
                  fit_steps=s.get('fit_steps'), seconds=round(seconds / S, 2), ensemble=S) for s in st]
    return net.eval(), stats

#----------------------------------------------------------------------------

@torch.no_grad()
def posterior_means(net, x):
    """E[zhat | x] per member: x [S, N, m] in the original units -> [S, N, n]."""
    return net.encode(net.standardise(x))[0]


@torch.no_grad()
def heldout_terms(net, x, u, seeds, beta: float = 1.0) -> dnnlib.EasyDict:
    """Per-member nELBO (no L1) and scaled L1 (see evaluate) on x [S, N, m], one fixed posterior draw per point."""
    eps = fixed_noise(seeds, x.shape[1:2] + (net.z_dim,), TEST_OFFSET)
    return evaluate(net, net.standardise(x), u, eps, beta)

#----------------------------------------------------------------------------
