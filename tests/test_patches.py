"""builtin:patches / patches-global: laws, the style regions, what a true domain swap changes, pixel shares."""
import numpy as np
import pytest

from dataset_tool import convert_dataset
from datasets import builtin, patches
from metrics import region_metrics
from training.dataset import ImageFolderDataset

#----------------------------------------------------------------------------

def _swapped(name, n, seed):
    """(content factors f, f with the style of another domain): a true domain swap."""
    spec = builtin.get_spec(name)
    labels, f = builtin.sample_factors(name, n, seed)
    pool_labels, pool = builtin.sample_factors(name, 20 * n, seed + 1)
    g = {k: v.copy() for k, v in f.items()}
    for i in range(n):
        j = np.flatnonzero(pool_labels == (labels[i] + 1) % len(spec['domains']))[i]
        for k in spec['style']:
            g[k][i] = pool[k][j]
    return f, g


@pytest.mark.parametrize('res', [16, 32])
def test_true_swap_changes_only_the_regions_on_patches(res):
    spec = builtin.get_spec('patches')
    f, g = _swapped('patches', 200, seed=3)
    a, b = patches.render_patches(spec, f, res), patches.render_patches(spec, g, res)
    inside = region_metrics.union(builtin.style_region_masks('patches', res))
    diff = np.abs(a.astype(int) - b.astype(int)).max(-1)
    assert diff[:, ~inside].max() == 0                                 # nothing outside the two regions
    assert (diff[:, inside] > 0).mean() > 0.9                          # and the regions do change
    spec_g = builtin.get_spec('patches-global')
    ag, bg = patches.render_patches(spec_g, f, res), patches.render_patches(spec_g, g, res)
    assert (np.abs(ag.astype(int) - bg.astype(int)).max(-1)[:, ~inside] > 0).mean() > 0.9   # the control: everywhere


def test_object_never_touches_the_regions_and_regions_have_the_documented_size():
    spec = builtin.get_spec('patches')
    _, f = builtin.sample_factors('patches', 3000, seed=0)
    for res, pixels in ((16, 18), (32, 72)):
        masks = builtin.style_region_masks('patches', res)
        assert [int(m.sum()) for m in masks.values()] == [pixels, pixels]
        cover = patches._cover(f, res, 4)
        assert cover[:, region_metrics.union(masks)].max() == 0
        assert (cover.reshape(len(cover), -1).max(1) > 0.99).all()      # every object is drawn


def test_content_law_is_shared_and_style_law_moves_mean_and_spread():
    labels, f = builtin.sample_factors('patches', 30000, seed=1)
    for k in ('shape', 'x', 'y', 'size'):
        means = [f[k][labels == d].mean() for d in range(3)]
        assert np.ptp(means) < 0.02
    for k in ('hue', 'level'):
        lo = [np.percentile(f[k][labels == d], 1) for d in range(3)]
        assert np.all(np.diff(lo) > 0.1)                                  # means differ
    spreads = [np.ptp(f['level'][labels == d]) for d in range(3)]
    hue_spreads = [np.ptp(f['hue'][labels == d]) for d in range(1, 3)]
    assert len({round(s, 2) for s in spreads}) >= 2 and hue_spreads[1] > hue_spreads[0]


def test_pixel_shares_match_the_premise_and_its_control():
    p, g = builtin.pixel_shares('patches', 16, n=128), builtin.pixel_shares('patches-global', 16, n=128)
    assert p['hue'] <= 0.1 and p['level'] <= 0.1 and p['swap'] == pytest.approx(36 / 256)
    assert g['hue'] > 0.8 and g['level'] == 1.0 and g['swap'] == 1.0
    for k in ('x', 'y', 'size'):
        assert p[k] == pytest.approx(g[k]) and p[k] < 0.1                # content acts the same in both
    s = builtin.pixel_shares('shapes', 16, n=128)
    assert s['background'] > 0.8 and s['swap'] == 1.0                  # the earlier testbed: global


def test_dataset_stores_the_regions_and_the_reader_returns_their_masks(tmp_path):
    dest = str(tmp_path / 'p.zip')
    convert_dataset('builtin:patches', dest, resolution=16, max_images=30, seed=2, progress=False)
    ds = ImageFolderDataset(path=dest, use_labels=True)
    assert ds.factor_names == ['shape', 'x', 'y', 'size', 'hue', 'level']
    assert ds.factor_kinds == {'content': ['shape', 'x', 'y', 'size'], 'style': ['hue', 'level']}
    masks = region_metrics.regions_from_meta(ds._meta, 16)
    want = builtin.style_region_masks('patches', 16)
    assert all((masks[k] == want[k]).all() for k in want)
    img, _ = ds[0]
    _, f = builtin.sample_factors('patches', 30, seed=2)
    assert np.array_equal(img.transpose(1, 2, 0), builtin.render_scenes('patches', {k: v[:1] for k, v in f.items()}, 16)[0])

#----------------------------------------------------------------------------
