"""Project a real image into a network (NVIDIA's projector, plus CG-GAN's latent space and domain swaps).

Examples:
    python projector.py --network=cg.pt --target=me.png --domain=0 --swap --outdir=out
    python projector.py --network=ffhq.pkl --target=face.png --space=w --outdir=out
"""
import json
import os

import click
import numpy as np
import PIL.Image
import torch

import dnnlib
import legacy
from metrics import weights
from torch_utils import safe_pickle
from training import domain_swap, generation, projection

UserError = generation.UserError
MAX_TARGET_PIXELS = 8192 * 8192
MAX_VIDEO_FRAMES = 200

#----------------------------------------------------------------------------

def load_target(path, resolution, channels):
    """The image as float [1, C, H, W] in [-1, 1] at the network's size (centre crop + resize, said in a line)."""
    try:
        image = PIL.Image.open(path)
        w, h = image.size
        if w * h > MAX_TARGET_PIXELS:
            raise UserError(f'--target "{path}" is {w}x{h} pixels, more than this tool reads; crop or shrink it first.')
        image.load()
    except (OSError, PIL.Image.DecompressionBombError, SyntaxError, ValueError) as e:
        raise UserError(f'--target "{path}" is not a readable image ({type(e).__name__}); pass a PNG or JPEG file.') from None
    mode = 'L' if channels == 1 else 'RGB'
    if image.mode != mode:
        print(f'Target: {image.mode} image converted to {mode} ({channels} channel{"s" if channels > 1 else ""}, as the network makes).')
        image = image.convert(mode)
    if (w, h) != (resolution, resolution):
        s = min(w, h)
        image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
        print(f'Target: {w}x{h} image centre-cropped and resized to {resolution}x{resolution}, the network\'s size.')
    arr = np.asarray(image, dtype=np.uint8).reshape(resolution, resolution, channels)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].to(torch.float32) / 127.5 - 1, arr


def save_npz(path, **arrays):
    with dnnlib.util.atomic_write(path) as f:
        np.savez(f, **arrays)


def save_gif(path, frames, target):
    step = max(1, -(-len(frames) // MAX_VIDEO_FRAMES))
    pics = [PIL.Image.fromarray(np.concatenate([target, f], axis=1).squeeze()) for f in frames[::step]]
    with dnnlib.util.atomic_write(path) as f:
        pics[0].save(f, format='GIF', save_all=True, append_images=pics[1:], duration=40, loop=0)

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network',     help='Network snapshot: path or URL (.pkl or .pt)', metavar='PATH', required=True)
@click.option('--target', 'target_fname', help='Target image file to project to', metavar='FILE', required=True)
@click.option('--num-steps',              help='Number of optimization steps', type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.option('--seed',                   help='Random seed (noise buffers, latent draws)', type=click.IntRange(0, 2**32 - 1), default=303, show_default=True)
@click.option('--save-video',             help='Save an animated GIF of the optimization (target | projection)', type=bool, default=True, show_default=True)
@click.option('--outdir',                 help='Where to save the output images', metavar='DIR', required=True)
@click.option('--domain', '--class', 'domain', help='Domain of the target image: index or name (conditional networks)', metavar='INT|NAME')
@click.option('--space',                  help='Optimize W or the latent eps [default: latent for flow models, else w]', type=click.Choice(['w', 'latent']))
@click.option('--swap',                   help='Also render the projection in every domain as swap.png', is_flag=True)
@click.option('--loss',                   help='Distance: lpips (VGG16 weights), pixel (offline), auto', type=click.Choice(['auto', 'lpips', 'pixel']), default='auto', show_default=True)
@click.option('--vgg16',                  help='Path of NVIDIA\'s vgg16.pt (else cache / download)', metavar='PATH')
@click.option('--device',                 help='Device: auto, cpu, cuda, cuda:N', default='auto', show_default=True)
def main(network, target_fname, num_steps, seed, save_video, outdir, domain, space, swap, loss, vgg16, device):
    """Project given image to the latent space of pretrained network snapshot.

    \b
    Examples:
    python projector.py --outdir=out --target=me.png --domain=0 --swap --network=cg.pt
    python projector.py --outdir=out --target=face.png --space=w --network=ffhq.pkl
    """
    dnnlib.util.check_finite_options()
    try:
        if os.path.exists(outdir) and not os.path.isdir(outdir):
            raise UserError(f'--outdir "{outdir}" is a file, not a folder; give a folder for the results.')
        dev = generation.pick_device(device)
        print(f'Loading networks from "{network}"...')
        G, data = generation.load_generator(network, dev)
        names = generation.domain_names_of(data) or [str(k) for k in range(G.c_dim)]
        if G.c_dim == 0 and domain is not None:
            raise UserError(f'--domain={domain} was given but the network is unconditional; leave --domain out.')
        if G.c_dim == 0 and swap:
            raise UserError('--swap needs a conditional network; this one has no domains.')
        index = generation.resolve_domain(domain, G.c_dim, names)
        c = generation.make_labels(index, G.c_dim, 1, dev)
        space = space or projection.default_space(G)
        target, target_arr = load_target(target_fname, G.img_resolution, G.img_channels)
        target = target.to(dev)
        distance = projection.make_distance(target, loss, vgg16, allow_download=True, device=dev)
        why = f' (--loss=auto: {distance.reason.rstrip(".")}; pass --loss=lpips --vgg16=PATH for LPIPS)' if getattr(distance, 'reason', None) else ''
        print(f'Distance: {distance.name}{why}; space: {space}.')
        frames = [] if save_video else None
        w_stats = projection.domain_w_stats(G, dev) if space == 'w' else None
        res = projection.project(G, target, c, space=space, num_steps=num_steps, distance=distance, seed=seed, frames=frames,
                                 w_stats=w_stats and w_stats[index or 0])
        os.makedirs(outdir, exist_ok=True)
        dnnlib.util.remove_stale_temp_files(outdir)
        generation.save_png(os.path.join(outdir, 'target.png'), target_arr)
        generation.save_png(os.path.join(outdir, 'proj.png'), generation.to_uint8(res['image'])[0])
        save_npz(os.path.join(outdir, 'projected_w.npz'), w=res['w'].cpu().numpy())
        if space == 'latent':
            save_npz(os.path.join(outdir, 'projected_latent.npz'), eps=res['eps'].cpu().numpy(), c=c.cpu().numpy())
        if save_video:
            save_gif(os.path.join(outdir, 'proj.gif'), frames, target_arr)
        if swap:
            imgs = projection.render_domains(G, res, range(G.c_dim), c_src=c, noise=res['noise'], w_stats=w_stats)
            domain_swap.save_grid_png(domain_swap.to_uint8(imgs)[None], os.path.join(outdir, 'swap.png'),
                                      col_headers=names, row_headers=[f'proj ({space})'])
        summary = dict(network=str(network)[:500], target=str(target_fname)[:500], space=space, distance=distance.name,
                       domain=index, num_steps=num_steps, seed=seed, final_distance=res['loss'][-1])
        with dnnlib.util.atomic_write(os.path.join(outdir, 'projection.json'), 'w') as f:
            json.dump(summary, f, indent=2)
        print(f'Wrote the projection to "{outdir}" (final distance {res["loss"][-1]:.4g}).')
    except UserError as e:
        raise click.ClickException(str(e)) from None
    except (legacy.LegacyError, safe_pickle.UnsafePickleError, weights.MetricUnavailableError, OSError) as e:
        raise click.ClickException(str(e)) from None

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
