"""Exact resume, transfer from NVIDIA-format pickles, --resume=latest, and snapshots that survive SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import dnnlib
from tests.test_training_loop import assert_same_params, tiny_kwargs
from training.training_loop import find_latest_snapshot, load_weights, training_loop

#----------------------------------------------------------------------------

def test_resume_continues_exactly(tmp_path):
    # N steps straight == N/2 steps, resume from the snapshot, N/2 steps (CG-GAN terms and ADA on).
    common = dict(model='cg-gan', augment=True, image_snapshot_ticks=None)
    straight = training_loop(**tiny_kwargs(str(tmp_path / 'a'), total_kimg=0.032, network_snapshot_ticks=None, **common))
    half = training_loop(**tiny_kwargs(str(tmp_path / 'b'), total_kimg=0.016, network_snapshot_ticks=1, **common))
    assert half.cur_nimg == 16 and half.last_snapshot is not None
    resumed = training_loop(**tiny_kwargs(str(tmp_path / 'c'), total_kimg=0.032, network_snapshot_ticks=None,
                                          resume_snapshot=half.last_snapshot, **common))
    assert resumed.cur_nimg == straight.cur_nimg == 32 and resumed.batch_idx == 4
    for name in ('G', 'D', 'G_ema'):
        assert_same_params(straight[name], resumed[name], atol=1e-6, rtol=1e-6)
    assert resumed.augment_p == pytest.approx(straight.augment_p, abs=1e-9)
    assert float(resumed.loss.pl_mean) == pytest.approx(float(straight.loss.pl_mean), rel=1e-6)
    for a, b in zip(straight.G_opt.state_dict()['state'].values(), resumed.G_opt.state_dict()['state'].values()):
        torch.testing.assert_close(a['exp_avg_sq'], b['exp_avg_sq'], atol=1e-9, rtol=1e-5)
    # A different run (no resume) would not match: the comparison above is not vacuous.
    other = training_loop(**tiny_kwargs(str(tmp_path / 'd'), total_kimg=0.016, network_snapshot_ticks=None, **common))
    assert not torch.allclose(other.G.synthesis.b4.const, straight.G.synthesis.b4.const)


def test_transfer_from_nvidia_pickle_starts_new_run_from_its_weights(tmp_path):
    from tests.fixtures_nvidia import nvidia_pickle_bytes
    kw = tiny_kwargs(str(tmp_path / 'src'), total_kimg=0.008, network_snapshot_ticks=None, image_snapshot_ticks=None)
    src = training_loop(**kw)
    pkl = tmp_path / 'network-snapshot-000100.pkl'
    pkl.write_bytes(nvidia_pickle_bytes(dict(G=src.G, D=src.D, G_ema=src.G_ema)))
    loaded = load_weights(str(pkl))
    assert_same_params(loaded['G'], src.G, atol=0, rtol=0)
    # With zero learning rates the transferred weights must come through unchanged; counters restart at 0.
    kw = tiny_kwargs(str(tmp_path / 'dst'), total_kimg=0.008, resume_pkl=str(pkl), network_snapshot_ticks=None, image_snapshot_ticks=None, random_seed=3)
    kw.G_opt_kwargs.lr = kw.D_opt_kwargs.lr = 0.0
    dst = training_loop(**kw)
    assert dst.cur_nimg == 8
    for a, b in [(src.G_ema, dst.G_ema), (src.D, dst.D)]:  # parameters (w_avg moves with training, lr or not)
        for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)

#----------------------------------------------------------------------------

def test_resume_latest_picks_newest_complete_snapshot(tmp_path):
    import train
    (tmp_path / '00000-run').mkdir()
    (tmp_path / '00001-run').mkdir()
    old = tmp_path / '00000-run' / 'network-snapshot-000004.pt'
    new = tmp_path / '00001-run' / 'network-snapshot-000008.pt'
    from torch_utils.snapshot import save_snapshot
    save_snapshot(str(old), dict(G_opt={}, cur_nimg=4000))
    time.sleep(0.05)
    save_snapshot(str(new), dict(cur_nimg=8000))
    (tmp_path / '00001-run' / '.network-snapshot-000012.pt.abc.tmp').write_bytes(b'PK\x03\x04 partial')  # interrupted write
    assert find_latest_snapshot(str(tmp_path)) == str(new)
    from training import resume
    assert train.resume_file('latest', str(tmp_path)) == str(new)
    assert resume.peek(str(new))[0] == 'weights'                                          # no options stored: weights only
    with pytest.raises(train.UserError, match='found no network-snapshot'):
        train.resume_file('latest', str(tmp_path / '00000-run' / 'nothing'))

def test_resume_latest_takes_highest_kimg_and_continues_in_the_run_folder(tmp_path, capsys):
    import train
    from torch_utils.snapshot import save_snapshot
    run = tmp_path / '00001-run'
    run.mkdir()
    (tmp_path / '00000-other').mkdir()
    (tmp_path / '00002-crashed-early').mkdir()                                  # newest folder, no snapshot yet
    save_snapshot(str(tmp_path / '00000-other' / 'network-snapshot-000100.pt'), dict(cur_nimg=100000))
    high, low = run / 'network-snapshot-000012.pt', run / 'network-snapshot-000008.pt'
    save_snapshot(str(high), dict(cur_nimg=12000))
    save_snapshot(str(low), dict(cur_nimg=8000))                                # written last: the newest file
    assert find_latest_snapshot(str(tmp_path)) == str(high)
    assert find_latest_snapshot(str(run)) == str(high)
    (run / 'training_options.json').write_text('{}')                           # the folder's model: stylegan2-ada
    c = dnnlib.EasyDict(num_gpus=1, use_cuda=False, batch_size=4, batch_gpu=4, total_kimg=20, kimg_per_tick=4,
                        training_set_kwargs=dnnlib.EasyDict(path='x.zip'), resume_snapshot=str(high))
    train.launch_training(c, desc='run', outdir=str(tmp_path), dry_run=True)
    assert c.run_dir == str(run) and '(continuing the run)' in capsys.readouterr().out
    c.resume_snapshot = str(low)                                                # an older snapshot: a new, linked folder
    train.launch_training(c, desc='run', outdir=str(tmp_path), dry_run=True)
    assert c.run_dir == str(tmp_path / '00003-run') and f'(resumed from {low})' in capsys.readouterr().out

#----------------------------------------------------------------------------

WRITER = textwrap.dedent('''
    import sys, torch
    from torch_utils.snapshot import save_snapshot
    folder = sys.argv[1]
    big = torch.randn(4_000_000)
    for i in range(1000):
        save_snapshot(f'{folder}/network-snapshot-{i:06d}.pt', dict(step=i, weights=big + i))
        print(i, flush=True)
''')

@pytest.mark.parametrize('delay', [0.05, 0.3])
def test_sigkill_during_snapshot_write_leaves_previous_snapshot(tmp_path, delay):
    from torch_utils.snapshot import load_snapshot
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert proc.stdout.readline().strip() == '0'  # the first snapshot is complete
        time.sleep(delay)                              # ...and kill somewhere inside a later write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    latest = find_latest_snapshot(str(tmp_path))
    data = load_snapshot(latest)
    assert torch.equal(data['weights'][:10], data['weights'][:10])
    assert data['weights'].numel() == 4_000_000
    assert latest.endswith(f'network-snapshot-{data["step"]:06d}.pt')

#----------------------------------------------------------------------------
