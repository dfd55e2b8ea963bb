"""Domain swaps with a trained CG-GAN / i-StyleGAN generator: same eps, every domain; style transfer
between seeds; traversal of one latent dim; the list of active style dims; PNG grids with headers.

Seeds give eps as NVIDIA's generate.py does: np.random.RandomState(seed).randn(1, z_dim). Images come
back as uint8 tensors (NVIDIA's conversion img * 127.5 + 128, clamped), on the CPU.
"""
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch

import dnnlib

#----------------------------------------------------------------------------

def _device(G):
    p = next(iter(G.parameters()), None)
    return torch.device('cpu') if p is None else p.device


def seed_latent(seed, z_dim):
    """The latent NVIDIA's generate.py uses for a seed: RandomState(seed).randn(1, z_dim), float32 on the CPU."""
    return torch.from_numpy(np.random.RandomState(int(seed)).randn(1, z_dim)).to(torch.float32)


def seed_to_z(G, seed):
    """eps for a seed on G's device: [1, z_dim]."""
    return seed_latent(seed, G.z_dim).to(_device(G))


def domain_onehot(G, domain):
    """One-hot label [1, c_dim] for a domain index (an int) or pass a one-hot vector through."""
    if isinstance(domain, torch.Tensor) and domain.numel() == G.c_dim and domain.dtype.is_floating_point:
        return domain.reshape(1, G.c_dim).to(_device(G), torch.float32)
    k = int(domain)
    if not 0 <= k < G.c_dim:
        raise ValueError(f'domain {k} does not exist; this generator has {G.c_dim} domains (0..{G.c_dim - 1})')
    c = torch.zeros([1, G.c_dim], device=_device(G))
    c[0, k] = 1
    return c


def to_uint8(img):
    """[-1, 1] float images -> uint8 on the CPU (NVIDIA's rounding)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()


@torch.no_grad()
def render_rows(G, num_samples, seed=0, device='cpu', batch_size=64, truncation_psi=1.0, noise_mode='const'):
    """(eps float64 [N, z_dim], uint8 images [N, K, C, H, W]): each eps rendered in every domain."""
    K = int(G.c_dim)
    eps = torch.cat([seed_latent(seed * num_samples + i, G.z_dim) for i in range(num_samples)])
    rows = []
    per = max(1, batch_size // K)
    for start in range(0, num_samples, per):
        z = eps[start:start + per].to(device).repeat_interleave(K, dim=0)
        c = torch.eye(K, device=device).repeat(len(z) // K, 1)
        img = to_uint8(G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode))
        rows.append(img.reshape(-1, K, *img.shape[1:]))
    return eps.numpy().astype(np.float64), torch.cat(rows)


def _synth(G, z, c, truncation_psi, truncation_cutoff, noise_mode):
    return to_uint8(G(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, noise_mode=noise_mode))

#----------------------------------------------------------------------------

@torch.no_grad()
def swap_grid(G, seeds, domains=None, truncation_psi=0.7, truncation_cutoff=None, noise_mode='const'):
    """uint8 [len(seeds), len(domains), C, H, W]: row i is seed i's eps rendered in every domain.
    domains: indices (default: all)."""
    return swap_grid_latents(G, [seed_to_z(G, seed) for seed in seeds], domains, truncation_psi, truncation_cutoff, noise_mode)


@torch.no_grad()
def swap_grid_latents(G, latents, domains=None, truncation_psi=0.7, truncation_cutoff=None, noise_mode='const'):
    """swap_grid for given eps (each [1, z_dim], e.g. projections): row i is latents[i] in every domain."""
    if G.c_dim == 0:
        raise ValueError('swap grids need a conditional generator (c_dim > 0); this one is unconditional')
    domains = list(range(G.c_dim)) if domains is None else [int(d) for d in domains]
    rows = []
    for eps in latents:
        z = eps.reshape(1, G.z_dim).to(_device(G)).repeat(len(domains), 1)             # same eps in every column
        c = torch.cat([domain_onehot(G, d) for d in domains])
        rows.append(_synth(G, z, c, truncation_psi, truncation_cutoff, noise_mode))
    return torch.stack(rows)


@torch.no_grad()
def swap_style(G, src_seed, dst_seed, c, truncation_psi=0.7, truncation_cutoff=None, noise_mode='const'):
    """uint8 [3, C, H, W]: (src, dst, swapped) in domain c, where swapped takes the active style dims of
    eps from src_seed and every other (content) dim from dst_seed."""
    z_src, z_dst = seed_to_z(G, src_seed), seed_to_z(G, dst_seed)
    mask = G.mapping.style_mask(device=z_src.device) if hasattr(G.mapping, 'style_mask') else torch.zeros([G.z_dim], dtype=torch.bool, device=z_src.device)
    z_swap = torch.where(mask, z_src, z_dst)                                           # z_s of src, z_c of dst
    cc = domain_onehot(G, c).repeat(3, 1)
    return _synth(G, torch.cat([z_src, z_dst, z_swap]), cc, truncation_psi, truncation_cutoff, noise_mode)


@torch.no_grad()
def traverse(G, seed, c, dim, values, truncation_psi=0.7, truncation_cutoff=None, noise_mode='const'):
    """uint8 [len(values), C, H, W]: seed's eps with eps[dim] set to each value, in domain c."""
    if not 0 <= int(dim) < G.z_dim:
        raise ValueError(f'dim {dim} is outside the latent (0..{G.z_dim - 1})')
    values = torch.as_tensor(list(values), dtype=torch.float32, device=_device(G))
    z = seed_to_z(G, seed).repeat(len(values), 1)
    z[:, int(dim)] = values
    return _synth(G, z, domain_onehot(G, c).repeat(len(values), 1), truncation_psi, truncation_cutoff, noise_mode)


def list_active(G):
    """[(dim, r)] for the active style dims, largest importance r first; [] without a mask."""
    mapping = G.mapping
    if not hasattr(mapping, 'active_dims'):
        return []
    r = mapping.importance.detach()[0].cpu()
    return [(d, float(r[d])) for d in mapping.active_dims()]

#----------------------------------------------------------------------------

def upscale(images, min_size=64):
    """Nearest-neighbour upsampling of uint8 [..., H, W] tiles by the integer factor that brings W to about
    min_size (figures of 16² runs); unchanged when they are already that large."""
    up = max(1, min_size // int(images.shape[-1]))
    return images.repeat_interleave(up, dim=-1).repeat_interleave(up, dim=-2)


def grid_image(images, col_headers=None, row_headers=None, pad=2):
    """uint8 [rows, cols, C, H, W] (or [N, C, H, W]: one row) -> PIL image, headers drawn as text.

    A column is as wide as its widest item (tile or header), so headers never overlap at any resolution;
    tiles are centred in their column."""
    images = torch.as_tensor(images)
    if images.ndim == 4:
        images = images.unsqueeze(0)
    rows, cols, C, H, W = images.shape
    if col_headers is not None and len(col_headers) != cols:
        raise ValueError(f'{len(col_headers)} column headers for {cols} columns')
    if row_headers is not None and len(row_headers) != rows:
        raise ValueError(f'{len(row_headers)} row headers for {rows} rows')
    font = PIL.ImageFont.load_default()
    measure = PIL.ImageDraw.Draw(PIL.Image.new('RGB', (1, 1)))
    text_h = lambda s: measure.textbbox((0, 0), s, font=font)[3] if s else 0
    text_w = lambda s: measure.textbbox((0, 0), s, font=font)[2] if s else 0
    col_headers = [str(s) for s in col_headers] if col_headers is not None else None
    top = max([text_h(s) for s in col_headers] + [0]) + 2 * pad if col_headers else 0
    left = max([text_w(str(s)) for s in row_headers] + [0]) + 2 * pad if row_headers else 0
    cell = max([W] + [text_w(s) for s in col_headers or []])
    canvas = PIL.Image.new('RGB', (left + cols * (cell + pad) + pad, top + rows * (H + pad) + pad), 'white')
    draw = PIL.ImageDraw.Draw(canvas)
    x0 = lambda j: left + pad + j * (cell + pad)
    for i in range(rows):
        for j in range(cols):
            arr = images[i, j].permute(1, 2, 0).numpy()
            tile = PIL.Image.fromarray(arr[:, :, 0] if C == 1 else arr, 'L' if C == 1 else 'RGB')
            canvas.paste(tile.convert('RGB'), (x0(j) + (cell - W) // 2, top + pad + i * (H + pad)))
    for j, s in enumerate(col_headers or []):
        draw.text((x0(j) + (cell - text_w(s)) // 2, pad), s, fill='black', font=font)
    for i, s in enumerate(row_headers or []):
        draw.text((pad, top + pad + i * (H + pad) + max(0, (H - text_h(str(s))) // 2)), str(s), fill='black', font=font)
    return canvas


def save_grid_png(images, path, col_headers=None, row_headers=None):
    """Write `grid_image(...)` to `path` atomically (temp file in the same folder, then rename)."""
    canvas = grid_image(images, col_headers=col_headers, row_headers=row_headers)
    with dnnlib.util.atomic_write(path) as f:
        canvas.save(f, format='PNG')
    return canvas

#----------------------------------------------------------------------------
