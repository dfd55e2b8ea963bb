"""Generate images from a network snapshot (NVIDIA StyleGAN2-ADA pickle, i-StyleGAN pickle or our .pt).

Examples:
    python generate.py --network=runs/00000/network-snapshot-000400.pt --seeds=0-7 --outdir=out
    python generate.py --network=afhq.pt --seeds=0-15 --domain=dog --trunc=0.7 --grid --outdir=out
    python generate.py --network=cg.pt --projected-latent=out/projected_latent.npz --swap-grid --outdir=out
"""
import os
import zipfile

import click
import numpy as np
import torch
import tqdm

import dnnlib
import legacy
from torch_utils import safe_pickle
from training import domain_swap
from training.generation import (UserError, domain_names_of, load_generator, make_grid, make_labels, parse_range, pick_device,
                                 resolve_domain, save_png, seed_to_z, to_uint8)

#----------------------------------------------------------------------------

@torch.no_grad()
def generate_images(G, seeds, c=None, truncation_psi=1.0, noise_mode='const', device='cpu', batch_size=8, progress=True):
    """Yield (seed, HWC uint8 image) for each seed; c: labels [1, c_dim] shared by all seeds (None = zeros).

    Noise for noise_mode='random' is drawn from a generator seeded with the seed, so outputs are reproducible.
    """
    G = G.to(device)
    c = make_labels(None, G.c_dim, 1, device) if c is None else c.to(device)
    bar = tqdm.tqdm(total=len(seeds), desc='Generating', unit='img', disable=not progress, leave=False)
    batch_size = 1 if noise_mode == 'random' else batch_size  # per-seed noise: same seed, same image
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start:start + batch_size]
        z = torch.cat([seed_to_z(s, G.z_dim) for s in chunk]).to(device)
        if noise_mode == 'random':
            torch.manual_seed(chunk[0])  # noise inside G is drawn from torch's global generator
        img = G(z, c.expand(len(chunk), -1), truncation_psi=truncation_psi, noise_mode=noise_mode)
        for seed, im in zip(chunk, to_uint8(img)):
            yield seed, im
        bar.update(len(chunk))
    bar.close()


#----------------------------------------------------------------------------

def run_cg_mode(G, data, mode, seeds, domain, truncation_psi, noise_mode, outdir, traverse_dim, steps):
    """The CG-GAN sampling modes: swap grid, style swap, latent traversal, list of active style dims."""
    names = domain_names_of(data) or [str(k) for k in range(G.c_dim)]
    if mode == '--list-active':
        active = domain_swap.list_active(G)
        if not hasattr(G.mapping, 'active_dims'):
            raise UserError('this generator has no domain flow mapping (it is a plain StyleGAN2-ADA network): no style dims to list.')
        print(f'active style dims: {len(active)} of {G.mapping.i_dim}')
        for dim, r in active:
            print(f'  dim {dim:4d}  r = {r:.4f}')
        return
    os.makedirs(outdir, exist_ok=True)
    kw = dict(truncation_psi=truncation_psi, noise_mode=noise_mode)
    if mode == '--swap-grid':
        if G.c_dim == 0:
            raise UserError('--swap-grid needs a conditional generator; this one has no domains.')
        grid = domain_swap.swap_grid(G, seeds, **kw)
        path = os.path.join(outdir, 'swap-grid.png')
        domain_swap.save_grid_png(grid, path, col_headers=names, row_headers=[f'seed{s}' for s in seeds])
    elif mode == '--swap-style':
        if len(seeds) != 2:
            raise UserError(f'--swap-style takes exactly two seeds (source style, destination content), got {len(seeds)}.')
        index = resolve_domain(domain, G.c_dim, names) or 0
        images = domain_swap.swap_style(G, seeds[0], seeds[1], index, **kw)
        path = os.path.join(outdir, f'swap-style-{seeds[0]}-into-{seeds[1]}-{names[index] if G.c_dim else "uncond"}.png')
        domain_swap.save_grid_png(images, path, col_headers=[f'style {seeds[0]}', f'content {seeds[1]}', 'swapped'])
    else:
        index = resolve_domain(domain, G.c_dim, names) or 0
        if traverse_dim >= G.z_dim:
            raise UserError(f'--traverse={traverse_dim} is outside the latent: use a dim in 0..{G.z_dim - 1} (see --list-active).')
        values = np.linspace(-3, 3, steps)
        rows = torch.stack([domain_swap.traverse(G, s, index, traverse_dim, values, **kw) for s in seeds])
        path = os.path.join(outdir, f'traverse-dim{traverse_dim}.png')
        domain_swap.save_grid_png(rows, path, col_headers=[f'{v:+.1f}' for v in values], row_headers=[f'seed{s}' for s in seeds])
    print(f'Wrote "{path}".')

MAX_PROJECTION_BYTES = 256 << 20  # projected_w.npz / projected_latent.npz files


def load_projection(path: str, keys: dict) -> dict:
    """Arrays of a projector .npz file (no pickles), each checked: keys = {name: shape after the first dim}."""
    if not os.path.isfile(path):
        raise UserError(f'projection file "{path}" does not exist; pass the .npz that projector.py wrote.')
    if os.path.getsize(path) > MAX_PROJECTION_BYTES:
        raise UserError(f'"{path}" is larger than any projection file ({MAX_PROJECTION_BYTES >> 20} MB); pass the .npz that projector.py wrote.')
    try:
        with zipfile.ZipFile(path) as z:  # members may be compressed: bound what they unpack to
            if sum(info.file_size for info in z.infolist()) > MAX_PROJECTION_BYTES:
                raise UserError(f'"{path}" unpacks to more than any projection file ({MAX_PROJECTION_BYTES >> 20} MB); pass the .npz that projector.py wrote.')
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in keys if k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f'"{path}" is not a projection file ({type(e).__name__}); pass the .npz that projector.py wrote.') from None
    for key, shape in keys.items():
        a = arrays.get(key)
        if a is None or a.dtype.kind != 'f' or a.ndim != len(shape) + 1 or len(a) < 1:
            raise UserError(f'"{path}" has no float array "{key}" of shape [N, {", ".join(map(str, shape))}]; pass the .npz that projector.py wrote.')
        if tuple(a.shape[1:]) != tuple(shape):
            raise UserError(f'"{path}" holds {key} of shape {list(a.shape[1:])} per image but this network needs {list(shape)}: it was projected with another network.')
        if not np.isfinite(a).all():
            raise UserError(f'"{path}" holds non-finite values in "{key}"; project the image again.')
    if len({len(a) for a in arrays.values()}) > 1:
        raise UserError(f'"{path}" holds arrays of different lengths; pass the .npz that projector.py wrote.')
    return {k: torch.from_numpy(a.astype(np.float32)) for k, a in arrays.items()}


@torch.no_grad()
def run_projected(G, data, projected_w, projected_latent, swap_grid, domain, truncation_psi, noise_mode, outdir):
    """Render a projection: W (proj00.png, ...), or latent eps in its own or the given domain, or a swap grid."""
    os.makedirs(outdir, exist_ok=True)
    dev = next(G.parameters()).device
    if projected_w is not None:
        ws = load_projection(projected_w, {'w': (G.num_ws, G.w_dim)})['w'].to(dev)
        for idx, w in enumerate(ws):
            save_png(os.path.join(outdir, f'proj{idx:02d}.png'), to_uint8(G.synthesis(w[None], noise_mode=noise_mode))[0])
        print(f'Wrote {len(ws)} images to "{outdir}".')
        return
    arrays = load_projection(projected_latent, {'eps': (G.z_dim,), 'c': (G.c_dim,)})
    eps, c = arrays['eps'].to(dev), arrays['c'].to(dev)
    names = domain_names_of(data) or [str(k) for k in range(G.c_dim)]
    if swap_grid:
        if G.c_dim == 0:
            raise UserError('--swap-grid needs a conditional generator; this one has no domains.')
        grid = domain_swap.swap_grid_latents(G, list(eps[:, None]), truncation_psi=truncation_psi, noise_mode=noise_mode)
        path = os.path.join(outdir, 'swap-grid.png')
        domain_swap.save_grid_png(grid, path, col_headers=names, row_headers=[f'proj{i:02d}' for i in range(len(eps))])
        print(f'Wrote "{path}".')
        return
    if domain is not None:
        c = make_labels(resolve_domain(domain, G.c_dim, names), G.c_dim, len(eps), dev)
    for idx, im in enumerate(to_uint8(G(eps, c, truncation_psi=truncation_psi, noise_mode=noise_mode))):
        save_png(os.path.join(outdir, f'proj{idx:02d}.png'), im)
    print(f'Wrote {len(eps)} images to "{outdir}".')

#----------------------------------------------------------------------------

def _seeds_option(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_range(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option('--network', 'network',       help='Network snapshot: path or URL (.pkl or .pt)', metavar='PATH', required=True)
@click.option('--seeds',                     help='Random seeds, e.g. 0-7,12', metavar='LIST', callback=_seeds_option)
@click.option('--trunc', 'truncation_psi',   help='Truncation psi [default: 1, 0.7 for CG-GAN grids]', type=float)
@click.option('--domain', '--class', 'domain', help='Domain (class) label: index or name', metavar='INT|NAME')
@click.option('--noise-mode',                help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir',                    help='Where to save the output images', metavar='DIR')
@click.option('--grid',                      help='Also write all images as one grid.png', is_flag=True)
@click.option('--batch',                     help='Images per forward pass', type=click.IntRange(min=1), default=8, show_default=True)
@click.option('--device',                    help='Device: auto, cpu, cuda, cuda:N', default='auto', show_default=True)
@click.option('--swap-grid',                 help='CG-GAN: one grid, rows = seeds, columns = domains (same eps)', is_flag=True)
@click.option('--swap-style',                help='CG-GAN: style dims of the 1st seed into the 2nd (src, dst, swapped)', is_flag=True)
@click.option('--traverse', 'traverse_dim',  help='CG-GAN: vary latent dim DIM from -3 to 3 for each seed', type=click.IntRange(min=0), metavar='DIM')
@click.option('--steps',                     help='Number of values for --traverse', type=click.IntRange(min=2), default=7, show_default=True)
@click.option('--list-active',               help='CG-GAN: print the active style dims with their importance r, then exit', is_flag=True)
@click.option('--projected-w',               help='Render the W of projector.py (projected_w.npz) instead of seeds', metavar='FILE')
@click.option('--projected-latent',          help='Render the eps of projector.py (projected_latent.npz); with --swap-grid in every domain', metavar='FILE')
@click.option('--fast',                      help='GPU: fused Triton ops + channels-last (self-checked against the reference ops)', type=click.Choice(['off', 'fused']), default='off', show_default=True)
def main(network, seeds, truncation_psi, domain, noise_mode, outdir, grid, batch, device,
         swap_grid, swap_style, traverse_dim, steps, list_active, projected_w, projected_latent, fast):
    """Generate images using a pretrained network snapshot.

    \b
    Examples:
    python generate.py --outdir=out --seeds=0-7 --network=network-snapshot-000400.pt
    python generate.py --outdir=out --seeds=0-35 --domain=1 --trunc=0.7 --grid --network=afhq.pkl
    """
    dnnlib.util.check_finite_options()
    try:
        modes = [name for name, on in [('--swap-grid', swap_grid), ('--swap-style', swap_style),
                 ('--traverse', traverse_dim is not None), ('--list-active', list_active)] if on]
        if len(modes) > 1:
            raise UserError(f'{" and ".join(modes)} cannot be combined; pick one per call.')
        if domain is not None and (swap_grid or list_active):
            raise UserError(f'{"--swap-grid renders every domain" if swap_grid else "--list-active lists the style dims of all domains"}; '
                            f'leave --domain={str(domain)[:40]} out.')
        projected = projected_w or projected_latent
        if projected_w and projected_latent:
            raise UserError('--projected-w and --projected-latent cannot be combined; pick one per call.')
        if projected and (seeds is not None or [m for m in modes if m != '--swap-grid'] or (projected_w and swap_grid)):
            raise UserError('a projection replaces --seeds; only --projected-latent combines with --swap-grid.')
        if projected and outdir is None:
            raise UserError('--outdir is required.')
        if not list_active and not projected and (seeds is None or outdir is None):
            raise UserError('--seeds and --outdir are required (except with --list-active or a projection).')
        dev = pick_device(device)
        if outdir is not None and os.path.exists(outdir) and not os.path.isdir(outdir):
            raise UserError(f'--outdir "{outdir}" is a file, not a folder; give a folder for the images.')
        if outdir is not None:
            dnnlib.util.remove_stale_temp_files(outdir)  # images a killed call left half-written
        print(f'Loading networks from "{network}"...')
        G, data = load_generator(network, dev)
        if fast == 'fused':  # the kernels run on CUDA tensors (on the CPU only under TRITON_INTERPRET=1)
            from torch_utils.ops import fused
            from training.fast_path import set_channels_last
            fused.set_enabled(True)
            set_channels_last(G, True)
        if projected:  # fitted at psi = 1
            run_projected(G, data, projected_w, projected_latent, swap_grid, domain, 1.0 if truncation_psi is None else truncation_psi, noise_mode, outdir)
            return
        if modes:
            truncation_psi = 0.7 if truncation_psi is None else truncation_psi
            run_cg_mode(G, data, modes[0], seeds, domain, truncation_psi, noise_mode, outdir, traverse_dim, steps)
            return
        truncation_psi = 1.0 if truncation_psi is None else truncation_psi
        index = resolve_domain(domain, G.c_dim, domain_names_of(data))
        c = make_labels(index, G.c_dim, 1, dev)
        os.makedirs(outdir, exist_ok=True)
        images = []
        for seed, im in generate_images(G, seeds, c, truncation_psi, noise_mode, dev, batch_size=batch):
            save_png(os.path.join(outdir, f'seed{seed:04d}.png'), im)
            if grid:
                images.append(im)
        if grid:
            save_png(os.path.join(outdir, 'grid.png'), make_grid(images))
        print(f'Wrote {len(seeds)} images to "{outdir}".')
    except (UserError, legacy.LegacyError, safe_pickle.UnsafePickleError, OSError) as e:
        raise click.ClickException(str(e)) from None

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
