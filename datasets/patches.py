"""`builtin:patches` and `builtin:patches-global`: the sparse-mixing testbed and its control.

Both share one layout and one set of factor laws; they differ only in where the style factors act.
Coordinates are in units of the half image width, x to the right, y downwards, the image is [-1, 1]^2.

Content (the same law in every domain): one light object, a square or a disc (no rotation), its centre
x ~ U(-0.4, 0.4), y ~ U(0.20, 0.45) and half-size ~ U(0.35, 0.55); the disc's radius is the half-size,
the square's half-width 0.9 x it (about the same area, so size does not tell the class). The object
always lies below y = -0.35, so it never touches the style regions (which end at y = -0.5).
Style (law per domain, mean and spread both change):
    domain 0 "red-dark":    hue ~ 0.00 +- 0.03, level ~ U(0.10, 0.30)
    domain 1 "green-mid":   hue ~ 0.33 +- 0.05, level ~ U(0.40, 0.65)
    domain 2 "blue-bright": hue ~ 0.62 +- 0.07, level ~ U(0.75, 0.95)
`patches`: two small fixed regions at the top (aligned in every image, like the eyes of aligned faces):
the left one shows the hue, the right one the grey level; each covers 6 x 3 pixels of 16 x 16 (7.0 %),
everything else is a flat background of grey 0.35, the same in every domain. A true domain swap (same
content, style redrawn in another domain) changes no pixel outside the two regions.
`patches-global`: the same factors act on every pixel instead: the hue tints the whole background,
the level sets the brightness of the background and of the object. The regions keep their meaning
as a place (the metrics of metrics/region_metrics.py read them) but carry nothing special.
The share of pixels each factor touches is measured by builtin.pixel_shares (docs/datasets.md).
"""
import numpy as np

from .colour import hsv_to_rgb

#----------------------------------------------------------------------------

_COMMON = dict(
    domains      = ['red-dark', 'green-mid', 'blue-bright'],
    shapes       = ['square', 'disc'],
    hue_centre   = [0.00, 0.33, 0.62],
    hue_spread   = [0.03, 0.05, 0.07],
    level        = [(0.10, 0.30), (0.40, 0.65), (0.75, 0.95)],
    x            = (-0.4, 0.4),
    y            = (0.20, 0.45),
    size         = (0.35, 0.55),
    content      = ['shape', 'x', 'y', 'size'],
    style        = ['hue', 'level'],
    style_regions = {'hue': [-0.875, -0.875, -0.125, -0.5], 'level': [0.125, -0.875, 0.875, -0.5]},
    background   = 0.35,
    object_level = 0.95,
)
PATCHES_SPEC = dict(_COMMON, style_acts='regions')
PATCHES_GLOBAL_SPEC = dict(_COMMON, style_acts='global')

#----------------------------------------------------------------------------

def sample_patches(spec: dict, n: int, seed: int):
    """(labels int64 [n], {factor: float64 [n]}) from the laws above."""
    rnd = np.random.RandomState(seed)
    labels = rnd.randint(len(spec['domains']), size=n).astype(np.int64)
    f = {'shape': rnd.randint(len(spec['shapes']), size=n).astype(np.float64)}
    for name in ('x', 'y', 'size'):
        f[name] = rnd.uniform(*spec[name], size=n)
    spread = np.asarray(spec['hue_spread'])[labels]
    f['hue'] = np.mod(np.asarray(spec['hue_centre'])[labels] + spread * rnd.uniform(-1, 1, size=n), 1.0)
    lv = np.asarray(spec['level'])[labels]
    f['level'] = lv[:, 0] + (lv[:, 1] - lv[:, 0]) * rnd.uniform(size=n)
    return labels, f

#----------------------------------------------------------------------------

def region_masks(regions: dict, resolution: int) -> dict:
    """{region name: bool [res, res]}: pixels whose centre lies inside the rectangle [x0, y0, x1, y1]."""
    q = (np.arange(resolution) + 0.5) / resolution * 2 - 1
    out = {}
    for name, (x0, y0, x1, y1) in regions.items():
        out[name] = ((q[:, None] >= y0) & (q[:, None] <= y1)) & ((q[None, :] >= x0) & (q[None, :] <= x1))
    return out


def _cover(f: dict, resolution: int, supersample: int) -> np.ndarray:
    """Anti-aliased object coverage float32 [n, res, res]."""
    n = len(f['shape'])
    g = resolution * supersample
    q = (np.arange(g, dtype=np.float32) + 0.5) / g * 2 - 1
    dx = np.abs(q[None, None, :] - f['x'].astype(np.float32)[:, None, None])
    dy = np.abs(q[None, :, None] - f['y'].astype(np.float32)[:, None, None])
    s = f['size'].astype(np.float32)[:, None, None]
    disc = f['shape'].astype(np.int64)[:, None, None] == 1
    inside = np.where(disc, dx * dx + dy * dy <= s * s, np.maximum(dx, dy) <= 0.9 * s)
    return inside.reshape(n, resolution, supersample, resolution, supersample).mean(axis=(2, 4), dtype=np.float32)


def render_patches_float(spec: dict, f: dict, resolution: int, supersample: int = 4) -> np.ndarray:
    """The scenes of factor arrays f -> float32 [n, res, res, 3] in [0, 1] (before rounding)."""
    n = len(f['shape'])
    cover = _cover(f, resolution, supersample)[..., None]
    colour = hsv_to_rgb(np.asarray(f['hue'], np.float64), 0.85, 0.9).astype(np.float32)[:, None, None, :]
    level = np.asarray(f['level'], np.float32)[:, None, None, None]
    if spec['style_acts'] == 'regions':
        img = np.full([n, resolution, resolution, 3], spec['background'], np.float32)
        masks = region_masks(spec['style_regions'], resolution)
        img[:, masks['hue']] = np.broadcast_to(colour[:, 0], [n, int(masks['hue'].sum()), 3])
        img[:, masks['level']] = np.broadcast_to(level[:, 0], [n, int(masks['level'].sum()), 3])
        obj = np.float32(spec['object_level'])
    else:
        v = 0.15 + 0.6 * level                                       # overall brightness
        img = np.broadcast_to(v * (0.5 + 0.5 * colour), [n, resolution, resolution, 3]).copy()   # tinted by the hue
        obj = 0.8 + 0.2 * level
    return cover * obj + (1 - cover) * img


def render_patches(spec: dict, f: dict, resolution: int) -> np.ndarray:
    """uint8 [n, res, res, 3]."""
    return np.clip(np.round(render_patches_float(spec, f, resolution) * 255), 0, 255).astype(np.uint8)

#----------------------------------------------------------------------------
