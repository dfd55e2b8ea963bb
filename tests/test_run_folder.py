"""What a run leaves in its folder: NVIDIA's log.txt (options JSON, G/D tables, fatal errors), the end-of-run
summary, one folder per phase (a fine-tune never overwrites the base's snapshot or options), resume overrides
said once, and tools/plot_stats.py's loss curves."""
import hashlib
import importlib.util
import json
import os

import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
import train
from torch_utils.snapshot import load_snapshot

COMMON = ['--cfg=tiny', '--batch=8', '--metrics=none', '--tick=0.008', '--snap=1', '--aug=noaug']

_spec = importlib.util.spec_from_file_location('plot_stats', os.path.join(os.path.dirname(__file__), '..', 'tools', 'plot_stats.py'))
plot_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_stats)

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def base(tmp_path_factory):
    """A two-step i-StyleGAN run: (data, run folder, its last snapshot, console output)."""
    root = tmp_path_factory.mktemp('runfolder')
    data = str(root / 'shapes-16.zip')
    dataset_tool.convert_dataset('builtin:shapes', data, resolution=16, max_images=32, progress=False)
    out = root / 'runs'
    r = CliRunner().invoke(train.main, ['--outdir', str(out), '--data', data, '--model=istylegan', '--kimg=0.016', *COMMON])
    assert r.exit_code == 0, r.output
    run_dir = next(out.glob('00000-*'))
    return data, run_dir, str(sorted(run_dir.glob('network-snapshot-*.pt'))[-1]), r.output


def _digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()

#----------------------------------------------------------------------------

def test_log_txt_holds_what_nvidias_does_and_the_run_ends_with_a_summary(base):
    _data, run_dir, snap, output = base
    log = (run_dir / 'log.txt').read_text()
    options = json.loads(log[log.index('Training options:\n') + len('Training options:\n'):log.index('\n}\n') + 2])
    assert options == json.loads((run_dir / 'training_options.json').read_text())
    for header in ('Generator', 'Discriminator'):                                     # NVIDIA's summary tables
        assert any(line.split()[:5] == [header, 'Parameters', 'Buffers', 'Output', 'shape'] for line in log.splitlines())
    assert 'mapping.fc0' in log and 'b4.mbstd' in log and log.count('Total ') == 2
    assert f'Final snapshot:      {snap}' in log and 'Elapsed time:' in log and log.rstrip().endswith('Exiting...')
    assert output.count('Final snapshot:') == 1


def test_a_fatal_error_goes_to_log_txt(base, tmp_path, monkeypatch):
    from training import training_loop
    data = base[0]
    def fail(**_kwargs):
        raise training_loop.TrainingError('Loss became NaN or Inf in phase Dmain during tick 3 (kimg 0.1); stopping, no snapshot was written yet.')
    monkeypatch.setattr(training_loop, 'training_loop', fail)
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path), '--data', data, *COMMON])
    assert r.exit_code == 1 and 'Traceback' not in r.output
    log = next(tmp_path.glob('*/log.txt')).read_text()
    assert log.rstrip().endswith('Error: Loss became NaN or Inf in phase Dmain during tick 3 (kimg 0.1); stopping, no snapshot was written yet.')


def test_fine_tune_is_a_new_phase_that_overwrites_nothing(base):
    data, run_dir, snap, _output = base
    outdir = run_dir.parent
    before = {p.name: _digest(p) for p in run_dir.iterdir() if p.name.startswith(('network-snapshot', 'training_options'))}
    r = CliRunner().invoke(train.main, ['--outdir', str(outdir), '--data', data, '--resume', snap, '--lambda_imgsparse=1',
                                        '--kimg=0.024', '--tick=0.008', '--snap=1', '--metrics=none'])
    assert r.exit_code == 0, r.output
    assert {p.name: _digest(p) for p in run_dir.iterdir() if p.name in before} == before   # the base's snapshots and options intact
    new_dir = next(outdir.glob('00001-*'))
    assert '-cg-gan-' in new_dir.name and '-istylegan-' in run_dir.name
    opts = json.loads((new_dir / 'training_options.json').read_text())
    assert opts['resume_snapshot'] == snap and opts['loss_kwargs']['lambda_imgsparse'] == 1
    assert r.output.count('Fine-tuning: continuing the istylegan run as cg-gan') == 1     # notes printed once
    assert (new_dir / 'log.txt').read_text().count('Fine-tuning: continuing') == 1
    assert load_snapshot(str(sorted(new_dir.glob('network-snapshot-*.pt'))[-1]), rebuild_modules=False)['cur_nimg'] == 24


def test_continuing_in_the_run_folder_only_when_nothing_can_be_overwritten(base):
    _data, run_dir, snap, _output = base
    stored = json.loads((run_dir / 'training_options.json').read_text())
    c = train.dnnlib.EasyDict(stored, resume_snapshot=snap, total_kimg=10, kimg_per_tick=4)
    assert train._continued_run_dir(c, str(run_dir.parent)) == str(run_dir)            # next snapshot at kimg >= 1: a new name
    assert train._continued_run_dir(train.dnnlib.EasyDict(c, kimg_per_tick=0.5), str(run_dir.parent)) is None
    assert train._continued_run_dir(train.dnnlib.EasyDict(c, total_kimg=0.5), str(run_dir.parent)) is None
    cg = train.dnnlib.EasyDict(c, loss_kwargs=dict(c.loss_kwargs, lambda_imgsparse=1.0))
    assert train._continued_run_dir(cg, str(run_dir.parent)) is None                   # another model: another phase


def test_augmentation_and_mirror_change_on_resume_as_logged_overrides(base, tmp_path):
    data, _run_dir, snap, _output = base
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path), '--data', data, '--resume', snap, '--kimg=0.024', '--aug=fixed',
                                        '--p=0.3', '--mirror=1', '--dry-run'])
    assert r.exit_code == 0, r.output
    assert r.output.count('Resume: --aug, --p set the augmentation to fixed (p=0.3; xflip, rotate90') == 1
    assert '(the snapshot had none).' in r.output
    assert 'Resume: --mirror=1 sets training_set_kwargs.xflip = True (the snapshot had False)' in r.output
    options = json.loads(r.output[r.output.index('{'):r.output.index('\nOutput directory')])
    assert options['augment_p'] == 0.3 and options['training_set_kwargs']['xflip'] is True and 'ada_target' not in options


def test_plot_stats_draws_the_loss_curves(base, tmp_path):
    _data, run_dir, _snap, _output = base
    out = tmp_path / 'curves.png'
    r = CliRunner().invoke(plot_stats.main, ['--run', str(run_dir), '--out', str(out)])
    assert r.exit_code == 0, r.output
    assert 'Loss/G/loss' in r.output and 'Loss/D/loss' in r.output and 'Loss/G/sparse' in r.output
    with PIL.Image.open(out) as im:
        assert im.size[0] > 300 and im.size[1] > 200
    r = CliRunner().invoke(plot_stats.main, ['--run', str(run_dir), '--keys', 'Nothing/', '--out', str(tmp_path / 'x.png')])
    assert r.exit_code == 1 and "No statistic matches --keys='Nothing/'" in r.output
    (tmp_path / 'stats.jsonl').write_text('not json\n')
    r = CliRunner().invoke(plot_stats.main, ['--stats', str(tmp_path / 'stats.jsonl')])
    assert r.exit_code == 1 and 'Line 1 of' in r.output and 'Traceback' not in r.output
