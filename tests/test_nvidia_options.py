"""NVIDIA's and the i-StyleGAN authors' command lines work here with their meaning (train.py dry runs)."""
import json

import pytest
from click.testing import CliRunner

import dataset_tool
import train

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp('data') / 'shapes.zip'
    dataset_tool.convert_dataset('builtin:shapes', str(path), resolution=16, max_images=24, progress=False)
    return str(path)


def dry_run(tmp_path, *args):
    """The training options train.py would use (parsed from --dry-run), or the one-sentence error."""
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--cfg=tiny', '--metrics=none', '--dry-run', *map(str, args)])
    if r.exit_code != 0:
        assert 'Traceback' not in r.output and r.output.startswith('Error:'), r.output
        return r.output
    text = r.output.split('Training options:', 1)[1].split('Output directory:', 1)[0]
    return json.loads(text)

#----------------------------------------------------------------------------

def test_cond_defaults_to_false_for_stylegan2_ada_and_true_for_flow_models(tmp_path, shapes):
    assert dry_run(tmp_path, '--data', shapes)['training_set_kwargs']['use_labels'] is False      # NVIDIA's default
    assert dry_run(tmp_path, '--data', shapes, '--cond=1')['training_set_kwargs']['use_labels'] is True
    assert dry_run(tmp_path, '--data', shapes, '--model=istylegan')['training_set_kwargs']['use_labels'] is True
    out = dry_run(tmp_path, '--data', shapes, '--model=cg-gan', '--cond=0')
    assert 'conditions its flow on the domain, so it needs --cond=1' in out


def test_authors_underscore_spellings_are_aliases(tmp_path, shapes):
    a = dry_run(tmp_path, '--data', shapes, '--model=cg-gan', '--cond_mode=flow', '--flow_norm=1', '--i_dim=16', '--lambda_sparse=0.2',
                '--lambda_imgsparse=0.3', '--perturb_norm=0.05', '--flow_blocks=3', '--flow_dim=4', '--concat_dim=24')
    b = dry_run(tmp_path, '--data', shapes, '--model=cg-gan', '--cond-mode=flow', '--flow-norm=1', '--i-dim=16', '--lambda-sparse=0.2',
                '--lambda-imgsparse=0.3', '--perturb-norm=0.05', '--flow-blocks=3', '--flow-dim=4', '--concat-dim=24')
    assert a == b
    m = a['G_kwargs']['mapping_kwargs']
    assert (m['i_dim'], m['flow_blocks'], m['flow_dim'], m['embed_features']) == (16, 3, 4, 24)
    assert a['loss_kwargs']['lambda_sparse'] == 0.2 and a['loss_kwargs']['imgsparse_kwargs']['delta'] == 0.05


def test_nvidia_training_options(tmp_path, shapes):
    c = dry_run(tmp_path, '--data', shapes, '--subset=10', '--freezed=2', '--nhwc=1', '--nobench=1', '--allow-tf32=1')
    assert c['training_set_kwargs']['max_size'] == 10
    assert c['D_kwargs']['block_kwargs']['freeze_layers'] == 2
    assert c['G_kwargs']['synthesis_kwargs']['fp16_channels_last'] and c['D_kwargs']['block_kwargs']['fp16_channels_last']
    assert c['cudnn_benchmark'] is False and c['allow_tf32'] is True
    c = dry_run(tmp_path, '--data', shapes)
    assert c['cudnn_benchmark'] is True and c['allow_tf32'] is False and c['training_set_kwargs']['max_size'] == 24
    assert 'exceeds the 24 images' in dry_run(tmp_path, '--data', shapes, '--subset=25')


def test_named_pretrained_networks(tmp_path, shapes, monkeypatch):
    from training import pretrained
    assert pretrained.resolve('noresume') is None and pretrained.resolve('runs/x.pt') == 'runs/x.pt'
    assert set(pretrained.PRETRAINED) == {'ffhq256', 'ffhq512', 'ffhq1024', 'celebahq256', 'lsundog256'}
    assert all(url.startswith('https://nvlabs-fi-cdn.nvidia.com/') and url.endswith('.pkl') for url in pretrained.PRETRAINED.values())
    assert 'resume_pkl' not in dry_run(tmp_path, '--data', shapes, '--resume=noresume')
    monkeypatch.setenv('CGGAN_OFFLINE', '1')
    monkeypatch.setenv('CGGAN_CACHE_DIR', str(tmp_path / 'cache'))
    out = dry_run(tmp_path, '--data', shapes, '--resume=ffhq256')
    assert 'ffhq-res256-mirror-paper256-noaug.pkl' in out and 'CGGAN_OFFLINE is set' in out and out.count('\n') == 1

#----------------------------------------------------------------------------
