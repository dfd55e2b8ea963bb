"""tools/cg_experiment.py: the base stop rule, the default-lambda rule and the paired statistics."""
import math
import os
import sys

import pytest
from click.testing import CliRunner

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
import cg_experiment as ce  # noqa: E402

#----------------------------------------------------------------------------

def _curve(values):
    return [dict(kimg_name=20 * (i + 1), fd_oracle=v) for i, v in enumerate(values)]


def test_base_stops_only_after_patience_scores_without_gain():
    assert not ce.converged(_curve([500, 400]), min_gain=0.05, patience=2)
    assert not ce.converged(_curve([500, 400, 390, 300]), min_gain=0.05, patience=2)       # last one improved by 23 %
    assert ce.converged(_curve([500, 400, 390, 385]), min_gain=0.05, patience=2)           # < 5 % twice
    assert not ce.converged(_curve([500, 400, 390, 385]), min_gain=0.01, patience=2)       # 2.5 % and 3.75 % count at 1 %
    assert ce.converged(_curve([500, 400, 420, 430]), min_gain=0.0, patience=2)            # got worse


def _summary(fds):
    return {lam: dict(fd_oracle=(fd, 1.0)) for lam, fd in fds.items()}


def test_default_lambda_is_the_largest_within_the_quality_margin():
    assert ce.choose_default(_summary({0.0: 100, 0.1: 101, 1.0: 109, 10.0: 111, 100.0: 300}), margin=0.10) == 1.0
    assert ce.choose_default(_summary({0.0: 100, 0.1: 95, 1.0: 90, 10.0: 105}), margin=0.10) == 10.0
    assert ce.choose_default(_summary({0.0: 100, 0.1: 120, 1.0: 150}), margin=0.10) is None


def test_paired_differences_use_the_same_seed_and_report_the_standard_error():
    scores = []
    for seed, (a, b) in enumerate([(10.0, 12.0), (20.0, 21.0), (30.0, 34.0)]):
        scores.append(dict(lam=0.0, seed=seed, fd_oracle=a))
        scores.append(dict(lam=1.0, seed=seed, fd_oracle=b))
    summary, paired = ce.summarise(scores, [0.0, 1.0])
    assert summary[0.0]['fd_oracle'] == pytest.approx((20.0, 10.0))                      # mean, sample std
    m, se = paired[1.0]['fd_oracle']
    diffs = [2.0, 1.0, 4.0]
    sd = math.sqrt(sum((d - 7 / 3) ** 2 for d in diffs) / 2)
    assert m == pytest.approx(7 / 3) and se == pytest.approx(sd / math.sqrt(3))
    # The unpaired spread (std 10) would hide this effect; the paired one shows it.
    assert se < summary[0.0]['fd_oracle'][1] / 5


def test_lambdas_without_zero_or_negative_are_one_sentence(tmp_path):
    r = CliRunner().invoke(ce.main, ['--outdir', str(tmp_path / 'x'), '--lambdas=0.1,1'])
    assert r.exit_code == 1 and 'must include 0' in r.output and 'Traceback' not in r.output
    r = CliRunner().invoke(ce.main, ['--outdir', str(tmp_path / 'x'), '--lambdas=0,-1'])
    assert r.exit_code == 1 and 'must be >= 0' in r.output

#----------------------------------------------------------------------------

def _dataset(leak, kept, share, fd, gate_ok=True):
    """A fake per-data-set result: {lam: [per-seed values]} -> scores, summary, paired as the tool builds them."""
    scores = []
    for lam in leak:
        for seed in range(3):
            scores.append(dict(lam=lam, seed=seed, leakage=leak[lam][seed], content_kept=kept[lam][seed],
                               style_in_region_share=share[lam][seed], fd_oracle=fd[lam][seed]))
    summary, paired = {}, {}
    for lam in leak:
        rows = [r for r in scores if r['lam'] == lam]
        summary[lam] = {k: ce.mean_std([r[k] for r in rows]) for k in ('leakage', 'content_kept', 'style_in_region_share', 'fd_oracle')}
    for lam in leak:
        if lam > 0:
            paired[lam] = {}
            for k in ('leakage', 'content_kept', 'style_in_region_share', 'fd_oracle'):
                d = [r[k] - next(b[k] for b in scores if b['lam'] == 0 and b['seed'] == r['seed']) for r in scores if r['lam'] == lam]
                m, s = ce.mean_std(d)
                paired[lam][k] = (m, s / math.sqrt(len(d)))
    return dict(runs=scores, summary=summary, paired=paired, gate=(gate_ok, [] if gate_ok else ['style in range 0.5 < 0.8']))


_FD = {0.0: [100, 101, 99], 1.0: [104, 105, 103], 10.0: [150, 160, 155]}    # lambda 10 fails the quality rule
_FLAT = {0.0: [0.5, 0.52, 0.48], 1.0: [0.5, 0.53, 0.47], 10.0: [0.2, 0.2, 0.2]}


def test_decision_rule_effect_shown_refuted_inconclusive_and_gate():
    good = _dataset(leak={0.0: [0.5, 0.6, 0.55], 1.0: [0.3, 0.37, 0.33], 10.0: [0.1, 0.1, 0.1]},
                    kept={0.0: [0.6, 0.62, 0.58], 1.0: [0.7, 0.71, 0.69], 10.0: [0.9] * 3},
                    share={0.0: [0.3, 0.32, 0.31], 1.0: [0.5, 0.52, 0.51], 10.0: [0.9] * 3}, fd=_FD)
    control = _dataset(leak={0.0: [0.5, 0.6, 0.55], 1.0: [0.49, 0.6, 0.54], 10.0: [0.5] * 3}, kept=_FLAT, share=_FLAT, fd=_FD)
    verdict, detail = ce.decide({'patches': good, 'patches-global': control}, margin=0.1)
    assert verdict == 'effect shown' and detail['chosen'] == 1.0          # 10 is never judged: fails quality
    # The same gain on the control: not shown (the term helps whether or not the premise holds).
    verdict, detail = ce.decide({'patches': good, 'patches-global': good}, margin=0.1)
    assert verdict == 'inconclusive' and not detail['lambdas'][1.0]['criteria']['control']
    flat = _dataset(leak=_FLAT, kept=_FLAT, share=_FLAT, fd=_FD)
    assert ce.decide({'patches': flat, 'patches-global': control}, margin=0.1)[0] == 'refuted at this scale'
    # Only content kept moves: neither shown nor refuted.
    some = _dataset(leak=_FLAT, kept={0.0: [0.6, 0.62, 0.58], 1.0: [0.7, 0.71, 0.69], 10.0: [0.9] * 3}, share=_FLAT, fd=_FD)
    assert ce.decide({'patches': some, 'patches-global': control}, margin=0.1)[0] == 'inconclusive'
    failed = dict(good, gate=(False, ['x']))
    assert ce.decide({'patches': failed, 'patches-global': control}, margin=0.1)[0].startswith('no conclusion')
    worse = _dataset(leak=_FLAT, kept=_FLAT, share=_FLAT, fd={0.0: [100] * 3, 1.0: [150] * 3, 10.0: [200] * 3})
    verdict, detail = ce.decide({'patches': worse, 'patches-global': control}, margin=0.1)
    assert verdict == 'inconclusive' and 'quality rule' in detail['reason']


def test_gate_needs_every_class_and_the_style_range():
    names = {'shape': ['square', 'disc']}
    rec = dict(recognised_shape_square=0.45, recognised_shape_square_real=0.5, recognised_shape_disc=0.21,
               recognised_shape_disc_real=0.49, style_in_range=0.85)
    assert ce.gate(rec, names) == (True, [])
    ok, why = ce.gate(dict(rec, recognised_shape_disc=0.1, style_in_range=0.7), names)
    assert not ok and len(why) == 2 and 'disc' in why[0] and 'style in range' in why[1]


def test_unknown_or_repeated_data_sets_are_one_sentence(tmp_path):
    r = CliRunner().invoke(ce.main, ['--outdir', str(tmp_path / 'x'), '--datasets=patches,cubes'])
    assert r.exit_code == 1 and 'unknown built-in data set "cubes"' in r.output
    r = CliRunner().invoke(ce.main, ['--outdir', str(tmp_path / 'x'), '--datasets=patches,patches'])
    assert r.exit_code == 1 and 'each data set once' in r.output


def test_base_run_with_several_data_sets_is_one_sentence(tmp_path):
    r = CliRunner().invoke(ce.main, ['--outdir', str(tmp_path / 'x'), f'--base-run={tmp_path}'])
    assert r.exit_code == 1 and 'pass a single --datasets name' in r.output and 'Traceback' not in r.output
