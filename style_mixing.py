"""Style-mixing grids (NVIDIA's style_mixing.py): the ws of each column seed replace the row seed's ws at the
layers --styles; row 0 and column 0 hold the unmixed images. Conditional networks (i-StyleGAN, CG-GAN,
conditional StyleGAN2-ADA) get a domain axis: one grid per domain in --domain, the same seeds in each.

    python style_mixing.py --network=ffhq.pkl --rows=85,100,75,458,1500 --cols=55,821,1789,293 --outdir=out
    python style_mixing.py --network=cg.pt --rows=0-3 --cols=4-7 --styles=0-3 --domain=all --trunc=0.7 --outdir=out
"""
import os
import re

import click
import numpy as np
import torch

import dnnlib
import legacy
from torch_utils import safe_pickle
from training import generation
from training.generation import UserError

#----------------------------------------------------------------------------

@torch.no_grad()
def mix_styles(G, row_seeds, col_seeds, styles, c, truncation_psi=1.0, noise_mode='const'):
    """{(row_seed, col_seed): [1, C, H, W] image} for every pair, and (seed, seed) for each unmixed seed, in domain c."""
    seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    device = c.device
    z = torch.cat([generation.seed_to_z(s, G.z_dim) for s in seeds]).to(device)
    ws = G.mapping(z, c.expand(len(seeds), -1), truncation_psi=truncation_psi)
    w_of = dict(zip(seeds, ws))
    images = {}
    for seed in seeds:
        images[(seed, seed)] = G.synthesis(w_of[seed][None], noise_mode=noise_mode)
    for row in row_seeds:
        for col in col_seeds:
            w = w_of[row].clone()
            w[styles] = w_of[col][styles]
            images[(row, col)] = G.synthesis(w[None], noise_mode=noise_mode)
    return images


def grid_image(images, row_seeds, col_seeds):
    """HWC uint8: a blank corner, the column seeds across the top, the row seeds down the left, the mixes inside."""
    tiles = {key: generation.to_uint8(img)[0] for key, img in images.items()}
    h, w, ch = next(iter(tiles.values())).shape
    canvas = np.zeros([(len(row_seeds) + 1) * h, (len(col_seeds) + 1) * w, ch], dtype=np.uint8)
    for j, col in enumerate(col_seeds):
        canvas[:h, (j + 1) * w:(j + 2) * w] = tiles[(col, col)]
    for i, row in enumerate(row_seeds):
        canvas[(i + 1) * h:(i + 2) * h, :w] = tiles[(row, row)]
        for j, col in enumerate(col_seeds):
            canvas[(i + 1) * h:(i + 2) * h, (j + 1) * w:(j + 2) * w] = tiles[(row, col)]
    return canvas


def pick_domains(domain, c_dim, names):
    """--domain for a conditional network: 'all' (default) or a comma-separated list of indices / names."""
    if c_dim == 0:
        generation.resolve_domain(domain, 0, names)             # a --domain for an unconditional network is one sentence
        return [None]
    if domain is None or str(domain).strip() == 'all':
        return list(range(c_dim))
    return list(dict.fromkeys(generation.resolve_domain(part, c_dim, names) for part in str(domain).split(',')))

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network',       help='Network snapshot: path or URL (.pkl or .pt)', metavar='PATH', required=True)
@click.option('--rows', 'row_seeds',         help='Random seeds of the rows, e.g. 85,100,75', metavar='LIST', required=True)
@click.option('--cols', 'col_seeds',         help='Random seeds of the columns, e.g. 55,821,1789', metavar='LIST', required=True)
@click.option('--styles', 'col_styles',      help='Layers (ws) the columns give [default: 0-6, those the network has]', metavar='LIST')
@click.option('--trunc', 'truncation_psi',   help='Truncation psi', type=float, default=1, show_default=True)
@click.option('--noise-mode',                help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--domain', '--class', 'domain', help='Conditional networks: domains (indices or names, comma-separated) or all [default: all]', metavar='LIST|all')
@click.option('--device',                    help='Device: auto, cpu, cuda, cuda:N', default='auto', show_default=True)
@click.option('--outdir',                    help='Where to save the output images', metavar='DIR', required=True)
def main(network, row_seeds, col_seeds, col_styles, truncation_psi, noise_mode, domain, device, outdir):
    """Generate a style-mixing grid: rows take the layers --styles from the columns.

    Writes ROW-COL.png for every pair and grid.png; for a conditional network one set per domain,
    named after the domain (NAME-ROW-COL.png, grid-NAME.png).
    """
    dnnlib.util.check_finite_options()
    try:
        try:
            rows, cols, styles = (generation.parse_range(v) for v in (row_seeds, col_seeds, col_styles or '0-6'))
        except ValueError as e:
            raise UserError(f'{e}.') from None
        if os.path.exists(outdir) and not os.path.isdir(outdir):
            raise UserError(f'--outdir "{outdir}" is a file, not a folder; give a folder for the images.')
        dev = generation.pick_device(device)
        print(f'Loading networks from "{network}"...')
        G, data = generation.load_generator(network, dev)
        if col_styles is None:                                  # NVIDIA's default 0-6, within a small network's layers
            styles = [s for s in styles if s < G.num_ws]
            col_styles = f'0-{max(styles)}'
        if max(styles) >= G.num_ws:
            raise UserError(f'--styles={col_styles} names layer {max(styles)}, but the network has layers 0..{G.num_ws - 1}; pick styles in that range.')
        names = generation.domain_names_of(data) or [str(k) for k in range(G.c_dim)]
        domains = pick_domains(domain, G.c_dim, names)
        os.makedirs(outdir, exist_ok=True)
        dnnlib.util.remove_stale_temp_files(outdir)
        for index in domains:
            c = generation.make_labels(index, G.c_dim, 1, dev)
            images = mix_styles(G, rows, cols, styles, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
            tag = None if index is None else re.sub(r'[^A-Za-z0-9._+=-]', '-', names[index])   # a file name, whatever the name holds
            prefix = '' if tag is None else f'{tag}-'
            for (row, col), img in images.items():
                generation.save_png(os.path.join(outdir, f'{prefix}{row}-{col}.png'), generation.to_uint8(img)[0])
            grid = 'grid.png' if tag is None else f'grid-{tag}.png'
            generation.save_png(os.path.join(outdir, grid), grid_image(images, rows, cols))
            print(f'Wrote {os.path.join(outdir, grid)} ({len(rows)} rows x {len(cols)} columns, styles {col_styles}).')
    except (UserError, legacy.LegacyError, safe_pickle.UnsafePickleError, OSError) as e:
        raise click.ClickException(str(e)) from None

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
