"""Synthetic study CLI: results lines carry every setting, resume, refusal to merge, calibration feeding the
blind arms, the plan's estimate, the report, and one sentence for bad input."""
import json

import numpy as np

from click.testing import CliRunner

import synthetic
from synthetic_study.grid import todo_cells
from synthetic_study.settings import CALIBRATION, DATA_KEYS, SETTING_KEYS, STAGES, STUDY_KEYS, run_key

TINY = ['--n=4', '--samples=20', '--max-steps=4', '--eval-every=2', '--patience=1', '--hidden=8']
GRID = ['--benchmarks=sparse,dense', '--domains=2', '--seeds=0,1', '--models=ivae,cg_vae_nosparse,cg_vae']

#----------------------------------------------------------------------------

def test_calibrate_sweep_resume_plan_and_report(tmp_path):
    runner = CliRunner()
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + GRID + TINY)
    assert res.exit_code == 0 and 'skipped: not runnable until calibrated (synthetic.py calibrate): cg_vae on dense, cg_vae on sparse' in res.output, res.output
    for bench in ('sparse', 'dense'):
        res = runner.invoke(synthetic.main, ['calibrate', f'--outdir={tmp_path}', f'--benchmark={bench}', '--models=cg_vae',
                                             '--seeds=100,101'] + TINY)
        assert res.exit_code == 0 and f'{bench} cg_vae: alpha = ' in res.output, res.output
    res = runner.invoke(synthetic.main, ['plan', f'--outdir={tmp_path}'] + GRID + TINY)
    assert res.exit_code == 0 and '4 runs to do' in res.output and 'h with 2 processes' in res.output, res.output
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + GRID + TINY)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
    assert len(rows) == 12 and all(set(SETTING_KEYS) <= set(r) and r['n'] == 4 and r['max_steps'] == 4 for r in rows)
    blind = [r for r in rows if r['model'] == 'cg_vae']
    assert {r['alpha_rule'] for r in blind} == {'blind'} and {r['m'] for r in rows} == {8}
    res = runner.invoke(synthetic.main, ['sweep', f'--outdir={tmp_path}'] + GRID + TINY)
    assert res.exit_code == 0 and '0 runs to do' in res.output
    res = runner.invoke(synthetic.main, ['audit', f'--outdir={tmp_path}', '--benchmarks=sparse', '--domains=2', '--seeds=0,1'] + TINY)
    assert res.exit_code == 0 and '| sparse | 4 | 2 | 2 |' in res.output, res.output
    res = runner.invoke(synthetic.main, ['audit', f'--outdir={tmp_path}', '--benchmarks=sparse', '--domains=3', '--seeds=0,1'] + TINY)
    assert '| sparse | 4 | 2 | 2 |' in res.output and '| sparse | 4 | 3 | 2 |' in res.output  # earlier data sets are kept
    res = runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path}'])
    assert res.exit_code == 0 and 'positive control (iVAE, K = 40, A): not run' in res.output
    text = (tmp_path / 'results.md').read_text()
    assert '| cg_vae − ivae |' in text and '| cg_vae − ivae_l1 |' in text and 'Premise audit' in text
    assert '| sparse, cg_vae | ' in text and '| dense, cg_vae | ' in text and 'Blind alpha, rule (a)' in text   # the calibration table and (tmp_path / 'mcc_vs_domains.png').stat().st_size > 1000


def test_calibrate_stops_at_the_first_accepted_alpha_from_the_top_and_every_alpha_agrees(tmp_path):
    runner = CliRunner()
    args = ['calibrate', f'--outdir={tmp_path}', '--models=ivae_l1', '--seeds=100,101'] + TINY
    res = runner.invoke(synthetic.main, args)
    assert res.exit_code == 0, res.output
    chosen = float(res.output.split('sparse ivae_l1: alpha = ')[1].split(' ')[0])
    ran = {json.loads(line)['alpha'] for line in open(tmp_path / 'calibration.jsonl')}
    assert ran == {0.0} | {a for a in CALIBRATION['alphas'] if a >= chosen}       # nothing below the choice trained
    res = runner.invoke(synthetic.main, args + ['--every-alpha'])
    assert res.exit_code == 0 and f'sparse ivae_l1: alpha = {chosen} (' in res.output, res.output
    assert len(open(tmp_path / 'calibration.jsonl').readlines()) == 2 * len(CALIBRATION['alphas'])


def test_sweep_refuses_a_folder_with_other_settings(tmp_path):
    runner = CliRunner()
    args = ['sweep', f'--outdir={tmp_path}', '--benchmarks=sparse', '--domains=2', '--seeds=0', '--models=ivae'] + TINY
    assert runner.invoke(synthetic.main, args).exit_code == 0
    before = (tmp_path / 'results.jsonl').read_bytes()
    for extra, name in (['--lr=0.01'], 'lr'), (['--layers=2'], 'layers'), (['--latent=laplace'], 'latent'):
        res = runner.invoke(synthetic.main, args + extra)
        assert res.exit_code == 1 and f'holds runs with {name}=' in res.output and 'never merged' in res.output
        assert 'Traceback' not in res.output and res.output.count('\n') == 1
    res = runner.invoke(synthetic.main, args[:-len(TINY)] + ['--models=ivae_l1', '--alpha=0.5'] + TINY)
    assert res.exit_code == 0
    res = runner.invoke(synthetic.main, args[:-len(TINY)] + ['--models=ivae_l1', '--alpha=0.2'] + TINY)
    assert res.exit_code == 1 and 'with alpha fixed 0.5, this sweep asks fixed 0.2' in res.output
    assert len((tmp_path / 'results.jsonl').read_bytes()) > len(before)


def test_lines_written_before_first_layer_existed_read_as_support(tmp_path):
    runner = CliRunner()
    args = ['sweep', f'--outdir={tmp_path}', '--benchmarks=sparse', '--domains=2', '--seeds=0', '--models=ivae'] + TINY
    audit = ['audit', f'--outdir={tmp_path}', '--benchmarks=sparse', '--seeds=0'] + TINY
    assert runner.invoke(synthetic.main, args).exit_code == 0 and runner.invoke(synthetic.main, audit + ['--domains=2']).exit_code == 0
    for name in ('results.jsonl', 'audit.jsonl'):                # as the lines of the earlier grid were written
        rows = [json.loads(line) for line in open(tmp_path / name)]
        assert all(r.pop('first_layer') == 'support' for r in rows)
        (tmp_path / name).write_text(''.join(json.dumps(r) + '\n' for r in rows))
    res = runner.invoke(synthetic.main, args)
    assert res.exit_code == 0 and '0 runs to do' in res.output, res.output
    res = runner.invoke(synthetic.main, audit + ['--domains=3'])
    assert res.exit_code == 0 and '| sparse | 4 | 2 | 1 |' in res.output and '| sparse | 4 | 3 | 1 |' in res.output, res.output
    assert runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path}']).exit_code == 0
    res = runner.invoke(synthetic.main, args + ['--first-layer=dense'])
    assert res.exit_code == 1 and "holds runs with first_layer='support', this command asks first_layer='dense'" in res.output


def test_sharded_sweeps_split_the_cells_and_a_run_prints_its_lines(tmp_path):
    runner = CliRunner()
    args = ['sweep', f'--outdir={tmp_path}', '--benchmarks=sparse', '--domains=2,3,4', '--seeds=0', '--models=ivae'] + TINY
    res = runner.invoke(synthetic.main, args + ['--shard=0/2'])
    assert res.exit_code == 0 and '2 runs to do' in res.output, res.output
    # started later, when shard 0 is done: a shard is a fixed part of the grid, not of what is left to do
    res = runner.invoke(synthetic.main, args + ['--shard=1/2'])
    assert res.exit_code == 0 and '1 runs to do' in res.output, res.output
    ks = [json.loads(line)['K'] for f in ('results-0-of-2.jsonl', 'results-1-of-2.jsonl') for line in open(tmp_path / f)]
    assert ks == [2, 4, 3]
    res = runner.invoke(synthetic.main, args + ['--shard=0/2'])  # restarted after the other finished: nothing twice
    assert res.exit_code == 0 and '0 runs to do' in res.output, res.output
    res = runner.invoke(synthetic.main, ['run', '--model=ivae', '--domains=2', '--seeds=4,5'] + TINY)
    lines = [json.loads(line) for line in res.output.strip().splitlines() if line.startswith('{')]
    assert res.exit_code == 0 and [r['seed'] for r in lines] == [4, 5] and lines[0]['ensemble'] == 2
    row = dict(lines[0])
    assert run_key(dict(row, mcc_heldout=0.0)) == run_key(row) != run_key(dict(row, alpha=0.3))


def test_shards_are_disjoint_and_cover_the_grid_whatever_each_saw_done():
    study, data = dict.fromkeys(STUDY_KEYS, 0), {b: dict.fromkeys(DATA_KEYS, 0) for b in {s[1] for s in STAGES}}
    alphas = {(b, arm): dict(alpha_rule='none', alpha=0.0) for _, b, _, arms, _ in STAGES for arm in arms}
    cells = lambda rows, shard=(0, 1): {(b, k, arm, s) for _, b, k, arm, seeds in todo_cells(STAGES, rows, study, data, alphas, 10, shard)
                                        for s in seeds}
    every = sorted(cells([]))
    rng = np.random.default_rng(0)
    done = lambda frac: [dict(benchmark=b, model=arm, K=k, seed=s, **study, **data[b], **alphas[b, arm])
                         for b, k, arm, s in every if rng.random() < frac]
    early, late = done(0.2), done(0.6)  # what each shard found done when it started
    zero, one = cells(early, (0, 2)), cells(late, (1, 2))
    left = cells(early + late)
    assert not (zero & one) and left <= zero | one and zero | one <= set(every)
    assert abs(len(cells([], (0, 2))) - len(cells([], (1, 2)))) < 0.2 * len(every)  # and about half each


def test_bad_input_is_one_sentence(tmp_path):
    runner = CliRunner()
    cases = [
        (['run', '--n=5', '--m=3'], 'observed dims m=3 must be >= latents n=5'),
        (['run', '--n=3', '--support=100,100,001,101'], 'column 1 of the support is empty'),
        (['run', '--n=3', '--support=110,011'], 'observed dims m=2 must be >= latents n=3'),
        (['run', '--n=4', '--support=100,010,001'], 'the support has 3 columns but --n=4'),
        (['calibrate', f'--outdir={tmp_path}', '--alphas=0,-0.1,1'], 'every value must be >= 0.0, got -0.1'),
        (['calibrate', f'--outdir={tmp_path}', '--alphas=0.1,1'], 'the alpha grid must hold 0'),
        (['sweep', f'--outdir={tmp_path}', '--models=vae3'], 'unknown name "vae3"'),
        (['sweep', f'--outdir={tmp_path}', '--shard=2/2'], 'expected i/n'),
        (['run', '--model=cg_vae'], 'no calibration of cg_vae on sparse'),
        (['sweep', f'--outdir={tmp_path / "big"}', '--samples=100000', '--domains=1,200'], 'over the limit'),
        (['run', '--min-row=3', '--max-row=2'], 'need 1 <= min_row <= max_row <= n'),
    ]
    for args, sentence in cases:
        res = runner.invoke(synthetic.main, args)
        assert res.exit_code != 0 and sentence in res.output and 'Traceback' not in res.output, (args, res.output)
    (tmp_path / 'results.jsonl').write_text('not json\n')
    res = runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path}'])
    assert res.exit_code == 1 and 'is not JSON' in res.output
    assert not (tmp_path / 'big').exists()
    (tmp_path / 'results.jsonl').unlink()
    (tmp_path / 'audit.jsonl').write_text('[1, 2]\n')
    res = runner.invoke(synthetic.main, ['report', f'--outdir={tmp_path}'])
    assert res.exit_code == 1 and 'audit.jsonl holds a line that is not a JSON object' in res.output and 'Traceback' not in res.output

#----------------------------------------------------------------------------
