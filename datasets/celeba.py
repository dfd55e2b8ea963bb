"""CelebA source: domains from binary attributes of list_attr_celeba.txt, face-centred crop.

Expected tree (the official "Align&Cropped" release): SOURCE/img_align_celeba/*.jpg,
SOURCE/list_attr_celeba.txt and, for --split, SOURCE/list_eval_partition.txt.
--domains=Male gives 2 domains (not_Male, Male); --domains=Male,Smiling the 4 combinations, the first
attribute being the most significant bit of the label. All 40 attributes are stored as 0/1 factors.
"""
import os

from .errors import DatasetError
from .folders import subsample
from .images import open_image
from .source import Item, Source

ATTR_FILE = 'list_attr_celeba.txt'
PARTITION_FILE = 'list_eval_partition.txt'
IMAGE_DIR = 'img_align_celeba'
SPLITS = {'train': 0, 'val': 1, 'test': 2}
MAX_DOMAIN_ATTRS = 10  # 2^10 = 1024 domains, the most a network is built with (torch_utils/allowlist.py)

#----------------------------------------------------------------------------

def is_celeba_tree(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, ATTR_FILE))

#----------------------------------------------------------------------------

def read_attributes(path: str):
    """Parse list_attr_celeba.txt: returns (attribute names, file names, rows of 0/1 ints)."""
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    def bad(lineno, what):
        return DatasetError(f'Malformed attribute file "{path}", line {lineno}: {what}; '
                            'use the official list_attr_celeba.txt.')
    if not lines or not lines[0].strip().isdigit():
        raise bad(1, 'expected the number of images')
    count = int(lines[0].strip())
    if len(lines) < 2 or not lines[1].split():
        raise bad(2, 'expected the attribute names')
    names = lines[1].split()
    files, rows, first_line = [], [], {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise bad(lineno, f'expected a file name and {len(names)} values, found {len(parts)} fields')
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            raise bad(lineno, 'attribute values must be 1 or -1') from None
        if any(v not in (-1, 0, 1) for v in values):
            raise bad(lineno, 'attribute values must be 1 or -1')
        if parts[0] in first_line:
            raise bad(lineno, f'image {parts[0]} is listed a second time (first on line {first_line[parts[0]]})')
        first_line[parts[0]] = lineno
        files.append(parts[0])
        rows.append([int(v > 0) for v in values])
    if len(files) != count:
        raise bad(1, f'the header announces {count} images but {len(files)} are listed')
    return names, files, rows

#----------------------------------------------------------------------------

def read_partition(path: str) -> dict:
    """Parse list_eval_partition.txt: file name -> 0 (train), 1 (val) or 2 (test)."""
    out = {}
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
                raise DatasetError(f'Malformed partition file "{path}", line {lineno}: expected "<file> 0|1|2"; '
                                   'use the official list_eval_partition.txt.')
            out[parts[0]] = int(parts[1])
    return out

#----------------------------------------------------------------------------

def face_crop(img):
    """Face-centred square crop of an aligned CelebA image: 128 px around (89, 121) of 178x218, scaled to the image."""
    w, h = img.size
    cx, cy, half = w / 2, h * 121 / 218, w * 64 / 178
    box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
    return img.crop(box)

#----------------------------------------------------------------------------

def domain_names(attrs: list) -> list:
    """Names of the 2^k attribute combinations, label = sum_i bit_i * 2^(k-1-i)."""
    k = len(attrs)
    return ['+'.join(a if (label >> (k - 1 - i)) & 1 else f'not_{a}' for i, a in enumerate(attrs)) for label in range(2 ** k)]

#----------------------------------------------------------------------------

def open_celeba(source: str, domains=None, split: str = 'all', max_images=None, seed: int = 0) -> Source:
    """A Source for a CelebA tree; `domains` is a list of attribute names (None: unlabelled)."""
    if domains and len(domains) > MAX_DOMAIN_ATTRS:
        raise DatasetError(f'--domains lists {len(domains)} attributes, which would make 2^{len(domains)} domains; '
                           f'give at most {MAX_DOMAIN_ATTRS}.')
    names, files, rows = read_attributes(os.path.join(source, ATTR_FILE))
    attrs = []
    for d in domains or []:
        match = [n for n in names if n.lower() == d.lower()]
        if not match:
            raise DatasetError(f'Unknown CelebA attribute "{d}"; valid attributes are: {", ".join(names)}.')
        attrs.append(match[0])
    if len(set(attrs)) != len(attrs):
        raise DatasetError(f'--domains lists an attribute twice ({",".join(attrs)}); give each attribute once.')
    columns = [names.index(a) for a in attrs]
    keep = list(range(len(files)))
    if split != 'all':
        part_path = os.path.join(source, PARTITION_FILE)
        if not os.path.isfile(part_path):
            raise DatasetError(f'--split={split} needs "{part_path}"; add the official partition file or use --split=all.')
        part = read_partition(part_path)
        keep = [i for i in keep if part.get(files[i]) == SPLITS[split]]
        if not keep:
            raise DatasetError(f'No image of "{part_path}" is in the {split} split; check the partition file.')
    keep = [keep[i] for i in subsample(len(keep), max_images, seed)]
    image_dir = os.path.join(source, IMAGE_DIR)
    if not os.path.isdir(image_dir):
        raise DatasetError(f'CelebA images folder "{image_dir}" is missing; unpack img_align_celeba.zip there.')
    present = set(os.listdir(image_dir))
    tree = os.path.realpath(source)
    for i in keep:
        if files[i] not in present:
            raise DatasetError(f'Image "{files[i]}" listed in {ATTR_FILE} is missing from "{image_dir}"; '
                               'restore it or remove its line.')
        path = os.path.join(image_dir, files[i])
        if os.path.islink(path) or os.path.islink(image_dir):
            target = os.path.realpath(path)
            if not target.startswith(tree + os.sep):
                raise DatasetError(f'"{path}" is a link to "{target}", outside the source tree; copy the file into --source instead.')

    def items():
        for i in keep:
            rel = os.path.join(IMAGE_DIR, files[i])
            label = sum(rows[i][c] << (len(columns) - 1 - j) for j, c in enumerate(columns)) if columns else None
            path = os.path.join(source, rel)
            yield Item(name=rel, load=lambda path=path, rel=rel: open_image(path, rel), label=label, factors=rows[i])
    return Source(items=items, num_items=len(keep), channels=3, domains=domain_names(attrs) if attrs else None,
                  factor_names=names, crop=face_crop)

#----------------------------------------------------------------------------
