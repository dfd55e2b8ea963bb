"""CG-GAN regularisers: the mask loss L_m and the sparse-mixing (Jacobian) loss L_s.

L_m = mean_i |r_i|                                        (mask loss on the importance vector r)
L_s ~ || d img / d x_k ||_1 for active style columns k    (paper Eq. 9: L1 of the Jacobian)

x is the normalised post-flow latent `G.mapping.latent(eps, u)`; img = G.synthesis(broadcast(MLP(x))).

Scaling (paper Eq. 9, made resolution-free). For a column k, L_s is the L1 norm of the Jacobian column
J e_k = d img / d x_k with every pixel weighted by its area in a unit-square image:
    L_s = (1 / (H W)) * sum_{c,h,w} |d img[c,h,w] / d x_k|,
averaged over the batch and the drawn columns. The same image content rendered at 32² or 1024² gives
the same value, so one lambda transfers across resolutions; the channel sum keeps the paper's L1 over
colour. estimator='fd' divides a one-sided difference by delta, 'jvp' is exact; both agree as
delta -> 0. (The released code's per-pixel mean |img(x + delta e_k) - img(x)| is delta / C times this,
and never depended on the Jacobian: docs/method.md.) On CUDA both passes run the synthesis in fp32:
per-pixel differences of a few 1e-3 are at fp16 rounding, exactly where the L1 pushes entries to zero.

Fixed with respect to the released code (docs/method.md): the perturbed image really comes from the
perturbed latent; both passes share the same ws after style mixing (one second eps with the same
domain, one cutoff) and the same noise; k is drawn from the active style columns only.
"""
import torch

#----------------------------------------------------------------------------

def importance_l1(mapping):
    """L_m = mean_i |r_i| (a zero scalar when the mapping has no importance vector)."""
    r = getattr(mapping, 'importance', None)
    if r is None:
        p = next(iter(mapping.parameters()), None)
        return torch.zeros([], device=None if p is None else p.device)
    return r.abs().mean()                                                              # L_m

#----------------------------------------------------------------------------

def style_columns(mapping, device=None):
    """Indices (LongTensor) of the columns of x that L_s may perturb: the active style dims."""
    mask = mapping.style_mask(device=device) if hasattr(mapping, 'style_mask') else torch.zeros([0], dtype=torch.bool, device=device)
    return torch.nonzero(mask, as_tuple=False).flatten()


def _gen_device(generator):
    return generator.device if generator is not None else torch.device('cpu')

def _pick_columns(cols, num_columns, generator):
    """num_columns distinct active columns (all of them if fewer are active) and signs +-1."""
    n = min(int(num_columns), len(cols))
    order = torch.randperm(len(cols), generator=generator, device=_gen_device(generator)).cpu()
    picks = cols.cpu()[order[:n]]
    signs = torch.randint(0, 2, [n], generator=generator, device=_gen_device(generator)).cpu() * 2 - 1
    return [int(k) for k in picks], [int(s) for s in signs]


def _mixing(G, z, c, style_mixing_prob, generator):
    """One style-mixing draw shared by every pass: (cutoff, w2) with w2 None when not mixing."""
    num_ws = G.mapping.num_ws
    if style_mixing_prob <= 0 or num_ws is None or num_ws < 2:
        return num_ws, None
    dev = _gen_device(generator)
    if float(torch.rand([], generator=generator, device=dev)) >= style_mixing_prob:
        return num_ws, None
    cutoff = int(torch.randint(1, num_ws, [], generator=generator, device=dev))
    z2 = torch.randn(z.shape, generator=generator, device=dev, dtype=z.dtype).to(z.device) # second eps, same domain c
    return cutoff, G.mapping.mlp(G.mapping.latent(z2, c))


def _render(G, x, cutoff, w2, noise_mode):
    """x -> image through MLP, broadcast, the shared style mixing, and synthesis (fp32 blocks even on CUDA)."""
    w = G.mapping.mlp(x)
    num_ws = G.mapping.num_ws
    ws = w.unsqueeze(1).repeat([1, num_ws, 1])
    if w2 is not None:
        reps = x.shape[0] // w2.shape[0]
        ws = torch.cat([ws[:, :cutoff], w2.repeat([reps, 1]).unsqueeze(1).repeat([1, num_ws - cutoff, 1])], dim=1)
    return G.synthesis(ws, noise_mode=noise_mode, force_fp32=True)


class _SameNoise:
    """Runs calls under one RNG state, so noise_mode='random' draws identical noise in every pass."""
    def __init__(self, device):
        self.device = torch.device(device)
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.device) if self.device.type == 'cuda' else None

    def restore(self):
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _jvp(fn, x, tangent):
    """J(x) @ tangent: forward-mode torch.func.jvp, else the double-backward trick."""
    try:
        return torch.func.jvp(fn, (x,), (tangent,))[1]
    except (NotImplementedError, RuntimeError): # an op without a forward-mode formula
        pass
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    y = fn(x)
    v = torch.zeros_like(y, requires_grad=True)
    g = torch.autograd.grad(y, x, v, create_graph=True)[0]                              # v^T J, linear in v
    return torch.autograd.grad(g, v, tangent, create_graph=True)[0]                     # d(v^T J t)/dv = J t

def column_l1(jac_col):
    """(1 / (H W)) sum_{c,h,w} |J e_k| for [..., C, H, W] Jacobian columns, mean over the leading dims."""
    return jac_col.abs().sum(dim=-3).mean()

#----------------------------------------------------------------------------

def jacobian_sparsity_penalty(G, z, c, *, delta=0.1, estimator='fd', num_columns=1, style_mixing_prob=0.9,
                              generator=None, noise_mode='const'):
    """L_s: the area-normalised L1 norm of d img / d x_k, mean over `num_columns` random active style columns k.

    G: a generator with `.mapping` (latent(z, c), mlp(x), num_ws, style_mask()) and `.synthesis(ws,
    noise_mode=...)`. Returns a scalar that backpropagates into mapping and synthesis; zero (still
    attached to the graph) when no style column is active. noise_mode='random' uses identical noise in
    both passes. See the module docstring for the scaling with respect to the released code.
    """
    if estimator not in ('fd', 'jvp'):
        raise ValueError(f'estimator must be "fd" or "jvp", got {estimator!r}')
    if not delta > 0:
        raise ValueError(f'delta must be > 0, got {delta}')
    if int(num_columns) < 1:
        raise ValueError(f'num_columns must be >= 1, got {num_columns}')
    x = G.mapping.latent(z, c)                                                          # computed once
    cols = style_columns(G.mapping, device=x.device)
    if len(cols) == 0:
        return x.sum() * 0
    picks, signs = _pick_columns(cols, num_columns, generator)
    cutoff, w2 = _mixing(G, z, c, style_mixing_prob, generator)
    B = x.shape[0]

    if estimator == 'jvp':
        terms = []
        for k in picks:
            tangent = torch.zeros_like(x)
            tangent[:, k] = 1                                                           # e_k
            terms.append(column_l1(_jvp(lambda xx: _render(G, xx, cutoff, w2, noise_mode), x, tangent)))
        return torch.stack(terms).mean()

    shifted = []
    for k, s in zip(picks, signs):
        e = torch.zeros_like(x)
        e[:, k] = s * delta
        shifted.append(x + e)                                                           # x' = x + s*delta*e_k
    if noise_mode == 'random':                                                          # same noise in every pass
        state = _SameNoise(x.device)
        imgs = []
        for xx in [x] + shifted:
            state.restore()
            imgs.append(_render(G, xx, cutoff, w2, noise_mode))
        img, imgs_k = imgs[0], torch.stack(imgs[1:])
    else:                                                                               # one batched pass
        out = _render(G, torch.cat([x] + shifted), cutoff, w2, noise_mode)
        img, imgs_k = out[:B], out[B:].reshape(len(shifted), *out[:B].shape)
    return column_l1((imgs_k - img.unsqueeze(0)) / delta)                               # ~ J e_k, one-sided

#----------------------------------------------------------------------------

@torch.no_grad()
def _fd_column(G, x, k, delta, noise_mode):
    e = torch.zeros_like(x)
    e[:, k] = delta
    out = _render(G, torch.cat([x - e, x + e]), None, None, noise_mode)
    B = x.shape[0]
    return ((out[B:] - out[:B]) / (2 * delta)).abs().mean()


def jacobian_column_l1(G, z, c, columns, *, estimator='fd', delta=1e-3, noise_mode='const'):
    """Measurement helper: mean |d img / d x_k| for each k in `columns` (style or content), no style
    mixing, no gradient. Returns a float tensor [len(columns)]. 'fd' uses central differences."""
    if estimator not in ('fd', 'jvp'):
        raise ValueError(f'estimator must be "fd" or "jvp", got {estimator!r}')
    with torch.no_grad():
        x = G.mapping.latent(z, c)
    if noise_mode == 'random':
        raise ValueError('jacobian_column_l1 needs deterministic noise: use noise_mode "const" or "none"')
    vals = []
    for k in columns:
        if not 0 <= int(k) < x.shape[1]:
            raise ValueError(f'column {k} is outside the latent (0..{x.shape[1] - 1})')
        if estimator == 'fd':
            vals.append(_fd_column(G, x, int(k), delta, noise_mode))
        else:
            tangent = torch.zeros_like(x)
            tangent[:, int(k)] = 1
            with torch.enable_grad():
                vals.append(_jvp(lambda xx: _render(G, xx, None, None, noise_mode), x, tangent).abs().mean().detach())
    return torch.stack(vals) if vals else torch.zeros([0])

#----------------------------------------------------------------------------
