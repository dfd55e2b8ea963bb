"""calc_metrics.py: snapshots in, one Markdown table + metric-*.jsonl out; user errors are one sentence."""
import json
import os

import pytest
import torch
from click.testing import CliRunner

import calc_metrics
from tests.test_metrics_main import make_dataset

#----------------------------------------------------------------------------

def _tiny_generator(seed):
    from training.networks import Generator
    torch.manual_seed(seed)
    return Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3,
                     mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    from torch_utils.snapshot import save_snapshot
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    data = make_dataset(tmp_path / 'data', counts=(6, 6))
    make_dataset(tmp_path / 'data16', counts=(2, 2), res=16)
    run = tmp_path / 'run'
    for kimg, seed in ((40, 1), (20, 2)):
        save_snapshot(str(run / f'network-snapshot-{kimg:06d}.pt'), dict(G_ema=_tiny_generator(seed), training_set_kwargs=data))
    return tmp_path, data, run


def _invoke(args):
    return CliRunner().invoke(calc_metrics.main, args, catch_exceptions=False)

#----------------------------------------------------------------------------

def test_table_and_jsonl(setup):
    tmp_path, data, run = setup
    table_file = tmp_path / 'out' / 'table.md'
    res = _invoke(['--metrics=fid1k_full,kid1k_full', f'--run={run}', '--features=random-conv', '--batch=500', '--gpus=0',
                   f'--table={table_file}', '--quiet'])
    assert res.exit_code == 0, res.output
    table = table_file.read_text().strip().splitlines()
    assert table[0] == '| network | fd1k_full@random-conv | kd1k_full@random-conv |'
    assert 'network-snapshot-000020.pt' in table[2] and 'network-snapshot-000040.pt' in table[3]  # by kimg
    assert 'features: random-conv' in table[-1] and 'fid' not in '\n'.join(table).lower()
    assert '\n'.join(table) in res.output
    for name in ('fd1k_full@random-conv', 'kd1k_full@random-conv'):
        recs = [json.loads(l) for l in (run / f'metric-{name}.jsonl').read_text().splitlines()]
        assert [r['snapshot_pkl'] for r in recs] == ['network-snapshot-000020.pt', 'network-snapshot-000040.pt']
        assert all(r['metric'] == name and r['num_images'] == 1000 and r['feature_extractor'] == 'random-conv'
                   and r['reference']['path'] == os.path.abspath(data['path']) and r['reference']['hash'] for r in recs)
        # the value in the table is the value in the record
        cells = [l.split('|') for l in table[2:4]]
        col = 2 if name.startswith('fd') else 3
        assert [float(c[col]) for c in cells] == pytest.approx([r['results'][name] for r in recs], rel=1e-3)


def test_network_glob_and_training_set_from_snapshot(setup):
    tmp_path, data, run = setup
    # no --data: the snapshot's training_set_kwargs name the dataset (and its class)
    res = _invoke(['--metrics=fid1k_full', f'--network={run}/network-snapshot-0000[24]0.pt', '--features=random-conv',
                   '--batch=500', '--gpus=0', f'--jsonl-dir={tmp_path / "j"}', '--quiet'])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / 'j' / 'metric-fd1k_full@random-conv.jsonl').read_text().splitlines()) == 2


@pytest.mark.parametrize('args, sentence', [
    (['--metrics=fid7k'], 'Unknown metric fid7k; choose from'),
    (['--network=/nonexistent/x.pt'], '--network=/nonexistent/x.pt does not exist'),
    (['--network=/nonexistent/*.pt'], 'matches no file'),
    ([], 'No network given'),
    (['--data=/nonexistent/d.zip', '--network=NET'], '--data=/nonexistent/d.zip does not exist'),
    (['--network=NET', '--no-download', '--inception=/nonexistent/inc.pt'], 'Inception weights not found at /nonexistent/inc.pt'),
    (['--network=NET', '--data=DATA16', '--features=random-conv'], 'holds 16x16 images, not 8x8'),
])
def test_user_errors_are_one_sentence(setup, args, sentence):
    tmp_path, _data, run = setup
    args = [a.replace('NET', str(run / 'network-snapshot-000020.pt')).replace('DATA16', str(tmp_path / 'data16')) for a in args]
    res = _invoke(['--gpus=0', '--metrics=fid1k_full'][:2 - any(a.startswith('--metrics') for a in args)] + args)
    assert res.exit_code != 0 and 'Traceback' not in res.output
    err = res.output.splitlines()[-1]  # earlier lines may be progress ('Loading ...')
    assert err.startswith('Error: ') and sentence in err

def test_a_run_folder_of_two_models_is_scored_apart(setup):
    from torch_utils.snapshot import save_snapshot
    tmp_path, data, run = setup
    flow = dict(G_kwargs=dict(mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping')))
    save_snapshot(str(run / 'network-snapshot-000030.pt'), dict(G_ema=_tiny_generator(3), training_set_kwargs=data,
                                                               options=dict(flow, loss_kwargs=dict(lambda_imgsparse=1.0))))
    res = _invoke(['--metrics=fid1k_full', f'--run={run}', '--features=random-conv', '--batch=500', '--gpus=0', '--quiet'])
    assert res.exit_code == 0, res.output
    assert f'Note: {calc_metrics.display_name(str(run))} holds snapshots of 2 models (stylegan2-ada: 2, cg-gan: 1); each model is scored apart' in res.output
    rows = [line.split('|')[1].strip() for line in res.output.splitlines() if line.startswith('| ') and 'network-snapshot' in line]
    assert [r.split(os.sep)[-1] for r in rows] == ['network-snapshot-000020.pt [stylegan2-ada]', 'network-snapshot-000040.pt [stylegan2-ada]',
                                                   'network-snapshot-000030.pt [cg-gan]']
    recs = [json.loads(line) for line in (run / 'metric-fd1k_full@random-conv.jsonl').read_text().splitlines()]
    assert [r['model'] for r in recs] == ['stylegan2-ada', 'cg-gan', 'stylegan2-ada']


def test_help_lists_every_metric_and_legacy_names_are_mapped(setup):
    import re
    from metrics import metric_main
    text = _invoke(['--help']).output
    for name in metric_main.list_valid_metrics():
        assert re.sub(r'^(fid|kid)\d+k', r'\g<1>50k', name) in text, name
    res = _invoke(['--metrics=fid50k,kid50k', '--network=missing.pt'])
    assert "fid50k is NVIDIA's legacy name: computing fid50k_full" in res.output and 'kid50k_full' in res.output

#----------------------------------------------------------------------------


def test_swap1k_metric_through_calc_metric(tmp_path, monkeypatch, capsys):
    """swap1k: the CG-GAN swap metrics through the registry (probe trained once per dataset, memoised)."""
    import dataset_tool
    import dnnlib
    from metrics import metric_main, swap
    data = tmp_path / 'shapes.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(data), resolution=16, max_images=200, progress=False)
    calls, train_probe = [], swap.train_swap_probe
    def small_probe(dataset, device='cpu', **kwargs):
        calls.append(1)
        return train_probe(dataset, device, num_train=200, train_steps=20, batch_size=32, probe_res=16)
    monkeypatch.setattr(swap, 'train_swap_probe', small_probe)
    torch.manual_seed(0)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=3,
        img_resolution=16, img_channels=3, synthesis_kwargs=dict(channel_base=64, channel_max=16),
        mapping_kwargs=dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=2, i_dim=4))
    kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=str(data))
    res = [metric_main.calc_metric('swap1k', G, kwargs, device='cpu', progress=progress) for progress in (True, False)]
    assert len(calls) == 1                                                             # probe reused for the second network
    said = capsys.readouterr().out.splitlines()                                        # progress of the slow parts, named
    assert said == ['swap1k: training the probe on the 200 reals (once per data set; tens of seconds on a CPU) ...',
                    'swap1k: rendering 1000 latents in each of the 3 domains and judging them ...']
    assert res[0].metric == 'swap1k' and set(res[0].results) >= {'swap_domain_acc', 'swap_content_kappa', 'probe_domain_acc_real'}
    assert 0 <= res[0].results.swap_domain_acc <= 1 and 'num_samples' not in res[0].results
    assert res[0].results == res[1].results                                           # seeded: same numbers


def test_swap1k_refuses_an_unconditional_generator(tmp_path):
    import dataset_tool
    import dnnlib
    from metrics import metric_main
    data = tmp_path / 'shapes.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(data), resolution=16, max_images=16, progress=False)
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', z_dim=8, w_dim=8, c_dim=0,
        img_resolution=16, img_channels=3, synthesis_kwargs=dict(channel_base=64, channel_max=16), mapping_kwargs=dict(num_layers=2))
    with pytest.raises(ValueError, match='needs a conditional generator'):
        metric_main.calc_metric('swap1k', G, dict(class_name='training.dataset.ImageFolderDataset', path=str(data)), device='cpu')
