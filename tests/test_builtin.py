"""Built-in procedural data set: determinism, factor laws (content shared, style per domain), pixel semantics."""
import hashlib

import numpy as np
import pytest

from dataset_tool import convert_dataset
from datasets import builtin
from datasets.errors import DatasetError

#----------------------------------------------------------------------------

def test_render_is_deterministic_and_seed_dependent():
    a = builtin.render('shapes', 64, 16, seed=3)
    b = builtin.render('shapes', 64, 16, seed=3)
    c = builtin.render('shapes', 64, 16, seed=4)
    assert a[0].shape == (64, 16, 16, 3) and a[0].dtype == np.uint8
    assert a[1].dtype == np.int64 and a[1].shape == (64,)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert all(np.array_equal(a[2][k], b[2][k]) for k in a[2])
    assert not np.array_equal(a[0], c[0])
    assert a[3] == ['red-on-dark', 'green-on-grey', 'blue-on-light']
    assert sorted(a[2]) == sorted(builtin.factor_names('shapes'))

#----------------------------------------------------------------------------

def test_chunking_and_resolution_do_not_change_scenes():
    full = builtin.render('shapes', 37, 16, seed=1)
    parts = list(builtin.render_chunks('shapes', 37, 16, seed=1, chunk=10))
    assert [len(p[0]) for p in parts] == [10, 10, 10, 7]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), full[0])
    big = builtin.render('shapes', 37, 64, seed=1)
    assert all(np.array_equal(full[2][k], big[2][k]) for k in full[2]) # same factors at every size
    # A 64^2 render box-downsampled to 16^2 is close to the 16^2 render (same scene, finer sampling).
    down = big[0].astype(np.float64).reshape(37, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    assert np.abs(down - full[0]).mean() < 6

#----------------------------------------------------------------------------

def test_content_law_shared_style_law_per_domain():
    labels, f = builtin.sample_factors('shapes', 30000, seed=0)
    spec = builtin.get_spec('shapes')
    for d in range(3):
        sel = labels == d
        assert 0.3 < sel.mean() < 0.37
        # Content: same distribution in every domain (means within sampling error of the population's).
        for k in ['x', 'y', 'scale', 'rotation']:
            assert abs(f[k][sel].mean() - f[k].mean()) < 4 * f[k].std() / np.sqrt(sel.sum())
        assert np.allclose(np.bincount(f['shape'][sel].astype(int), minlength=3) / sel.sum(), 1 / 3, atol=0.03)
        # Style: a distribution that depends on the domain (disjoint supports here).
        lo, hi = spec['background'][d]
        assert f['background'][sel].min() >= lo and f['background'][sel].max() <= hi
        dh = np.abs((f['hue'][sel] - spec['hue_centre'][d] + 0.5) % 1.0 - 0.5)
        assert dh.max() <= spec['hue_spread'] + 1e-12

#----------------------------------------------------------------------------

def test_pixels_follow_the_factors():
    res = 32
    images, labels, f, _ = builtin.render('shapes', 200, res, seed=5)
    colour = builtin.hsv_to_rgb(f['hue'], 0.85, 1.0)
    for i in range(200):
        # The corners are never covered by the shape: they show the background grey level.
        assert np.all(np.abs(images[i, 0, 0].astype(int) - round(f['background'][i] * 255)) <= 1)
        # The pixel at the shape's centre is fully covered: it shows the shape colour.
        col = int((f['x'][i] + 1) / 2 * res)
        row = int((f['y'][i] + 1) / 2 * res)
        assert np.all(np.abs(images[i, row, col].astype(int) - np.round(colour[i] * 255)) <= 1), i

#----------------------------------------------------------------------------

def test_shape_classes_differ_in_area():
    # Circles, squares and triangles of the same scale cover different areas: the class is visible.
    n = 600
    _, f = builtin.sample_factors('shapes', n, seed=2)
    f = dict(f, scale=np.full(n, 0.6), x=np.zeros(n), y=np.zeros(n), background=np.zeros(n), hue=np.zeros(n))
    img = builtin.render_shapes(f, 32)
    area = (img.max(axis=-1) > 127).mean(axis=(1, 2))
    means = [area[f['shape'] == c].mean() for c in range(3)]
    assert means[1] > means[0] > means[2] # square > circle > triangle

#----------------------------------------------------------------------------

@pytest.mark.parametrize('res', [8, 24, 0])
def test_bad_resolution_is_refused(res):
    with pytest.raises(DatasetError, match='power-of-two resolution >= 16'):
        builtin.render('shapes', 4, res)

def test_unknown_name_is_refused():
    with pytest.raises(DatasetError, match='available: builtin:patches, builtin:patches-global, builtin:shapes'):
        builtin.render('cubes', 4, 16)

#----------------------------------------------------------------------------

def test_zip_is_byte_identical_for_the_same_seed(tmp_path):
    digests = []
    for name in ['a.zip', 'b.zip']:
        convert_dataset('builtin:shapes', str(tmp_path / name), resolution=16, max_images=40, seed=7, progress=False)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    convert_dataset('builtin:shapes', str(tmp_path / 'c.zip'), resolution=16, max_images=40, seed=8, progress=False)
    assert hashlib.sha256((tmp_path / 'c.zip').read_bytes()).hexdigest() != digests[0]

#----------------------------------------------------------------------------
