"""Jacobian columns of a generator's image with respect to the latent x that enters its z -> w MLP (the x
that CG-GAN's L_s perturbs), for both mapping classes (DomainFlowMapping and NVIDIA's MappingNetwork),
and the split of x's columns into style and content (tools/compare_models.py, tools/cg_experiment.py,
metrics/region_metrics.py use them)."""
import copy

import torch

#----------------------------------------------------------------------------

def latent_fn(mapping):
    """x = the input of the z -> w MLP. DomainFlowMapping has it; NVIDIA's MappingNetwork concatenates
    normalize(z) and normalize(embed(c)) (the first z_dim columns of x are the normalised z)."""
    if hasattr(mapping, 'latent'):
        return mapping.latent
    from training.networks import normalize_2nd_moment
    def latent(z, c):
        x = normalize_2nd_moment(z.to(torch.float32))
        if mapping.c_dim > 0:
            x = torch.cat([x, normalize_2nd_moment(mapping.embed(c.to(x.dtype)))], dim=1)
        return x
    return latent


def mlp_fn(mapping):
    if hasattr(mapping, 'mlp'):
        return mapping.mlp
    def mlp(x):
        for idx in range(mapping.num_layers):
            x = getattr(mapping, f'fc{idx}')(x)
        return x
    return mlp


def render(G, x):
    """x -> image: MLP, broadcast to all ws, synthesis with constant noise."""
    w = mlp_fn(G.mapping)(x)
    ws = w.unsqueeze(1).repeat([1, G.mapping.num_ws, 1])
    return G.synthesis(ws, noise_mode='const', force_fp32=True)


def column_split(G, i_dim=None):
    """(style columns, content columns, note). Flow models: active style dims vs every other z dim.
    Baseline: first i_dim dims vs the rest (no mask; same indices as the flow models)."""
    m = G.mapping
    z_dim = G.z_dim
    if getattr(m, 'has_importance', False):
        style = [int(k) for k in torch.nonzero(m.style_mask()).flatten()]
        note = f'style = the {len(style)} active style dims (r > {m.mask_threshold:g}) of {m.i_dim} candidates; content = the other {z_dim - len(style)} z dims'
    else:
        i_dim = i_dim if i_dim is not None else z_dim // 2
        style = list(range(i_dim))
        note = f'no mask (concat conditioning): "style" = z dims 0..{i_dim - 1} (same indices as the flow models), content = the other {z_dim - i_dim}'
    content = [k for k in range(z_dim) if k not in set(style)]
    return style, content, note


def active_dims(G):
    m = G.mapping
    return int(m.num_active()) if hasattr(m, 'num_active') and getattr(m, 'has_importance', False) else None

def jacobian_columns(G, z, c, columns, chunk=256):
    """J e_k = d img / d x_k for k in columns, exact forward-mode products (float32): [len(columns), B, C*H*W]."""
    from training.cg_regularizers import _jvp # torch.func.jvp, else the double-backward trick
    with torch.no_grad():
        x = latent_fn(G.mapping)(z, c).to(torch.float32)
    B = x.shape[0]
    xs, ts = [], []
    for k in columns:
        t = torch.zeros_like(x)
        t[:, k] = 1                                                                       # e_k
        xs.append(x)
        ts.append(t)
    if not xs:
        return torch.zeros([0, B, 0])
    xs, ts = torch.cat(xs), torch.cat(ts)
    out = []
    for i in range(0, len(xs), chunk):
        with torch.enable_grad():
            out.append(_jvp(lambda xx: render(G, xx), xs[i:i + chunk], ts[i:i + chunk]).detach().reshape(min(chunk, len(xs) - i), -1))
    return torch.cat(out).reshape(len(columns), B, -1)                                   # J e_k


def eval_copy(G):
    return copy.deepcopy(G).eval().requires_grad_(False).cpu()


def domain_grid(G, num_latents, seed):
    """num_latents eps from `seed`, each in every domain (same eps across domains): z [N*K, z_dim], c [N*K, c_dim]."""
    K = max(int(G.c_dim), 1)
    z = torch.randn([num_latents, G.z_dim], generator=torch.Generator().manual_seed(seed)).repeat_interleave(K, dim=0)
    c = torch.eye(K).repeat(num_latents, 1) if G.c_dim > 0 else torch.zeros([len(z), 0])
    return z, c


def domain_columns(G, num_latents=16, seed=0, i_dim=None):
    """The style and content columns of an eval copy of G on domain_grid(): dict(style, content, note,
    J [len(style) + len(content), N*K, C*H*W]), computed once for every metric that reads them."""
    G = eval_copy(G)
    style, content, note = column_split(G, i_dim)
    z, c = domain_grid(G, num_latents, seed)
    return dict(style=style, content=content, note=note, num_latents=num_latents, seed=seed,
                J=jacobian_columns(G, z, c, style + content))

#----------------------------------------------------------------------------
