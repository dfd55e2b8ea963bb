"""training/dataset.py: round trip against the renderer, NVIDIA attributes, factors, workers, InfiniteSampler."""
import io
import itertools
import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from dataset_tool import convert_dataset
from datasets import builtin
from datasets.errors import DatasetError
from training.dataset import ImageFolderDataset, InfiniteSampler

N, RES, SEED = 30, 16, 3

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp('ds')
    for dest in ['shapes.zip', 'shapes']:
        convert_dataset('builtin:shapes', str(root / dest), resolution=RES, max_images=N, seed=SEED, progress=False)
    return root, builtin.render('shapes', N, RES, seed=SEED)

@pytest.mark.parametrize('dest', ['shapes.zip', 'shapes'])
def test_round_trip_equals_the_renderer(built, dest):
    root, (images, labels, factors, domains) = built
    ds = ImageFolderDataset(str(root / dest), use_labels=True)
    assert ds.name == 'shapes' and len(ds) == N
    assert ds.image_shape == [3, RES, RES] and ds.num_channels == 3 and ds.resolution == RES
    assert ds.label_shape == [3] and ds.label_dim == 3 and ds.has_labels and ds.has_onehot_labels
    assert ds.domain_names == domains and ds.num_domains == 3
    assert ds.factor_names == builtin.factor_names('shapes') and ds.has_factors
    assert ds.factor_kinds == {'content': ['shape', 'x', 'y', 'scale', 'rotation'], 'style': ['hue', 'background']}
    for i in range(N):
        img, label = ds[i]
        assert img.dtype == np.uint8 and np.array_equal(img, images[i].transpose(2, 0, 1))
        assert label.dtype == np.float32 and np.array_equal(label, np.eye(3)[labels[i]])
        expect = [factors[k][i] for k in ds.factor_names]
        assert np.allclose(ds.get_factors(i), expect, rtol=1e-5, atol=1e-6)
    assert np.allclose(ds.label_distribution(), np.bincount(labels, minlength=3) / N)

def test_xflip_max_size_and_unlabelled(built):
    root, (images, labels, _, _) = built
    ds = ImageFolderDataset(str(root / 'shapes.zip'), xflip=True, max_size=10, random_seed=1)
    assert len(ds) == 20
    raw = [ds.get_details(i).raw_idx for i in range(10)]
    assert raw == sorted(raw) and len(set(raw)) == 10
    assert raw == [ds.get_details(i + 10).raw_idx for i in range(10)]
    assert ImageFolderDataset(str(root / 'shapes.zip'), max_size=10, random_seed=1).get_details(4).raw_idx == raw[4]
    for i in range(10):
        assert not ds.get_details(i).xflip and ds.get_details(i + 10).xflip
        assert np.array_equal(ds[i + 10][0], images[raw[i]].transpose(2, 0, 1)[:, :, ::-1])
    # Without use_labels: NVIDIA's empty labels; domains and the distribution stay readable.
    assert ds.label_shape == [0] and ds.label_dim == 0 and not ds.has_labels and ds[0][1].shape == (0,)
    assert ds.num_domains == 3
    assert np.allclose(ds.label_distribution(), np.bincount(labels[raw], minlength=3) / 10)
    assert np.allclose(ds.get_factors(12), ds.get_factors(2))

def test_resolution_argument(built):
    root, _ = built
    assert ImageFolderDataset(str(root / 'shapes.zip'), resolution=RES).resolution == RES
    with pytest.raises(DatasetError, match=f'holds 16x16 images, not 32x32; rebuild it with dataset_tool.py --resolution=32'):
        ImageFolderDataset(str(root / 'shapes.zip'), resolution=32)

#----------------------------------------------------------------------------

def test_foreign_nvidia_zip_and_grayscale(tmp_path):
    path = tmp_path / 'nv.zip'
    imgs = np.random.RandomState(0).randint(0, 256, size=(5, 8, 8)).astype(np.uint8)
    with zipfile.ZipFile(path, 'w') as z:
        for i in range(5):
            buf = io.BytesIO(); PIL.Image.fromarray(imgs[i]).save(buf, format='png')
            z.writestr(f'00000/img{i:08d}.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps({'labels': [[f'00000/img{i:08d}.png', [2, 0, 3, 2, 0][i]] for i in range(5)]}))
    ds = ImageFolderDataset(str(path), use_labels=True)
    assert ds.image_shape == [1, 8, 8] and ds.domain_names is None and ds.num_domains == 4 and ds.label_dim == 4
    assert np.array_equal(ds[2][0][0], imgs[2]) and np.array_equal(ds[2][1], [0, 0, 0, 1])
    assert np.allclose(ds.label_distribution(), [0.4, 0, 0.4, 0.2])
    assert not ds.has_factors
    with pytest.raises(DatasetError, match='stores no factors'):
        ds.get_factors(0)

def test_float_labels_are_kept(tmp_path):
    root = tmp_path / 'f'
    os.makedirs(root)
    for i in range(3):
        PIL.Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / f'{i}.png')
    (root / 'dataset.json').write_text(json.dumps({'labels': [[f'{i}.png', [0.5 * i, 1.0]] for i in range(3)]}))
    ds = ImageFolderDataset(str(root), use_labels=True)
    assert ds.label_shape == [2] and not ds.has_onehot_labels and np.allclose(ds[2][1], [1.0, 1.0])

def test_errors(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        ImageFolderDataset(str(tmp_path / 'missing.zip'))
    (tmp_path / 'bad.zip').write_bytes(b'this is not a zip')
    with pytest.raises(DatasetError, match='Cannot read zip file'):
        ImageFolderDataset(str(tmp_path / 'bad.zip'))
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(DatasetError, match='neither a folder nor a .zip'):
        ImageFolderDataset(str(tmp_path / 'notes.txt'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(DatasetError, match='contains no image files'):
        ImageFolderDataset(str(tmp_path / 'empty'))
    os.makedirs(tmp_path / 'unlabelled')
    PIL.Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'unlabelled' / 'a.png')
    PIL.Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'unlabelled' / 'b.png')
    (tmp_path / 'unlabelled' / 'dataset.json').write_text(json.dumps({'labels': [['a.png', 0]]}))
    with pytest.raises(DatasetError, match='"b.png" has no label'):
        ImageFolderDataset(str(tmp_path / 'unlabelled'), use_labels=True).get_label(0)
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'unlabelled' / 'b.png')
    with pytest.raises(DatasetError, match='"b.png"'):
        ImageFolderDataset(str(tmp_path / 'unlabelled'))[1]

#----------------------------------------------------------------------------

def test_pickle_and_per_process_zip_handle(built):
    root, _ = built
    ds = ImageFolderDataset(str(root / 'shapes.zip'), use_labels=True)
    first = ds[0][0]
    assert ds._zipfile is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zipfile is None and np.array_equal(clone[0][0], first)
    handle = ds._zipfile
    ds._zipfile_pid = -1 # as seen from a forked worker: the handle belongs to another process
    assert np.array_equal(ds[0][0], first) and ds._zipfile is not handle

def test_dataloader_with_workers(built):
    root, _ = built
    ds = ImageFolderDataset(str(root / 'shapes.zip'), use_labels=True)
    ds[0] # open the zip in the parent first: workers must not share its handle
    loader = torch.utils.data.DataLoader(ds, batch_size=7, num_workers=2, shuffle=False)
    got = torch.cat([img for img, _ in loader]).numpy()
    assert np.array_equal(got, np.stack([ds[i][0] for i in range(len(ds))]))

#----------------------------------------------------------------------------

def test_infinite_sampler_semantics():
    data = list(range(13))
    # shuffle=False, window 0: plain cycling.
    assert list(itertools.islice(InfiniteSampler(data, shuffle=False), 30)) == [i % 13 for i in range(30)]
    # Rank r sees exactly every num_replicas-th element of the single global stream.
    glob = [int(i) for i in itertools.islice(InfiniteSampler(data, seed=5), 300)]
    for r in range(3):
        mine = [int(i) for i in itertools.islice(InfiniteSampler(data, rank=r, num_replicas=3, seed=5), 100)]
        assert mine == glob[r::3]
    # Without the moving window a pass is a seeded permutation: ranks get disjoint shares that cover the data.
    perm = [[int(i) for i in itertools.islice(InfiniteSampler(data, rank=r, num_replicas=3, seed=5, window_size=0), 26)] for r in range(3)]
    assert sorted(sum((p[:len(range(r, 13, 3))] for r, p in enumerate(perm)), [])) == data
    parts = [set(p[:len(range(r, 13, 3))]) for r, p in enumerate(perm)]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and set().union(*parts) == set(data)
    # Deterministic for a seed, different across seeds; the window keeps the order changing after a pass.
    assert glob == [int(i) for i in itertools.islice(InfiniteSampler(data, seed=5), 300)]
    assert glob != [int(i) for i in itertools.islice(InfiniteSampler(data, seed=6), 300)]
    assert glob[:13] != glob[13:26]
    assert sorted(np.bincount(glob, minlength=13))[0] > 10 # every item keeps being drawn

#----------------------------------------------------------------------------
