"""The training commands of i-StyleGAN's and the CG-GAN authors' READMEs, pasted as written (only the paths
changed): the model their options belong to is trained, the regulariser is in the loss, and the run says
what lambda_imgsparse means here."""
import json
import shlex

import pytest
from click.testing import CliRunner

import dataset_tool
import legacy
import train

# Verbatim from the READMEs (Mid-Push/i-stylegan, jozerozero/Synergy_Disentanglement); <DATA>, <OUT>, <PKL> are the paths.
ISTYLEGAN_README = 'python train.py --outdir=<OUT> --data=<DATA> --gpus=4 --cond_mode=flow --flow_norm=1 --i_dim=256 --lambda_sparse=0.1'
CGGAN_README = ('python train.py --outdir=<OUT> --data=<DATA> --gpus=4 --cond_mode=flow --flow_norm=1 --i_dim=256 --lambda_sparse=0.1 '
                '--lambda_imgsparse=0.1 --perturb_norm=0.1 --resume=<PKL>')
# The command of issue 21 (CPU-sized): the same options on the tiny preset, trained for two steps.
CGGAN_TINY = ('--outdir=<OUT> --data=<DATA> --cfg=tiny --cond_mode=flow --flow_norm=1 --i_dim=32 --lambda_sparse=0.1 '
              '--lambda_imgsparse=0.1 --perturb_norm=0.1 --resume=<PKL> --batch=8 --kimg=0.016 --tick=0.016 --metrics=none --aug=noaug')

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp('readme')
    data = str(root / 'shapes-16.zip')
    dataset_tool.convert_dataset('builtin:shapes', data, resolution=16, max_images=32, progress=False)
    base = root / 'base'
    r = CliRunner().invoke(train.main, ['--outdir', str(base), '--data', data, '--cfg=tiny', '--model=istylegan', '--kimg=0.008',
                                        '--batch=8', '--tick=0.008', '--metrics=none', '--aug=noaug'])
    assert r.exit_code == 0, r.output
    pkl = str(root / 'network-snapshot-019356.pkl')          # an i-StyleGAN-format pickle, as the authors resume from
    legacy.convert_network(str(sorted(base.glob('*/network-snapshot-*.pt'))[-1]), pkl)
    return dict(DATA=data, PKL=pkl, root=root)


def args_of(command, paths, out):
    for key in ('DATA', 'PKL'):
        command = command.replace(f'<{key}>', paths[key])
    words = shlex.split(command.replace('<OUT>', str(out)))
    return words[2:] if words[:2] == ['python', 'train.py'] else words


def dry_run(args):
    r = CliRunner().invoke(train.main, args + ['--dry-run'])
    assert r.exit_code == 0, r.output
    text = r.output
    options = json.loads(text[text.index('{'):text.index('\nOutput directory')])
    return options, text

#----------------------------------------------------------------------------

def test_istylegan_readme_command_trains_istylegan_with_the_mask_loss(paths, tmp_path):
    options, text = dry_run(args_of(ISTYLEGAN_README, paths, tmp_path))
    assert options['G_kwargs']['mapping_kwargs']['class_name'] == 'training.domain_flow.DomainFlowMapping'
    assert options['G_kwargs']['mapping_kwargs']['i_dim'] == 256 and options['loss_kwargs']['lambda_sparse'] == 0.1
    assert 'lambda_imgsparse' not in options['loss_kwargs']
    assert '-istylegan-gpus4-' in text and 'training istylegan (as --model=istylegan)' in text


def test_authors_readme_command_trains_cg_gan_with_l_s_and_says_what_lambda_means(paths, tmp_path):
    options, text = dry_run(args_of(CGGAN_README, paths, tmp_path))
    loss = options['loss_kwargs']
    assert loss['lambda_imgsparse'] == 0.1 and loss['imgsparse_kwargs']['delta'] == 0.1 and loss['lambda_sparse'] == 0.1
    assert options['resume_pkl'] == paths['PKL'] and '-cg-gan-gpus4-' in text
    assert 'training cg-gan (as --model=cg-gan)' in text
    assert "the released code's lambda_imgsparse (0.1) has no equivalent" in text and 'docs/method.md' in text


def test_authors_command_on_the_tiny_preset_puts_l_s_in_the_loss(paths, tmp_path):
    r = CliRunner().invoke(train.main, args_of(CGGAN_TINY, paths, tmp_path))
    assert r.exit_code == 0, r.output
    run_dir = next(tmp_path.glob('*-cg-gan-*'))
    stats = [json.loads(line) for line in open(run_dir / 'stats.jsonl')]
    assert any('Loss/G/imgsparse' in s for s in stats)
    log = (run_dir / 'log.txt').read_text()
    assert log.count('L_s: lambda_imgsparse=0.1 weighs (1/HW)') == 1 and r.output.count('L_s: lambda_imgsparse=0.1') == 1
    assert json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']['lambda_imgsparse'] == 0.1


@pytest.mark.parametrize('extra, words', [
    (['--model=istylegan', '--lambda_imgsparse=0.1'], ["--lambda-imgsparse=0.1 set CG-GAN's Jacobian sparsity loss", 'pass --model=cg-gan']),
    (['--model=stylegan2-ada', '--perturb_norm=0.05'], ["--perturb-norm=0.05 set CG-GAN's", '--model=stylegan2-ada does not have']),
    (['--model=stylegan2-ada', '--cond_mode=flow', '--lambda_sparse=0.1'], ['--cond-mode=flow, --lambda-sparse=0.1 need the flow mapping',
                                                                            'pass --model=istylegan (or cg-gan)']),
])
def test_options_of_another_model_are_one_sentence(paths, tmp_path, extra, words):
    r = CliRunner().invoke(train.main, ['--outdir', str(tmp_path), '--data', paths['DATA'], *extra, '--dry-run'])
    assert r.exit_code == 1 and 'Traceback' not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.output


def test_options_that_choose_nothing_keep_the_default_model(paths, tmp_path):
    options, text = dry_run(['--outdir', str(tmp_path), '--data', paths['DATA'], '--lambda_imgsparse=0', '--cond_mode=concat'])
    assert options['G_kwargs']['mapping_kwargs'].get('class_name') is None and 'Model:' not in text


def test_help_prints_the_default_values():
    r = CliRunner().invoke(train.main, ['--help'], terminal_width=200)
    assert 'presets.' not in r.output
    assert '[default: 1 for cg-gan]' in r.output and '[default: 0.1 for flow models]' in r.output
    assert '--mbstd-group' in r.output
