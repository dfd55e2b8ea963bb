"""Issue 21's bad inputs: each one sentence (exit 1, no traceback), nothing written."""
import json
import zipfile

import pytest
import torch
from click.testing import CliRunner

import dataset_tool
import dnnlib
import generate
import projector
import train
from torch_utils import snapshot

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad')
    out = {}
    for name, c_dim in (('plain', 0), ('cg', 3)):
        torch.manual_seed(0)
        mapping = dict(num_layers=2, **(dict(class_name='training.domain_flow.DomainFlowMapping', i_dim=4) if c_dim else {}))
        G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=c_dim,
            img_resolution=8, img_channels=3, synthesis_kwargs=dict(channel_base=64, channel_max=16), mapping_kwargs=mapping)
        out[name] = str(root / f'{name}.pt')
        snapshot.save_snapshot(out[name], dict(G_ema=G.eval(), training_set_kwargs=dict(domain_names=['red', 'green', 'blue'])))
    return out


def one_sentence(result, words):
    assert result.exit_code == 1 and 'Traceback' not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and words in errors[0], result.output
    return errors[0]

#----------------------------------------------------------------------------

@pytest.mark.parametrize('net, args, words', [
    ('cg', ['--domain', '3'], '--domain=3 is out of range: the network has domains 0..2.'),
    ('cg', ['--domain', '-1'], 'unknown domain "-1": use one of red, green, blue or an index 0..2.'),
    ('cg', ['--domain', 'purple'], 'unknown domain "purple"'),
    ('cg', ['--domain', '7', '--swap-grid'], '--swap-grid renders every domain; leave --domain=7 out.'),
    ('cg', ['--domain', '1', '--traverse', '0'], None),                                 # fine: the control case
    ('plain', ['--domain', '5'], '--domain=5: the network is unconditional (it has no domains); leave --domain out.'),
    ('cg', ['--domain', '0', '--device', 'bogus'], '--device=bogus is not a device; use auto, cpu, cuda or cuda:N.'),
    ('cg', ['--domain', '0', '--device', 'cpu:1'], '--device=cpu:1 is not a device'),
])
def test_generate_bad_domain_and_device(nets, tmp_path, net, args, words):
    res = CliRunner().invoke(generate.main, ['--network', nets[net], '--seeds', '0-1', '--outdir', str(tmp_path / 'o'), *args])
    if words is None:
        assert res.exit_code == 0, res.output
        return
    one_sentence(res, words)
    assert not list(tmp_path.rglob('*.png'))


def test_projector_bad_device_is_one_sentence(nets, tmp_path):
    res = CliRunner().invoke(projector.main, ['--network', nets['cg'], '--target', 'x.png', '--outdir', str(tmp_path), '--device', 'gpu'])
    one_sentence(res, '--device=gpu is not a device')


def test_labels_beyond_the_named_domains_do_not_train(tmp_path):
    good = tmp_path / 'good.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(good), resolution=16, max_images=12, progress=False)
    bad = tmp_path / 'bad.zip'
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, 'w') as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == 'dataset.json':
                meta = json.loads(data)
                meta['domains'] = meta['domains'][:2]                                  # labels still go up to 2
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    res = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--data', str(bad), '--model=istylegan', '--dry-run'])
    line = one_sentence(res, 'has domain labels up to 2 but its dataset.json names only 2 domains')
    assert 'rebuild it with dataset_tool.py' in line and not (tmp_path / 'runs').exists()


def test_a_link_loop_in_a_source_tree_lists_each_real_image_once(tmp_path):
    import numpy as np
    import PIL.Image
    src = tmp_path / 'src'
    for i, domain in enumerate(['a', 'a', 'b', 'b']):
        (src / domain).mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(np.full([8, 8, 3], 40 * i, np.uint8)).save(src / domain / f'{i}.png')
    (src / 'a' / 'loop').symlink_to('..')                                             # a/loop -> src: a loop through domain b
    dest = tmp_path / 'out.zip'
    res = CliRunner().invoke(dataset_tool.main, ['--source', str(src), '--dest', str(dest)])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(dest) as z:
        labels = json.loads(z.read('dataset.json'))['labels']
    assert len(labels) == 4 and sorted(label for _name, label in labels) == [0, 0, 1, 1]   # b's images once, in domain b
