"""Folder-per-domain source: each visible sub-folder of --source is a domain, labels follow sorted names.

This is i-StyleGAN's rule (AFHQ cat/dog/wild -> 0/1/2). Images are found recursively inside each domain
folder (nested folders belong to their domain); hidden files and folders and non-image files are
skipped. A folder holding images and no sub-folders gives an unlabelled set, as NVIDIA's tool does, and
so does a folder whose sub-folders all have numeric names (NVIDIA-style shards 00000/, 01000/, ... as in
FFHQ). `labels` overrides the guess: 'folders' (sub-folders are domains), 'none' (unlabelled).
Symbolic links are followed only when they stay inside --source, each real folder and file once (no
loops, no duplicates); a link that leads out of the source tree is refused.
"""
import os

import numpy as np
from tqdm import tqdm

from .errors import DatasetError
from .images import IMAGE_EXTENSIONS, is_image_name, open_image, is_gray_mode
from .source import Item, Source

#----------------------------------------------------------------------------

def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip(os.sep) + os.sep)


def list_images(root: str, tree: str = None, elsewhere=()) -> list:
    """Relative paths of the visible image files under root, recursively, sorted. Links are followed
    only inside `tree` (default: root) and every real folder and file is listed once; files that really
    live under one of the folders `elsewhere` (the other domains) are left to that folder's listing."""
    tree = os.path.realpath(tree or root)
    elsewhere = [os.path.realpath(e) for e in elsewhere]
    found, seen_dirs, seen_files = [], set(), set()
    stack = [(os.path.realpath(root), '')]
    while stack:
        real, rel = stack.pop()
        if not _inside(real, tree):
            raise DatasetError(f'"{os.path.join(root, rel)}" is a link to "{real}", outside the source tree; '
                               'copy those files into --source instead of linking them.')
        if real in seen_dirs:
            continue  # a link loop or a second link to the same folder
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(real), key=lambda e: e.name)
        except OSError as e:
            raise DatasetError(f'Cannot list "{os.path.join(root, rel)}" ({e.strerror}); check its permissions.') from None
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            path_rel = os.path.join(rel, entry.name) if rel else entry.name
            if entry.is_dir():  # follows links; the target is checked when it is visited
                stack.append((os.path.realpath(entry.path), path_rel))
            elif entry.is_file() and is_image_name(entry.name):
                target = os.path.realpath(entry.path)
                if not _inside(target, tree):
                    raise DatasetError(f'"{os.path.join(root, path_rel)}" is a link to "{target}", outside the source tree; '
                                       'copy the file into --source instead of linking it.')
                if target not in seen_files and not any(_inside(target, e) for e in elsewhere):
                    seen_files.add(target)
                    found.append(os.path.normpath(path_rel))
    return sorted(found, key=lambda p: p.split(os.sep))

#----------------------------------------------------------------------------

def subsample(n: int, max_images, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of size max_images, in increasing order (all when no cap)."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, size=max_images, replace=False))

#----------------------------------------------------------------------------

def scan_headers(root: str, relpaths: list):
    """Open every image's header: returns (channels, {(w, h): first name}); unreadable files are named."""
    sizes, gray = {}, True
    for rel in tqdm(relpaths, desc='Checking images', unit='img', disable=len(relpaths) < 2000, leave=False):
        img = open_image(os.path.join(root, rel), rel, header_only=True)
        sizes.setdefault(img.size, rel)
        gray = gray and is_gray_mode(img.mode)
        img.close()
    return (1 if gray else 3), sizes

#----------------------------------------------------------------------------

LABEL_RULES = ('auto', 'folders', 'none')


def are_shards(subdirs: list) -> bool:
    """Whether sub-folder names look like NVIDIA's numeric shards (00000, 01000, ...), not domains."""
    return bool(subdirs) and all(d.isdigit() for d in subdirs)


def open_folder_tree(source: str, max_images=None, seed: int = 0, labels: str = 'auto') -> Source:
    """A Source for a folder of domain sub-folders (or of images or numeric shards only: unlabelled)."""
    if labels not in LABEL_RULES:
        raise DatasetError(f'--labels={labels} is unknown; use {", ".join(LABEL_RULES)}.')
    if not os.path.isdir(source):
        raise DatasetError(f'--source "{source}" is not a folder.')
    entries = sorted(os.listdir(source))
    subdirs = [e for e in entries if not e.startswith('.') and os.path.isdir(os.path.join(source, e))]
    top_images = [e for e in entries if os.path.isfile(os.path.join(source, e)) and is_image_name(e)]
    if labels == 'folders' and not subdirs:
        raise DatasetError(f'--labels=folders needs domain sub-folders, but "{source}" has none; drop --labels or add sub-folders.')
    by_folder = bool(subdirs) and (labels == 'folders' or (labels == 'auto' and not are_shards(subdirs)))
    if by_folder and top_images:
        raise DatasetError(f'--source "{source}" holds images ("{top_images[0]}", ...) next to domain sub-folders; '
                           'move every image into the sub-folder of its domain, or pass --labels=none.')
    if by_folder:
        files, item_labels = [], []
        for label, d in enumerate(subdirs):
            others = [os.path.join(source, e) for e in subdirs if e != d]   # a link into another domain: that domain's file
            imgs = list_images(os.path.join(source, d), tree=source, elsewhere=others)
            if not imgs:
                raise DatasetError(f'Domain folder "{os.path.join(source, d)}" contains no images; '
                                   'add images to it or remove it.')
            files += [os.path.join(d, f) for f in imgs]
            item_labels += [label] * len(imgs)
        domains = subdirs
    else:
        files = list_images(source)
        if not files:
            raise DatasetError(f'--source "{source}" contains no image files ({", ".join(sorted(IMAGE_EXTENSIONS))}).')
        item_labels, domains = [None] * len(files), None
    keep = subsample(len(files), max_images, seed)
    files = [files[i] for i in keep]
    item_labels = [item_labels[i] for i in keep]
    channels, sizes = scan_headers(source, files)

    def items():
        for rel, label in zip(files, item_labels):
            path = os.path.join(source, rel)
            yield Item(name=rel, load=lambda path=path, rel=rel: open_image(path, rel), label=label)
    return Source(items=items, num_items=len(files), channels=channels, domains=domains, sizes=sizes)

#----------------------------------------------------------------------------
