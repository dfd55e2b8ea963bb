"""Build multi-domain training data sets in NVIDIA's format (PNGs + dataset.json, folder or uncompressed zip).

Sources: a folder of domain sub-folders, a CelebA tree (domains from attributes), MNIST-format IDX files
(optionally K-colour), CIFAR-10's python archive, a built-in procedural set (builtin:shapes, builtin:patches, builtin:patches-global), or an
existing NVIDIA-format data set.
See docs/datasets.md for examples and docs/dataset_tool-help.txt for the options.
"""
import concurrent.futures
import dataclasses
import os
import re

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

from datasets import builtin, celeba, cifar10, folders, mnist, nvidia
from datasets.errors import DatasetError
from datasets.images import RESIZE_FILTERS, center_crop, center_crop_wide, is_power_of_two, to_channels
from datasets.writer import DatasetWriter, check_dest, encode_png

#----------------------------------------------------------------------------

def parse_size(resolution, width, height, transform):
    """(output width, output height or None) from --resolution (N or WxH) / --width / --height."""
    w = h = None
    if resolution is not None:
        m = re.fullmatch(r'\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?', str(resolution))
        if not m:
            raise DatasetError(f'--resolution={resolution} is not a size; give a number like 256 or WxH like 512x384.')
        w = int(m.group(1))
        h = int(m.group(2)) if m.group(2) else w
    w = width if width is not None else w
    h = height if height is not None else (h if h is not None else w)
    if w is None:
        return None, None
    if w <= 0 or h <= 0:
        raise DatasetError(f'The output size {w}x{h} must be positive; pass e.g. --resolution=256.')
    if transform == 'center-crop-wide':
        if h > w:
            raise DatasetError(f'--transform=center-crop-wide needs --height ({h}) <= --width ({w}).')
    elif w != h:
        raise DatasetError(f'The output must be square, not {w}x{h}; give one --resolution, or use --transform=center-crop-wide.')
    if not is_power_of_two(w):
        raise DatasetError(f'Resolution {w} is not a power of two; use e.g. {_pow2_hint(w)}.')
    return w, h

#----------------------------------------------------------------------------

def _pow2_hint(n):
    lo = 1 << max(int(n).bit_length() - 1, 0)
    return f'{lo} or {lo * 2}' if lo >= 1 else '256'

#----------------------------------------------------------------------------

def open_source(source, *, max_images, seed, domains, split, colours, resolution, labels='auto'):
    """Pick the builder for --source and return its Source (options that do not apply are refused)."""
    idx_file = re.fullmatch(r'(train|t10k)-images[-.]idx3-ubyte(\.gz)?', os.path.basename(source))
    if idx_file and os.path.isfile(source):     # NVIDIA's spelling: the images file itself; its split, from its folder
        source, split = os.path.dirname(source) or '.', split or {'train': 'train', 't10k': 'test'}[idx_file.group(1)]
    kind = ('builtin' if source.startswith('builtin:') else
            None if not os.path.exists(source) else
            'celeba' if celeba.is_celeba_tree(source) else
            'mnist' if mnist.is_mnist_folder(source) else
            'nvidia' if nvidia.is_nvidia_dataset(source) else
            'cifar10' if os.path.isfile(source) and cifar10.is_cifar10_archive(source) else
            'folders' if os.path.isdir(source) else None)
    if kind is None:
        if not os.path.exists(source):
            raise DatasetError(f'--source "{source}" does not exist; give a folder, a .zip, cifar-10-python.tar.gz or builtin:NAME.')
        raise DatasetError(f'--source "{source}" is neither a folder nor a .zip; give a folder, a .zip, cifar-10-python.tar.gz or builtin:NAME.')
    if domains is not None and kind != 'celeba':
        raise DatasetError(f'--domains selects CelebA attributes, but "{source}" is not a CelebA tree (no {celeba.ATTR_FILE}); drop --domains.')
    if colours is not None and kind != 'mnist':
        raise DatasetError(f'--colours applies to MNIST-format IDX files only, which "{source}" does not hold; drop --colours.')
    if labels == 'folders' and kind != 'folders':
        raise DatasetError(f'--labels=folders applies to folders of images, which "{source}" is not ({kind}); drop --labels.')
    if split is not None and kind not in ('celeba', 'mnist'):
        raise DatasetError('--split applies to CelebA and MNIST-format sources only; drop --split.')
    if kind == 'builtin':
        n = 10000 if max_images is None else max_images
        return kind, builtin.open_builtin(source[len('builtin:'):], n, 32 if resolution is None else resolution, seed)
    if kind == 'celeba':
        attrs = [a.strip() for a in domains.split(',') if a.strip()] if domains else None
        if split is not None and split not in celeba.SPLITS and split != 'all':
            raise DatasetError(f'--split={split} is unknown; use train, val, test or all.')
        return kind, celeba.open_celeba(source, attrs, split or 'all', max_images, seed)
    if kind == 'mnist':
        return kind, mnist.open_mnist(source, split or 'all', colours, max_images, seed)
    if kind == 'nvidia':
        return kind, nvidia.open_nvidia(source, max_images, seed)
    if kind == 'cifar10':
        return kind, cifar10.open_cifar10(source, max_images, seed)
    return kind, folders.open_folder_tree(source, max_images, seed, labels=labels)

#----------------------------------------------------------------------------

def convert_dataset(source: str, dest: str, resolution=None, width=None, height=None, max_images=None,
                    resize_filter='lanczos', transform=None, domains=None, domain_names=None, split=None,
                    colours=None, seed=0, overwrite=False, workers=None, progress=True, labels='auto') -> dict:
    """Build the data set; raises DatasetError for bad input. Returns a summary dict."""
    out_w, out_h = parse_size(resolution, width, height, transform)
    if transform == 'center-crop-wide' and out_w is None:
        raise DatasetError('--transform=center-crop-wide needs --width and --height (or --resolution=WxH).')
    if max_images is not None and max_images < 1:
        raise DatasetError(f'--max-images={max_images} must be at least 1.')
    if resize_filter not in RESIZE_FILTERS:
        raise DatasetError(f'--resize-filter={resize_filter} is unknown; use box or lanczos.')
    check_dest(dest, overwrite, source)
    kind, src = open_source(source, max_images=max_images, seed=seed, domains=domains, split=split,
                            colours=colours, resolution=out_w, labels=labels)
    if labels == 'none':  # unconditional whatever the source says
        src = dataclasses.replace(src, domains=None, items=lambda items=src.items: (dataclasses.replace(i, label=None) for i in items()))
    if transform is not None and kind == 'builtin':
        raise DatasetError('--transform does not apply to built-in data sets (they render square images); drop it.')
    names = src.domains
    if domain_names is not None:
        names = [n.strip() for n in domain_names.split(',')]
        if src.domains is None or len(names) != len(src.domains):
            have = 'no domains' if src.domains is None else f'{len(src.domains)} domains ({", ".join(src.domains)})'
            raise DatasetError(f'--domain-names gives {len(names)} names but the source has {have}; give one name per domain.')

    # Sizes known before decoding: refuse non-square or mixed sizes now, before any long work.
    if src.sizes and transform is None and src.crop is None:
        for (w, h), name in src.sizes.items():
            if w != h:
                raise DatasetError(f'Image "{name}" is {w}x{h}, not square; pass --transform=center-crop (or crop the images).')
        if out_w is None and len(src.sizes) > 1:
            (a, na), (b, nb) = list(src.sizes.items())[:2]
            raise DatasetError(f'Images have mixed sizes ("{na}" is {a[0]}x{a[1]}, "{nb}" is {b[0]}x{b[1]}); '
                               'pass --resolution to resize them all, or --transform=center-crop.')
    if out_w is None and src.native_resolution is not None:
        out_w = out_h = src.native_resolution
    resample = RESIZE_FILTERS[resize_filter]
    state = {'size': (out_w, out_w) if out_w is not None else None}

    def process(item):
        img = item.load()
        if isinstance(img, np.ndarray):
            img = PIL.Image.fromarray(img)
        img = to_channels(img, src.channels)
        if transform == 'center-crop':
            img = center_crop(img)
        elif transform == 'center-crop-wide':
            img = center_crop_wide(img, out_w, out_h, resample)
        elif src.crop is not None:
            img = src.crop(img)
        if img.size[0] != img.size[1]:
            raise DatasetError(f'Image "{item.name}" is {img.size[0]}x{img.size[1]}, not square; pass --transform=center-crop.')
        if out_w is not None and img.size != (out_w, out_w):
            img = img.resize((out_w, out_w), resample)
        return encode_png(img), img.size

    def check_size(item, size):
        if state['size'] is None:
            if not is_power_of_two(size[0]):
                raise DatasetError(f'Images are {size[0]}x{size[1]} and the resolution must be a power of two; '
                                   f'pass --resolution={_pow2_hint(size[0])}.')
            state['size'] = size
        elif size != state['size']:
            raise DatasetError(f'Image "{item.name}" is {size[0]}x{size[1]} but earlier images are '
                               f'{state["size"][0]}x{state["size"][1]}; pass --resolution to resize them all.')

    workers = workers or min(8, os.cpu_count() or 1)
    with DatasetWriter(dest, overwrite, source) as writer, concurrent.futures.ThreadPoolExecutor(workers) as pool:
        it = src.items()
        bar = tqdm(total=src.num_items, desc='Writing', unit='img', disable=not progress)
        try:
            while True:
                batch = [item for _, item in zip(range(256), it)]
                if not batch:
                    break
                for item, (png, size) in zip(batch, pool.map(process, batch)): # in order: output is deterministic
                    check_size(item, size)
                    writer.add_image(png, item.label, item.factors)
                bar.update(len(batch))
        except BaseException:
            bar.leave = False # clear the bar so the error sentence stands alone
            raise
        finally:
            bar.close()
        if writer.num_images == 0:
            raise DatasetError(f'--source "{source}" gave no images; check the source and --split.')
        writer.commit(domains=names, factor_names=src.factor_names, extra=src.extra)
    return dict(kind=kind, dest=dest, num_images=writer.num_images, resolution=state['size'][0],
                channels=src.channels, domains=names, factor_names=src.factor_names)

#----------------------------------------------------------------------------

@click.command(context_settings={'max_content_width': 120, 'terminal_width': 120})
@click.option('--source',        help='Folder of domain sub-folders, CelebA tree, MNIST IDX folder or images file, cifar-10-python.tar.gz, NVIDIA zip/folder, or builtin:NAME', metavar='PATH', required=True)
@click.option('--dest',          help='Output folder or .zip', metavar='PATH', required=True)
@click.option('--resolution',    help='Output size: N (square) or WxH [default: source size]', metavar='N|WxH')
@click.option('--width',         help='Output width (NVIDIA option)', type=int)
@click.option('--height',        help='Output height (NVIDIA option)', type=int)
@click.option('--max-images',    help='Total number of images (a seeded random subset); builtin: the count [default: 10000]', type=int)
@click.option('--resize-filter', help='Filter used when resizing', type=click.Choice(['box', 'lanczos']), default='lanczos', show_default=True)
@click.option('--transform',     help='Crop before resizing [default: none, images must be square]', type=click.Choice(['center-crop', 'center-crop-wide']))
@click.option('--domains',       help='CelebA: attributes that define the domains, e.g. Male or Male,Smiling', metavar='ATTR[,ATTR]')
@click.option('--labels',        help='Domain labels: auto (sub-folders, unless all are numeric shards like 00000/), folders, none', type=click.Choice(folders.LABEL_RULES), default='auto', show_default=True)
@click.option('--domain-names',  help='Rename the domains, in label order, e.g. female,male', metavar='NAME[,NAME]')
@click.option('--split',         help='CelebA / MNIST split [default: all]', type=click.Choice(['train', 'val', 'test', 'all']))
@click.option('--colours',       help='MNIST family: K domains, each image drawn in one of K colours', metavar='K', type=click.IntRange(min=1))
@click.option('--seed',          help='Seed for subsets, colour assignment and built-in sets', type=int, default=0, show_default=True)
@click.option('--overwrite',     help='Replace an existing --dest (atomically)', is_flag=True)
@click.option('--workers',       help='Threads decoding and encoding images [default: min(8, CPUs)]', type=click.IntRange(min=1))
def main(**kwargs):
    """Build a multi-domain data set in NVIDIA's format (PNGs + dataset.json, folder or uncompressed zip).

    \b
    Examples:
    python dataset_tool.py --source=~/celeba --dest=celeba-male-128.zip --domains=Male --domain-names=female,male
    python dataset_tool.py --source=~/afhq/train --dest=afhq-256.zip --resolution=256
    python dataset_tool.py --source=/usr/share/datasets/fashion-mnist --dest=fmnist2.zip --colours=2
    python dataset_tool.py --source=builtin:shapes --dest=shapes-32.zip --resolution=32 --max-images=10000
    """
    try:
        s = convert_dataset(**kwargs)
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    doms = f'{len(s["domains"])} domains ({", ".join(s["domains"])})' if s['domains'] else 'no domain labels'
    click.echo(f'Wrote {s["num_images"]} images, {s["resolution"]}x{s["resolution"]}, {doms}, to {s["dest"]}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
