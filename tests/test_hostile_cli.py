"""Every command-line case of issue 12: one sentence, exit 1 (2 for click usage errors), no traceback, no
file run, written or deleted that should not be."""
import json
import os
import zipfile

import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import dataset_tool
import generate
import train
from tests.test_hostile_files import pt_file, sentinel  # noqa: F401 (fixture)
from torch_utils import snapshot

#----------------------------------------------------------------------------

def fails(main, args, match, code=1):
    result = CliRunner().invoke(main, [str(a) for a in args])
    out = result.output
    assert result.exit_code == code, out
    assert 'Traceback' not in out and isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1, out
    assert match in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    """A 32x32 two-domain data set (built-in shapes)."""
    path = tmp_path_factory.mktemp('data') / 'shapes-32.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(path), resolution=32, max_images=16, progress=False, workers=1)
    return str(path)


def _stored_run(tmp_path, data, mutate=None):
    """A snapshot holding the options train.py would store for --cfg=tiny on `data` (no networks needed)."""
    ctx = train.main.make_context('train.py', ['--outdir', str(tmp_path / 'runs'), '--data', data, '--cfg', 'tiny', '--batch', '8'])
    opts = dict(ctx.params)
    opts.pop('dry_run')
    c, _desc = train.build_config(opts)
    options = train.stored_options(c)
    if mutate is not None:
        mutate(options)
    path = tmp_path / 'network-snapshot-000000.pt'
    snapshot.save_snapshot(str(path), dict(options=options, cur_nimg=0, cur_tick=0, batch_idx=0))
    return str(path)

#----------------------------------------------------------------------------
# generate.py, calc_metrics.py with hostile snapshots.

def test_generate_refuses_a_snapshot_naming_a_callable(tmp_path, sentinel):  # noqa: F811
    def mutate(r):
        r['class_name'] = 'training.training_loop.training_loop'
        r['init_kwargs'] = dict(training_set_kwargs=dict(class_name='os.system', command=f'touch {sentinel[0]}'))
    path = pt_file(tmp_path / 'evil.pt', mutate)
    fails(generate.main, [f'--network={path}', '--seeds=0', f'--outdir={tmp_path / "out"}'], 'not a G class of this code')


@pytest.mark.parametrize('bad', ['cycle', 'state_dict'])
def test_generate_refuses_cyclic_kwargs_and_malformed_records(tmp_path, bad):
    def mutate(r):
        if bad == 'cycle':
            loop = []
            loop.append(loop)
            r['init_kwargs']['mapping_kwargs']['x'] = loop
        else:
            r['state_dict'] = [1, 2]
    fails(generate.main, [f'--network={pt_file(tmp_path / "bad.pt", mutate)}', '--seeds=0', f'--outdir={tmp_path}'],
          'cycle' if bad == 'cycle' else 'not a dict of named tensors')


def test_calc_metrics_without_data_refuses_the_snapshots_dataset_class(tmp_path, sentinel):  # noqa: F811
    path = pt_file(tmp_path / 'n.pt', training_set_kwargs=dict(class_name='os.system', command=f'touch {sentinel[0]}'))
    fails(calc_metrics.main, [f'--network={path}', '--features=random-conv', '--gpus=0', '--metrics=fid1k_full'], 'training_set_kwargs')


@pytest.mark.parametrize('args,match,code', [
    (['--seeds=0-99999999'], 'more than 100000 images', 2),
    (['--seeds=0-999999999999'], 'out of range', 2),
    (['--seeds=4294967296'], 'out of range', 2),
    (['--seeds=0', '--trunc=nan'], 'not a finite number', 2),
])
def test_generate_option_bounds(tmp_path, args, match, code):
    fails(generate.main, [f'--network={tmp_path}/none.pt', f'--outdir={tmp_path}'] + args, match, code)


def test_generate_outdir_that_is_a_file(tmp_path):
    path = pt_file(tmp_path / 'g.pt')
    (tmp_path / 'file').write_text('x')
    fails(generate.main, [f'--network={path}', '--seeds=0', f'--outdir={tmp_path / "file"}'], 'is a file')


def test_calc_metrics_unknown_features_and_table_folder_fail_first(tmp_path):
    path = pt_file(tmp_path / 'g.pt')
    fails(calc_metrics.main, [f'--network={path}', '--features=nope.Nope', '--gpus=0'], '--features=nope.Nope is unknown')
    fails(calc_metrics.main, [f'--network={path}', '--features=random-conv', f'--table={tmp_path}', '--gpus=0'], 'is a folder')


def test_killed_generate_leaves_no_visible_temp_images(tmp_path):
    path = pt_file(tmp_path / 'g.pt')
    out = tmp_path / 'out'
    out.mkdir()
    stale = out / '.seed0000.png.cggan-999999999-abcdefgh.tmp'  # pid far above pid_max: its writer is gone
    stale.write_bytes(b'half')
    mine = out / 'notes.tmp'
    mine.write_text('user file')
    result = CliRunner().invoke(generate.main, [f'--network={path}', '--seeds=0-1', f'--outdir={out}'])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ['notes.tmp', 'seed0000.png', 'seed0001.png']

#----------------------------------------------------------------------------
# train.py.

@pytest.mark.parametrize('mutate,match', [
    (lambda o: o['augment_kwargs'].update(class_name='os.system'), 'augment_kwargs'),
    (lambda o: o['G_kwargs'].update(class_name='training.training_loop.training_loop'), 'G_kwargs'),
    (lambda o: o['loss_kwargs'].update(class_name='tarfile.open'), 'loss_kwargs'),
    (lambda o: o['G_opt_kwargs'].update(class_name='logging.basicConfig'), 'G_opt_kwargs'),
    (lambda o: o.update(progress_fn='os.system'), 'unknown key'),
])
def test_train_resume_takes_class_names_only_from_the_allow_list(tmp_path, shapes, mutate, match):
    path = _stored_run(tmp_path, shapes, mutate)
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', shapes, '--resume', path, '--batch', '8', '--dry-run'], match)


@pytest.mark.parametrize('kind', ['pt', 'pkl'])
def test_train_transfer_from_a_hostile_file_fails_before_the_run_starts(tmp_path, shapes, sentinel, kind):  # noqa: F811
    from tests.test_hostile_files import nvidia_pkl
    if kind == 'pt':
        path = pt_file(tmp_path / 'w.pt', lambda r: r.update(class_name='os.system', init_kwargs=dict(command=f'touch {sentinel[0]}')))
    else:
        path = nvidia_pkl(tmp_path / 'w.pkl', mapping_kwargs=dict(class_name='logging.basicConfig', filename=str(sentinel[1]), filemode='w'))
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', shapes, '--cfg', 'tiny', '--resume', path], 'class of this code')
    assert not (tmp_path / 'runs').exists()


def test_train_resume_with_nested_settings_this_code_does_not_take(tmp_path, shapes):
    path = _stored_run(tmp_path, shapes, lambda o: o['D_kwargs'].setdefault('block_kwargs', {}).update(bogus=1))
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', shapes, '--resume', path, '--batch', '8', '--metrics', 'none'],
          'do not fit this code')


def test_train_resume_of_another_resolution(tmp_path, shapes):
    path = _stored_run(tmp_path, shapes, lambda o: o['training_set_kwargs'].update(resolution=64))
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', shapes, '--resume', path, '--batch', '8', '--dry-run'], 'trained on 64 px images')


def test_train_resume_accepts_its_own_options(tmp_path, shapes):
    path = _stored_run(tmp_path, shapes)
    result = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--data', shapes, '--resume', path, '--batch', '8', '--dry-run'])
    assert result.exit_code == 0 and 'Dry run' in result.output, result.output


@pytest.mark.parametrize('option', ['--gamma=nan', '--glr=inf', '--kimg=nan', '--target=nan'])
def test_train_non_finite_numbers(tmp_path, shapes, option):
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', shapes, '--cfg', 'tiny', option, '--dry-run'], 'not a finite number', 2)


def test_train_outdir_that_is_a_file(tmp_path, shapes):
    (tmp_path / 'file').write_text('x')
    fails(train.main, ['--outdir', tmp_path / 'file', '--data', shapes, '--cfg', 'tiny', '--dry-run'], 'is a file')


def test_train_desc_stays_inside_outdir_and_stale_temp_files_go(tmp_path, shapes):
    runs = tmp_path / 'runs'
    (runs / '00000-old').mkdir(parents=True)
    stale = [runs / '00000-old' / '.network-snapshot-000040.pt.k2j3h4g5.tmp', runs / '00000-old' / 'fakes000040.png.tmp999999999.png',
             runs / '00000-old' / '.network-snapshot-000080.pt.cggan-999999999-abcdefgh.tmp']
    keep = [runs / '00000-old' / 'network-snapshot-000040.pt', runs / '00000-old' / '.notes.tmp',
            runs / '00000-old' / f'.network-snapshot-000120.pt.cggan-{os.getpid()}-abcdefgh.tmp']  # a live writer's
    for p in stale + keep:
        p.write_bytes(b'x')
    result = CliRunner().invoke(train.main, ['--outdir', str(runs), '--data', shapes, '--cfg', 'tiny', '--desc', '/../../x', '--dry-run'])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith('Output directory:'))
    run_dir = line.split(':', 1)[1].strip()
    assert os.path.dirname(os.path.abspath(run_dir)) == str(runs) and '/' not in os.path.basename(run_dir)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


def _zip_with(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info.filename)))


def test_train_corrupt_png_inside_the_zip(tmp_path, shapes):
    with zipfile.ZipFile(shapes) as z:
        last = sorted(n for n in z.namelist() if n.endswith('.png'))[-1]
    _zip_with(shapes, tmp_path / 'corrupt.zip', {last: b'\x89PNG\r\n\x1a\n' + b'\x00' * 40})
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', tmp_path / 'corrupt.zip', '--cfg', 'tiny', '--batch', '16',
                       '--kimg', '0.016', '--metrics', 'none', '--aug', 'noaug', '--snap', '1000'], 'Cannot read image')


@pytest.mark.parametrize('labels,match', [(1.5, 'neither domain integers'), ('a', 'neither domain integers'), (10**12, 'domain labels are integers')])
def test_train_bad_labels(tmp_path, shapes, labels, match):
    with zipfile.ZipFile(shapes) as z:
        meta = json.loads(z.read('dataset.json'))
    meta['labels'][0][1] = labels
    _zip_with(shapes, tmp_path / 'labels.zip', {'dataset.json': json.dumps(meta).encode()})
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', tmp_path / 'labels.zip', '--cfg', 'tiny', '--dry-run'], match)

#----------------------------------------------------------------------------
# dataset_tool.py.

def _images(root, n=4):
    import numpy as np
    import PIL.Image
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        PIL.Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(os.path.join(root, f'{i}.png'))


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_dataset_tool_dest_is_the_source(tmp_path):
    _images(tmp_path / 'src')
    before = _tree(tmp_path / 'src')
    fails(dataset_tool.main, ['--source', tmp_path / 'src', '--dest', tmp_path / 'src', '--overwrite'], 'is the --source')
    assert _tree(tmp_path / 'src') == before


def test_dataset_tool_dest_contains_the_source(tmp_path):
    _images(tmp_path / 'parent' / 'src')
    fails(dataset_tool.main, ['--source', tmp_path / 'parent' / 'src', '--dest', tmp_path / 'parent', '--overwrite'], 'contains the --source')
    assert len(_tree(tmp_path / 'parent')) == 4


@pytest.mark.parametrize('kind', ['folder', 'zip', 'file'])
def test_dataset_tool_overwrite_only_replaces_our_output(tmp_path, kind):
    _images(tmp_path / 'src')
    dest = tmp_path / ('mine.zip' if kind != 'folder' else 'mine')
    if kind == 'folder':
        _images(dest, 2)
    elif kind == 'zip':
        with zipfile.ZipFile(dest, 'w') as z:
            z.writestr('dataset.json', '{"labels": null}')  # looks like a data set, but not one we wrote
    else:
        dest.write_text('precious')
    before = _tree(tmp_path)
    fails(dataset_tool.main, ['--source', tmp_path / 'src', '--dest', dest, '--overwrite'], 'not a data set written by this tool')
    assert _tree(tmp_path) == before


def test_dataset_tool_unwritable_dest(tmp_path):
    _images(tmp_path / 'src')
    fails(dataset_tool.main, ['--source', tmp_path / 'src', '--dest', '/proc/x.zip'], 'Cannot write --dest')


def test_dataset_tool_symlink_loop_and_links_out_of_the_tree(tmp_path):
    _images(tmp_path / 'src' / 'a')
    os.symlink(tmp_path / 'src', tmp_path / 'src' / 'a' / 'loop')
    os.symlink(tmp_path / 'src' / 'a', tmp_path / 'src' / 'a' / 'again')
    result = CliRunner().invoke(dataset_tool.main, ['--source', str(tmp_path / 'src'), '--dest', str(tmp_path / 'o.zip')])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / 'o.zip') as z:
        assert len([n for n in z.namelist() if n.endswith('.png')]) == 4
    _images(tmp_path / 'outside', 1)
    os.symlink(tmp_path / 'outside', tmp_path / 'src' / 'b')
    fails(dataset_tool.main, ['--source', tmp_path / 'src', '--dest', tmp_path / 'p.zip'], 'outside the source tree')


def test_dataset_tool_removes_what_a_killed_run_left_and_nothing_else(tmp_path):
    _images(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    (out / '.d.zip.cggan-999999999-abcdefgh.tmp').write_bytes(b'half a zip')
    (out / '.d.cggan-999999999-abcdefgh.tmp' / '00000').mkdir(parents=True)
    (out / '.d.cggan-999999999-abcdefgh.tmp' / '00000' / 'img00000000.png').write_bytes(b'x')
    (out / '.keep.tmp').write_text('mine')
    (out / '.backup.2024-abcdefgh.tmp').write_text('mine')
    (out / 'notes.999999999-abcdefgh.txt').write_text('mine')
    result = CliRunner().invoke(dataset_tool.main, ['--source', str(tmp_path / 'src'), '--dest', str(out / 'd.zip')])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ['.backup.2024-abcdefgh.tmp', '.keep.tmp', 'd.zip', 'notes.999999999-abcdefgh.txt']


def test_dataset_tool_celeba_image_linked_from_outside(tmp_path):
    _celeba(tmp_path / 'c', ['0.png', '1.png'], [['1'] * 40, ['-1'] * 40])
    _images(tmp_path / 'elsewhere', 1)
    os.remove(tmp_path / 'c' / 'img_align_celeba' / '1.png')
    os.symlink(tmp_path / 'elsewhere' / '0.png', tmp_path / 'c' / 'img_align_celeba' / '1.png')
    fails(dataset_tool.main, ['--source', tmp_path / 'c', '--dest', tmp_path / 'c.zip', '--domains', 'Male'], 'outside the source tree')


def _celeba(root, names, rows):
    from tests.test_dataset_tool import CELEBA_ATTRS
    os.makedirs(root / 'img_align_celeba')
    _images(root / 'img_align_celeba', 2)
    lines = [str(len(rows)), ' '.join(CELEBA_ATTRS)] + [f'{n} ' + ' '.join(r) for n, r in zip(names, rows)]
    (root / 'list_attr_celeba.txt').write_text('\n'.join(lines) + '\n')


def test_dataset_tool_celeba_domain_count_and_duplicate_images(tmp_path):
    from tests.test_dataset_tool import CELEBA_ATTRS
    _celeba(tmp_path / 'c', ['0.png', '1.png'], [['1'] * 40, ['-1'] * 40])
    fails(dataset_tool.main, ['--source', tmp_path / 'c', '--dest', tmp_path / 'c.zip', '--domains', ','.join(CELEBA_ATTRS)], 'at most 10')
    _celeba(tmp_path / 'd', ['0.png', '0.png'], [['1'] * 40, ['-1'] * 40])
    fails(dataset_tool.main, ['--source', tmp_path / 'd', '--dest', tmp_path / 'd.zip', '--domains', 'Male'], 'listed a second time')

#----------------------------------------------------------------------------

def test_train_zip_bomb_image_is_not_inflated(tmp_path, shapes):
    with zipfile.ZipFile(shapes) as zin, zipfile.ZipFile(tmp_path / 'bomb.zip', 'w') as zout:
        first = sorted(n for n in zin.namelist() if n.endswith('.png'))[0]
        for info in zin.infolist():
            if info.filename != first:
                zout.writestr(info, zin.read(info.filename))
        info = zipfile.ZipInfo(first)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, 'w', force_zip64=True) as f:  # 300 MB of zeros, deflated to about 300 KB
            for _ in range(300):
                f.write(bytes(1 << 20))
    assert os.path.getsize(tmp_path / 'bomb.zip') < 2 << 20
    fails(train.main, ['--outdir', tmp_path / 'runs', '--data', tmp_path / 'bomb.zip', '--cfg', 'tiny', '--dry-run'], 'more than the limit')

#----------------------------------------------------------------------------

def test_dataset_tool_mnist_gzip_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    import gzip
    from datasets import mnist
    monkeypatch.setattr(mnist, 'MAX_IDX_BYTES', 4096)  # the real limit is 1 GiB; the mechanism is the same
    (tmp_path / 'm').mkdir()
    with gzip.open(tmp_path / 'm' / 'train-images-idx3-ubyte.gz', 'wb') as f:
        f.write(bytes([0, 0, 8, 3]) + (1000).to_bytes(4, 'big') + (28).to_bytes(4, 'big') * 2 + bytes(28 * 28 * 1000))
    with gzip.open(tmp_path / 'm' / 'train-labels-idx1-ubyte.gz', 'wb') as f:
        f.write(bytes([0, 0, 8, 1]) + (1000).to_bytes(4, 'big') + bytes(1000))
    fails(dataset_tool.main, ['--source', tmp_path / 'm', '--dest', tmp_path / 'm.zip'], 'more than 4096 bytes')


def test_calc_metrics_without_data_refuses_a_stored_path_that_is_no_data_set(tmp_path):
    from tests.test_hostile_files import small_G
    path = tmp_path / 'g.pt'
    snapshot.save_snapshot(str(path), dict(G_ema=small_G(), training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='/')))
    fails(calc_metrics.main, [f'--network={path}', '--features=random-conv', '--gpus=0', '--metrics=fid1k_full'], 'neither a .zip')

#----------------------------------------------------------------------------

def test_train_resume_latest_ignores_symlink_loops(tmp_path, shapes):
    runs = tmp_path / 'runs'
    (runs / '00000-a').mkdir(parents=True)
    os.symlink(runs, runs / '00000-a' / 'loop')
    fails(train.main, ['--outdir', runs, '--data', shapes, '--cfg', 'tiny', '--resume', 'latest', '--dry-run'], 'found no network-snapshot')

#----------------------------------------------------------------------------
