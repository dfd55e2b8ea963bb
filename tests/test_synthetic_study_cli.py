"""Synthetic study CLI: results lines carry every setting, resume key, refusal to merge other settings, bad input."""
import json

from click.testing import CliRunner

import synthetic
from synthetic_study.cli import SETTING_KEYS, run_key

ARGS = ['--models=cg_vae,ivae', '--domains=2,1', '--benchmarks=hard,easy', '--seeds=0', '--samples=20', '--steps=3', '--n=4']

#----------------------------------------------------------------------------

def test_sweep_writes_every_setting_resumes_and_reports(tmp_path):
    runner = CliRunner()
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
    assert len(rows) == 8 and [(r['benchmark'], r['K'], r['model']) for r in rows[:3]] == [('hard', 2, 'cg_vae'), ('hard', 2, 'ivae'), ('hard', 1, 'cg_vae')]
    assert all(set(SETTING_KEYS) <= set(r) and r['steps'] == 3 and r['n'] == 4 for r in rows)
    assert {r['m'] for r in rows} == {4} and {r['density'] for r in rows if r['benchmark'] == 'hard'} == {0.6}
    assert all(0 <= r['mcc_heldout'] <= 1 and 0 <= r['mcc_observed'] <= 1 and r['heldout_nelbo'] == r['heldout_nelbo'] for r in rows)
    text = (tmp_path / 'results.md').read_text()
    assert '### hard benchmark (m=4, density=0.6' in text and '| MCC of x itself |' in text and 'Paired difference cg_vae minus model' in text
    assert (tmp_path / 'mcc_vs_domains.png').stat().st_size > 1000
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS)
    assert res.exit_code == 0 and '0 runs to do, 8 already' in res.output
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS + ['--seeds=1', '--models=ivae', '--domains=1', '--benchmarks=dense'])
    assert res.exit_code == 0 and '1 runs to do, 8 already' in res.output  # other grid cells, same settings: added


def test_sweep_refuses_a_folder_with_other_settings(tmp_path):
    runner = CliRunner()
    assert runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS).exit_code == 0
    before = (tmp_path / 'results.jsonl').read_bytes()
    for extra, name in (['--alpha=0.5'], 'alpha'), (['--lr-schedule=constant'], 'lr_schedule'), (['--layers=3'], 'layers'):
        res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS + extra)
        assert res.exit_code == 1 and f'holds runs with {name}=' in res.output and 'never merged' in res.output
        assert 'Traceback' not in res.output and res.output.count('\n') == 1
    assert (tmp_path / 'results.jsonl').read_bytes() == before


def test_run_prints_one_line_with_the_elbo_curve():
    res = CliRunner().invoke(synthetic.main, ['run', '--model=ivae', '--benchmark=dense', '--domains=2', '--n=4', '--samples=20',
                                              '--steps=1200', '--curve'])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output.strip().splitlines()[-1])
    assert row['model'] == 'ivae' and row['benchmark'] == 'dense' and row['density'] == 1.0 and row['steps'] == 1200
    curve = row['train_nelbo_per_1000_steps']
    assert len(curve) == 2 and curve[-1] < curve[0]  # windows 0-999 and 1000-1199; training lowers it


def test_run_key_holds_every_setting():
    row = {k: 0 for k in SETTING_KEYS}
    row.update(benchmark='hard', model='cg_vae', K=2, seed=0)
    keys = {run_key(row)}
    for k in SETTING_KEYS + ('benchmark', 'model', 'K', 'seed'):
        keys.add(run_key(dict(row, **{k: 'other'})))
    assert len(keys) == len(SETTING_KEYS) + 5
    assert run_key(dict(row, mcc_heldout=0.9, seconds=3)) == run_key(row)  # results are not part of the key


def test_bad_input_is_one_sentence(tmp_path):
    runner = CliRunner()
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}', '--models=vae3'])
    assert res.exit_code == 2 and 'unknown name "vae3"' in res.output and 'Traceback' not in res.output
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}', '--benchmarks=medium'])
    assert res.exit_code == 2 and 'unknown name "medium"' in res.output
    res = runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path / "empty"}'])
    assert res.exit_code == 1 and 'no results' in res.output
    (tmp_path / 'results.jsonl').write_text('{"model": "cg_vae"}\n')
    res = runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path}'])
    assert res.exit_code == 1 and 'line 1' in res.output and 'lacks' in res.output
    (tmp_path / 'results.jsonl').write_text('not json\n')
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + ARGS)
    assert res.exit_code == 1 and 'is not JSON' in res.output and (tmp_path / 'results.jsonl').read_text() == 'not json\n'
    res = runner.invoke(synthetic.main, ['run', '--n=2'])
    assert res.exit_code == 2 and 'Traceback' not in res.output
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path / "big"}', '--samples=100000', '--domains=1,200'])
    assert res.exit_code == 2 and 'over the limit' in res.output and not (tmp_path / 'big').exists()

#----------------------------------------------------------------------------
