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
