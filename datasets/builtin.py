"""Built-in procedural multi-domain image sets (`--source=builtin:NAME`), rendered with known factors.

`shapes`: one bold shape (circle, square or triangle) on a flat background. Content factors (shape,
x, y, scale, rotation) have the same distribution in every domain; style factors (hue of the shape,
grey level of the background) change their distribution with the domain:
    domain 0 "red-on-dark":   hue ~ 0.00 +- 0.05, background ~ U(0.05, 0.25)
    domain 1 "green-on-grey": hue ~ 0.33 +- 0.05, background ~ U(0.40, 0.60)
    domain 2 "blue-on-light": hue ~ 0.62 +- 0.05, background ~ U(0.75, 0.95)
`patches` and `patches-global` (datasets/patches.py): the sparse-mixing testbed, whose two style
factors each drive a small fixed region, and its control, where the same factors act on every pixel.
Everything is a deterministic function of (n, resolution, seed); the factors of image i do not depend
on the resolution, so the same seed renders the same scenes at every size.
"""
import numpy as np

from .colour import hsv_to_rgb
from .errors import DatasetError
from .images import is_power_of_two
from .patches import PATCHES_GLOBAL_SPEC, PATCHES_SPEC, region_masks, render_patches, render_patches_float, sample_patches
from .source import Item, Source

#----------------------------------------------------------------------------

SHAPES_SPEC = dict(
    domains      = ['red-on-dark', 'green-on-grey', 'blue-on-light'],
    shapes       = ['circle', 'square', 'triangle'],
    hue_centre   = [0.00, 0.33, 0.62],
    hue_spread   = 0.05,
    background   = [(0.05, 0.25), (0.40, 0.60), (0.75, 0.95)],
    position     = 0.25,            # x, y ~ U(-0.25, 0.25), in units of the half image width
    scale        = (0.45, 0.70),    # shape size, same units
    content      = ['shape', 'x', 'y', 'scale', 'rotation'],
    style        = ['hue', 'background'],
)
BUILTIN_SETS = {'shapes': SHAPES_SPEC, 'patches': PATCHES_SPEC, 'patches-global': PATCHES_GLOBAL_SPEC}

#----------------------------------------------------------------------------

def factor_names(name: str) -> list:
    spec = get_spec(name)
    return spec['content'] + spec['style']

#----------------------------------------------------------------------------

def get_spec(name: str) -> dict:
    if name not in BUILTIN_SETS:
        raise DatasetError(f'Unknown built-in data set "builtin:{name}"; available: '
                           f'{", ".join("builtin:" + k for k in sorted(BUILTIN_SETS))}.')
    return BUILTIN_SETS[name]

#----------------------------------------------------------------------------

def sample_factors(name: str, n: int, seed: int):
    """(labels int64 [n], {factor name: float64 [n]}) drawn from the per-domain distributions."""
    spec = get_spec(name)
    if name != 'shapes':
        return sample_patches(spec, n, seed)
    rnd = np.random.RandomState(seed)
    k = len(spec['domains'])
    labels = rnd.randint(k, size=n).astype(np.int64)
    f = {}
    f['shape'] = rnd.randint(len(spec['shapes']), size=n).astype(np.float64)  # content: same law in every domain
    f['x'] = rnd.uniform(-spec['position'], spec['position'], size=n)
    f['y'] = rnd.uniform(-spec['position'], spec['position'], size=n)
    f['scale'] = rnd.uniform(*spec['scale'], size=n)
    f['rotation'] = rnd.uniform(0, 2 * np.pi, size=n)
    hue_centre = np.asarray(spec['hue_centre'])[labels]                       # style: law depends on the domain
    f['hue'] = np.mod(hue_centre + rnd.uniform(-spec['hue_spread'], spec['hue_spread'], size=n), 1.0)
    bg = np.asarray(spec['background'])[labels]
    f['background'] = bg[:, 0] + (bg[:, 1] - bg[:, 0]) * rnd.uniform(size=n)
    return labels, f

#----------------------------------------------------------------------------

def render_scenes(name: str, f: dict, resolution: int) -> np.ndarray:
    """The scenes of factor arrays f of data set `name` -> uint8 [n, res, res, 3]."""
    return render_shapes(f, resolution) if name == 'shapes' else render_patches(get_spec(name), f, resolution)


def style_region_masks(name: str, resolution: int):
    """{style factor: bool [res, res]} of the fixed style regions of `name`, or None (shapes has none)."""
    regions = get_spec(name).get('style_regions')
    return region_masks(regions, resolution) if regions else None


def pixel_shares(name: str, resolution: int, n: int = 256, seed: int = 0, step: float = 0.1) -> dict:
    """{factor: share of pixels whose value moves when the factor moves by `step` times its standard
    deviation over the data set (class factors: the next class; hue modulo 1)}, mean over n scenes, and
    'swap': the share a true domain swap changes (same content, style drawn in the next domain)."""
    spec = get_spec(name)
    labels, f = sample_factors(name, n, seed)
    render = (lambda fac: render_shapes(fac, resolution).astype(np.float32) / 255) if name == 'shapes' else \
             (lambda fac: render_patches_float(spec, fac, resolution))
    base = render(f)
    changed = lambda fac: float((np.abs(render(fac) - base).max(-1) > 1e-4).mean())
    out = {}
    for k in spec['content'] + spec['style']:
        moved = f[k] + 1 if k == 'shape' else f[k] + step * f[k].std()
        out[k] = changed(dict(f, **{k: np.mod(moved, len(spec['shapes'])) if k == 'shape' else np.mod(moved, 1.0) if k == 'hue' else moved}))
    pool_labels, pool = sample_factors(name, 8 * n, seed + 1)
    swapped, target = {k: v.copy() for k, v in f.items()}, (labels + 1) % len(spec['domains'])
    for d in range(len(spec['domains'])):
        rows = np.flatnonzero(target == d)
        src = np.flatnonzero(pool_labels == d)[:len(rows)]
        for k in spec['style']:
            swapped[k][rows] = pool[k][src]
    out['swap'] = changed(swapped)
    return out

#----------------------------------------------------------------------------

def render_shapes(f: dict, resolution: int, supersample: int = 2) -> np.ndarray:
    """Rasterise the scenes described by factor arrays f -> uint8 [n, res, res, 3]."""
    n = len(f['shape'])
    g = resolution * supersample
    q = ((np.arange(g, dtype=np.float32) + 0.5) / g * 2 - 1)
    dx = q[None, None, :] - f['x'].astype(np.float32)[:, None, None]
    dy = q[None, :, None] - f['y'].astype(np.float32)[:, None, None]
    c = np.cos(f['rotation']).astype(np.float32)[:, None, None]
    s = np.sin(f['rotation']).astype(np.float32)[:, None, None]
    inv = (1 / f['scale']).astype(np.float32)[:, None, None]
    px, py = (c * dx + s * dy) * inv, (c * dy - s * dx) * inv      # scene -> shape-local coordinates
    mask = np.zeros((n, g, g), dtype=bool)
    shape = f['shape'].astype(np.int64)
    for cls, test in enumerate([_in_circle, _in_square, _in_triangle]):
        sel = shape == cls
        if sel.any():
            mask[sel] = test(px[sel], py[sel])
    colour = hsv_to_rgb(f['hue'], 0.85, 1.0).astype(np.float32)
    bg = f['background'].astype(np.float32)
    cover = mask.reshape(n, resolution, supersample, resolution, supersample).mean(axis=(2, 4), dtype=np.float32)[..., None]
    img = cover * colour[:, None, None, :] + (1 - cover) * bg[:, None, None, None] # blend is linear: box-filter first
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)

#----------------------------------------------------------------------------

def _in_circle(px, py):
    return px * px + py * py <= 0.75 ** 2

#----------------------------------------------------------------------------

def _in_square(px, py):
    return np.maximum(np.abs(px), np.abs(py)) <= 0.7

#----------------------------------------------------------------------------

def _in_triangle(px, py):
    inside = np.ones(px.shape, dtype=bool)
    for k in range(3): # three half-planes, inradius 0.55 (circumradius 1.1)
        a = np.pi / 2 + 2 * np.pi * k / 3
        inside &= np.cos(a) * px + np.sin(a) * py <= 0.55
    return inside

#----------------------------------------------------------------------------

def check_resolution(resolution: int) -> None:
    if not (is_power_of_two(resolution) and resolution >= 16):
        raise DatasetError(f'Built-in data sets render at a power-of-two resolution >= 16, not {resolution}; '
                           'pass e.g. --resolution=32.')

#----------------------------------------------------------------------------

def render_chunks(name: str, n: int, resolution: int, seed: int, chunk: int = 1000):
    """Yield (images, labels, factors) chunks; concatenated they equal render(name, n, resolution, seed)."""
    check_resolution(resolution)
    labels, f = sample_factors(name, n, seed)
    chunk = max(1, min(chunk, (1 << 22) // (resolution * resolution)))
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        part = {k: v[sl] for k, v in f.items()}
        yield render_scenes(name, part, resolution), labels[sl], part

#----------------------------------------------------------------------------

def render(name: str, n: int, resolution: int, seed: int = 0):
    """Render n images: (uint8 [n, res, res, 3] NHWC, int64 labels [n], {factor: float64 [n]}, domain names)."""
    spec = get_spec(name)
    chunks = list(render_chunks(name, n, resolution, seed))
    labels, f = sample_factors(name, n, seed)
    images = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros([0, resolution, resolution, 3], np.uint8)
    return images, labels, f, list(spec['domains'])

#----------------------------------------------------------------------------

def open_builtin(name: str, n: int, resolution: int, seed: int = 0) -> Source:
    """A Source streaming render(name, n, resolution, seed) chunk by chunk, with every factor stored."""
    spec = get_spec(name)
    check_resolution(resolution)
    names = factor_names(name)

    def items():
        start = 0
        for images, labels, f in render_chunks(name, n, resolution, seed):
            for j in range(len(images)):
                yield Item(name=f'builtin:{name} image {start + j}', load=lambda img=images[j]: img,
                           label=int(labels[j]), factors=[f[k][j] for k in names])
            start += len(images)
    return Source(items=items, num_items=n, channels=3, domains=list(spec['domains']), factor_names=names,
                  native_resolution=resolution,
                  extra={'factor_kinds': {'content': spec['content'], 'style': spec['style']},
                         'shapes': spec['shapes'], 'source': f'builtin:{name}', 'seed': seed,
                         **({'style_regions': spec['style_regions'], 'style_acts': spec['style_acts']} if 'style_regions' in spec else {})})

#----------------------------------------------------------------------------
