"""Two CPU ranks (gloo): every rank ends with all features, reals identical to a single-process run."""
import os

import numpy as np
import pytest

from tests.test_metrics_main import PixelStats, TinyGenerator, make_dataset

#----------------------------------------------------------------------------

def _rank_worker(data_path, out_dir):
    import torch  # noqa: F401
    from metrics import features as F
    from torch_utils import distributed
    from training.dataset import ImageFolderDataset
    distributed.init('cpu')
    rank = distributed.get_rank()
    ds = ImageFolderDataset(data_path, use_labels=True)
    reals, labels = F.dataset_features(ds, PixelStats(), batch_size=4, num_workers=0, rank=rank, num_gpus=2, progress=False)
    fakes = F.generator_features(TinyGenerator(), PixelStats(), 7, F.DatasetLabelSampler(ds), batch_size=3, rank=rank, num_gpus=2, progress=False)
    np.savez(os.path.join(out_dir, f'rank{rank}.npz'), reals=reals, labels=labels, fakes=fakes)
    distributed.shutdown()


def test_two_ranks_gather_all_features(tmp_path):
    from metrics import features as F
    from torch_utils import distributed
    from training.dataset import ImageFolderDataset
    data = make_dataset(tmp_path / 'data', counts=(5, 4))
    distributed.launch(_rank_worker, 2, args=(data['path'], str(tmp_path)))
    r0, r1 = (np.load(tmp_path / f'rank{r}.npz') for r in (0, 1))
    ds = ImageFolderDataset(data['path'], use_labels=True)
    reals, labels = F.dataset_features(ds, PixelStats(), batch_size=4, num_workers=0, progress=False)
    for r in (r0, r1):
        np.testing.assert_allclose(r['reals'], reals, rtol=1e-6)
        np.testing.assert_array_equal(r['labels'], labels)
        assert r['fakes'].shape == (7, 6)
    np.testing.assert_array_equal(r0['fakes'], r1['fakes'])
    # rows 0, 2, 4, 6 are rank 0's fakes: rank 0 uses the single-process seed, so they are its first 4 fakes
    local = F.generator_features(TinyGenerator(), PixelStats(), 7, F.DatasetLabelSampler(ds), batch_size=3, progress=False)
    np.testing.assert_allclose(local[:4], r0['fakes'][0::2], rtol=1e-6)
    assert len(np.unique(r0['fakes'].round(4), axis=0)) == 7  # rank 1 drew other fakes

#----------------------------------------------------------------------------
