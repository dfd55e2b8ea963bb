"""Multi-process training with gloo on CPU: 2 ranks == 1 rank with the same global batch; a dead rank ends the job."""
import os
import signal
import time

import pytest
import torch

from tests.test_training_loop import assert_same_params, tiny_kwargs
from torch_utils import distributed
from training.training_loop import training_loop

#----------------------------------------------------------------------------

def _train_worker(kwargs, out_path):
    torch.set_num_threads(1)
    device = distributed.init('cpu')
    kwargs.update(rank=distributed.get_rank(), num_gpus=distributed.get_world_size(), device=str(device), log_fn=lambda *a, **k: None)
    r = training_loop(**kwargs)
    if distributed.get_rank() == 0:
        torch.save({name: r[name].state_dict() for name in ('G', 'D', 'G_ema')} | dict(pl_mean=r.loss.pl_mean, p=r.augment_p), out_path)
    distributed.shutdown()


def test_two_ranks_match_one_rank_with_same_global_batch(tmp_path):
    common = dict(batch_size=8, batch_gpu=4, total_kimg=0.032, model='cg-gan', augment=True,
                  network_snapshot_ticks=None, image_snapshot_ticks=None)
    single = training_loop(**tiny_kwargs(str(tmp_path / 'one'), **common))   # 1 rank x 2 accumulation rounds
    kwargs = tiny_kwargs(str(tmp_path / 'two'), **common)                    # 2 ranks x 1 round
    del kwargs['log_fn']
    out = str(tmp_path / 'two.pt')
    distributed.launch(_train_worker, 2, args=(dict(kwargs), out))
    state = torch.load(out, weights_only=True)
    for name in ('G', 'D', 'G_ema'):
        ref = single[name].state_dict()
        assert ref.keys() == state[name].keys()
        for key in ref:
            if key.endswith('w_avg'):  # per-rank running mean of w (used only for truncation), as in NVIDIA's code
                continue
            torch.testing.assert_close(state[name][key], ref[key], atol=1e-5, rtol=1e-4, msg=f'{name}.{key}')
    assert float(state['pl_mean']) == pytest.approx(float(single.loss.pl_mean), rel=1e-5)
    assert state['p'] == pytest.approx(single.augment_p, abs=1e-9)

#----------------------------------------------------------------------------

def _dying_worker(marker):
    torch.set_num_threads(1)
    distributed.init('cpu', timeout_s=30)
    rank = distributed.get_rank()
    x = torch.ones([4])
    for step in range(100000):
        torch.distributed.all_reduce(x)
        x.fill_(1)
        if rank == 1 and step == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)


def test_killed_rank_ends_the_job_in_bounded_time(tmp_path):
    start = time.time()
    with pytest.raises(distributed.DistributedError) as e:
        distributed.launch(_dying_worker, 2, args=(str(tmp_path / 'marker'),))
    assert time.time() - start < 60
    assert 'Rank 1' in str(e.value) and 'SIGKILL' in str(e.value)


def _raising_worker():
    distributed.init('cpu', timeout_s=30)
    if distributed.get_rank() == 0:
        raise ValueError('boom on purpose')
    torch.distributed.barrier()  # would wait forever for rank 0 without the launcher's clean-up
    time.sleep(600)


def test_rank_exception_stops_siblings_with_its_message():
    start = time.time()
    with pytest.raises(distributed.DistributedError, match='Rank 0 failed.*boom on purpose'):
        distributed.launch(_raising_worker, 2)
    assert time.time() - start < 60

#----------------------------------------------------------------------------
