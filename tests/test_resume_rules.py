"""train.py --resume as a user runs it: fine-tuning that trains, --kimg as a total, explicit overrides,
the architecture from the snapshot, NVIDIA's rule for pickles, and one sentence for each bad combination."""
import json

import pytest
import torch
from click.testing import CliRunner

import dataset_tool
import train
from training import presets
from torch_utils.snapshot import load_snapshot

COMMON = ['--batch=8', '--metrics=none', '--tick=0.016', '--snap=1', '--aug=noaug']

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    paths = {}
    for res in (16, 32):
        paths[res] = str(root / f'shapes-{res}.zip')
        dataset_tool.convert_dataset('builtin:shapes', paths[res], resolution=res, max_images=64, progress=False)
    return paths


@pytest.fixture(scope='module')
def istylegan_run(shapes, tmp_path_factory):
    """A 16-image i-StyleGAN run of the tiny preset: its last snapshot."""
    out = tmp_path_factory.mktemp('base')
    r = CliRunner().invoke(train.main, ['--outdir', str(out), '--data', shapes[16], '--cfg=tiny', '--model=istylegan', '--kimg=0.016', *COMMON])
    assert r.exit_code == 0, r.output
    return str(sorted(out.glob('*/network-snapshot-*.pt'))[-1])


def run(args):
    return CliRunner().invoke(train.main, args)


def one_sentence(r, code=1):
    assert r.exit_code == code and 'Traceback' not in r.output, r.output
    lines = [l for l in r.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('Error: '), r.output
    return lines[0]

#----------------------------------------------------------------------------

def test_fine_tune_as_the_docs_say_trains_and_logs_l_s(shapes, istylegan_run, tmp_path):
    # docs/cg-gan.md: no --cfg on the fine-tune, --kimg is the total (past the snapshot's progress).
    r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--model=cg-gan', '--resume', istylegan_run, '--kimg=0.032',
             '--sparse-interval=1', '--metrics=none'])
    assert r.exit_code == 0, r.output
    assert 'Fine-tuning: continuing the istylegan run as cg-gan' in r.output
    run_dir = sorted(tmp_path.glob('*'))[0]
    assert 'tiny-cg-gan' in run_dir.name                                   # the preset came from the snapshot
    last = load_snapshot(str(sorted(run_dir.glob('network-snapshot-*.pt'))[-1]), rebuild_modules=False)
    assert last['cur_nimg'] == 32
    assert last['options']['loss_kwargs']['lambda_imgsparse'] == presets.LAMBDA_IMGSPARSE
    assert last['options']['loss_kwargs']['r1_gamma'] == 0.05                # tiny's gamma kept, not auto's
    stats = [json.loads(l) for l in open(run_dir / 'stats.jsonl')]
    assert any('Loss/G/imgsparse' in s for s in stats)


@pytest.mark.parametrize('kimg', ['0.016', '0.008'])
def test_resume_not_past_the_snapshot_is_one_sentence(shapes, istylegan_run, tmp_path, kimg):
    r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--model=cg-gan', '--resume', istylegan_run, f'--kimg={kimg}'])
    line = one_sentence(r)
    assert 'The snapshot is at 0.016 kimg' in line and 'e.g. --kimg=0.02' in line
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_explicit_options_override_the_snapshot_and_say_so(shapes, istylegan_run, tmp_path):
    r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=0.024', '--gamma=3', '--glr=0.001',
             '--metrics=none', '--snap=1'])
    assert r.exit_code == 0, r.output
    assert 'Resume: --gamma sets loss_kwargs.r1_gamma = 3.0 (the snapshot had 0.05).' in r.output
    assert 'Resume: --glr sets G_opt_kwargs.lr = 0.001 (the snapshot had 0.0025).' in r.output
    assert 'Resume: --kimg sets total_kimg = 0.024' in r.output
    run_dir = sorted(tmp_path.glob('*'))[0]
    assert 'Resume: --gamma sets' in (run_dir / 'log.txt').read_text()
    opts = load_snapshot(str(sorted(run_dir.glob('network-snapshot-*.pt'))[-1]), rebuild_modules=False)['options']
    assert opts['loss_kwargs']['r1_gamma'] == 3.0 and opts['G_opt_kwargs']['lr'] == 0.001
    assert opts['D_opt_kwargs']['lr'] == 0.0025 and opts['batch_size'] == 8    # not given: the snapshot's
    assert 'lambda_imgsparse' not in opts['loss_kwargs']                      # still i-StyleGAN


def test_optimizer_takes_the_new_learning_rate_after_resume(tmp_path):
    from tests.test_training_loop import tiny_kwargs
    from training.training_loop import training_loop
    half = training_loop(**tiny_kwargs(str(tmp_path / 'a'), total_kimg=0.016, network_snapshot_ticks=1))
    kw = tiny_kwargs(str(tmp_path / 'b'), total_kimg=0.024, network_snapshot_ticks=None, resume_snapshot=half.last_snapshot)
    kw.G_opt_kwargs.lr = 0.0005
    out = training_loop(**kw)
    assert out.G_opt.param_groups[0]['lr'] == pytest.approx(0.0005 * 2 / 3)   # lazy-regularisation ratio of interval 2
    assert out.G_opt.state_dict()['state']                                   # the Adam moments came along


def test_architecture_options_that_disagree_with_the_snapshot_are_one_sentence(shapes, istylegan_run, tmp_path):
    line = one_sentence(run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=1', '--cbase=2048']))
    assert '--cbase would change the networks of' in line and 'leave it out' in line
    line = one_sentence(run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=1', '--cfg=auto']))
    assert '--cfg would change the networks' in line
    line = one_sentence(run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=1', '--batch=16']))
    assert 'trained with --batch=8' in line
    line = one_sentence(run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=1', '--model=istylegan',
                             '--lambda-imgsparse=1']))
    assert 'pass --model=cg-gan' in line
    # Given with the snapshot's own value, an architecture option is fine.
    r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--kimg=1', '--cfg=tiny', '--dry-run'])
    assert r.exit_code == 0, r.output


def test_snapshot_of_another_resolution_is_one_sentence(shapes, istylegan_run, tmp_path):
    line = one_sentence(run(['--outdir', str(tmp_path), '--data', shapes[32], '--resume', istylegan_run, '--kimg=1']))
    assert 'was trained at 16x16 but --data is 32x32' in line


def test_negative_lambda_is_a_usage_error(shapes, tmp_path):
    for opt in ('--lambda-imgsparse=-1', '--lambda-sparse=-0.1'):
        r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--model=cg-gan', opt])
        assert r.exit_code == 2 and 'Traceback' not in r.output and 'x>=0' in r.output, r.output


def test_model_change_across_mapping_networks_is_a_transfer_that_never_crashes(shapes, istylegan_run, tmp_path):
    # The --cfg default (auto) would give other shapes; the architecture comes from the snapshot.
    r = run(['--outdir', str(tmp_path), '--data', shapes[16], '--resume', istylegan_run, '--model=stylegan2-ada', '--kimg=0.008', *COMMON])
    assert r.exit_code == 0, r.output
    assert 'starting a new run from its weights' in r.output and 'tensors copied' in r.output

#----------------------------------------------------------------------------

def _pickle_with_augment_pipe(tmp_path, p=0.3):
    from tests.fixtures_nvidia import nvidia_pickle_bytes
    from training.augment import AugmentPipe
    from training.networks import Discriminator, Generator
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=128, channel_max=16))
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1)
    pipe.p.fill_(p)
    path = tmp_path / 'network-snapshot-000100.pkl'
    path.write_bytes(nvidia_pickle_bytes(dict(G=G, D=D, G_ema=G, augment_pipe=pipe)))
    return str(path)


def test_pickle_fine_tune_restores_ada_p_and_uses_nvidia_resume_rule(shapes, tmp_path):
    pkl = _pickle_with_augment_pipe(tmp_path)
    base = ['--outdir', str(tmp_path / 'runs'), '--data', shapes[16], '--resume', pkl, '--batch=8', '--metrics=none']
    c, _desc = train.build_config(_opts(base), explicit={'outdir', 'data', 'resume', 'batch', 'metrics'})
    assert c.resume_pkl == pkl and c.augment_p == pytest.approx(0.3)
    assert c.ada_kimg == 100 and c.ema_rampup is None
    assert c.G_kwargs.synthesis_kwargs.channel_base == 128 and c.G_kwargs.z_dim == 16     # the pickle's architecture
    c, _desc = train.build_config(_opts(base + ['--ada-kimg=500', '--ema-rampup=0.05']),
                                  explicit={'outdir', 'data', 'resume', 'batch', 'metrics', 'ada_kimg', 'ema_rampup'})
    assert c.ada_kimg == 500 and c.ema_rampup == 0.05
    # And it trains: a short transfer run from the pickle starts with the pickle's p.
    r = run(base + ['--kimg=0.008', '--tick=0.008', '--snap=1'])
    assert r.exit_code == 0, r.output
    assert 'ADA p starts at 0.3000' in r.output


def _opts(args):
    ctx = train.main.make_context('train', list(args))
    return dict(ctx.params)

#----------------------------------------------------------------------------

def test_check_data_names_what_does_not_fit():
    import dnnlib
    from training import resume
    data = dnnlib.EasyDict(resolution=16, channels=3, label_dim=3, use_labels=True)
    net = dict(img_resolution=16, img_channels=3, c_dim=3)
    resume.check_data(net, data, 'snap.pt')                                          # fits: no error
    for bad, sentence in [(dict(net, img_channels=1), 'makes 1-channel images but --data has 3 channels'),
                          (dict(net, c_dim=2), 'was trained with 2 domains but --data has 3'),
                          (dict(net, img_resolution=32), 'was trained at 32x32 but --data is 16x16')]:
        with pytest.raises(resume.ResumeError, match=sentence):
            resume.check_data(bad, data, 'snap.pt')
    with pytest.raises(resume.ResumeError, match='is conditional on 3 domains but --data has no labels'):
        resume.check_data(net, dnnlib.EasyDict(data, use_labels=False), 'snap.pt')
    resume.check_data(dict(net, c_dim=2), data, 'snap.pt', domains=False)            # a transfer checks the image shape only


def test_demo_report_without_a_snapshot_is_one_sentence(tmp_path):
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
    import demo_report
    r = CliRunner().invoke(demo_report.main, ['--run', str(tmp_path), '--data', 'x.zip', '--outdir', str(tmp_path / 'out')])
    assert 'No network-snapshot-*.pt under' in one_sentence(r)
