"""Statistics of the synthetic study: t intervals against scipy, pairing by seed, the blind alpha rule (a),
the report's cells and the decision rule of docs/synthetic.md."""
import math

import numpy as np
import pytest
import scipy.stats

from synthetic_study.grid import GridError, calibrated_alpha
from synthetic_study.report import apart, audit_table, calibration_table, confirmation, decision, dense_control, summarise
from synthetic_study.settings import CALIBRATION
from synthetic_study.settings import SETTING_KEYS
from synthetic_study.stats import blind_alpha, mean_interval, paired_differences

#----------------------------------------------------------------------------

@pytest.mark.parametrize('level', [0.9, 0.95])
def test_mean_interval_matches_scipy(level):
    v = np.random.default_rng(0).normal(0.8, 0.05, size=5)
    mean, half, count = mean_interval(v, level)
    lo, hi = scipy.stats.t.interval(level, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert count == 5 and mean == pytest.approx(v.mean())
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)


def test_mean_interval_single_value_and_errors():
    mean, half, count = mean_interval([0.7])
    assert mean == 0.7 and math.isnan(half) and count == 1
    with pytest.raises(ValueError, match='non-empty'):
        mean_interval([])


def test_paired_differences_use_common_seeds_only():
    assert paired_differences({0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.5, 2: 0.6, 3: 0.1}) == pytest.approx([0.3, 0.1])

#----------------------------------------------------------------------------

def test_blind_alpha_takes_the_largest_alpha_within_tolerance():
    base = {s: 10.0 + s for s in range(5)}
    val = {0.0: base,
           0.01: {s: v + 0.01 for s, v in base.items()},                          # within the 0.05 floor
           0.1: {s: v + 0.04 + 0.001 * s for s, v in base.items()},               # still within
           0.3: {s: v + 0.2 for s, v in base.items()},                            # 0.2 nats worse: rejected
           1.0: {s: v + (0.3 if s % 2 else -0.2) for s, v in base.items()}}       # mean +0.06, SE 0.12: within 2 SE
    alpha, table = blind_alpha(val)
    assert alpha == 1.0 and not table[0.3][2] and table[0.1][2]
    del val[1.0]
    assert blind_alpha(val)[0] == 0.1
    with pytest.raises(ValueError, match='alpha = 0'):
        blind_alpha({0.1: base})

#----------------------------------------------------------------------------

def test_calibration_table_shows_each_alpha_the_refusals_and_the_choice():
    rows = [dict(benchmark='nongauss', model='ivae_l1', alpha=a, seed=s, val_nelbo=10.0 + s + (0.0 if a <= 0.1 else 1.0 + 0.1 * s))
            for a in CALIBRATION['alphas'] for s in range(5)]
    rows += [dict(benchmark='nongauss', model='cg_vae', alpha=0.0, seed=s, val_nelbo=10.0) for s in range(5)]
    lines = calibration_table(rows).splitlines()
    assert lines[0] == '| benchmark, arm | ' + ' | '.join(f'{a:g}' for a in CALIBRATION['alphas'] if a > 0) + ' | alpha |'
    cg, il1 = lines[2], lines[3]                                               # arm order: cg_vae first
    assert 'incomplete' in cg
    assert il1.startswith('| nongauss, ivae_l1 | +0.000 (0.000) |') and il1.endswith('| 0.1 |')
    assert '+1.200 (0.071) ✗' in il1 and il1.count('✗') == 2                   # 0.3 and 1 refused


def _row(model, k, seed, mcc, bench='sparse', **extra):
    row = {key: 1 for key in SETTING_KEYS}
    row.update(benchmark=bench, model=model, K=k, seed=seed, n=5, mcc_heldout=mcc, mcc_observed=0.6, seconds=1.0,
               **{m: 0.0 for m in ('mcc_heldout_spearman', 'gain_over_x', 'support_f1', 'heldout_nelbo', 'l1_fit', 'alpha_used', 'best_step')})
    row.update(extra)
    return row


def test_calibration_read_from_the_largest_alpha_down_chooses_as_the_full_grid():
    rng = np.random.default_rng(0)
    for _ in range(200):  # random validation tables: rule (a) on every alpha against the alphas calibrate trains
        shift = {a: rng.choice([0.0, 0.02, 0.5, 3.0]) for a in CALIBRATION['alphas'] if a > 0}
        rows = [dict(benchmark='sparse', model='ivae_l1', alpha=a, seed=s, val_nelbo=10.0 + rng.normal(0, 0.01) + shift.get(a, 0.0))
                for a in CALIBRATION['alphas'] for s in range(5)]
        full = blind_alpha({a: {r['seed']: r['val_nelbo'] for r in rows if r['alpha'] == a} for a in CALIBRATION['alphas']})[0]
        assert calibrated_alpha(rows, 'sparse', 'ivae_l1')[0] == full
        trained = [r for r in rows if r['alpha'] == 0.0 or r['alpha'] >= full]
        assert calibrated_alpha(trained, 'sparse', 'ivae_l1')[0] == full
        if 0 < full < max(CALIBRATION['alphas']):  # an alpha above the choice missing: incomplete, whatever ran below
            gap = [r for r in rows if r['alpha'] != max(CALIBRATION['alphas'])]
            with pytest.raises(GridError, match=f'incomplete [(]alpha {max(CALIBRATION["alphas"])} not run[)]'):
                calibrated_alpha(gap, 'sparse', 'ivae_l1')


def test_a_calibration_with_no_finite_nelbo_at_alpha_0_is_one_sentence():
    rows = [dict(benchmark='sparse', model='ivae_l1', alpha=a, seed=s, val_nelbo=math.nan if a == 0.0 else 10.0)
            for a in CALIBRATION['alphas'] for s in range(5)]
    with pytest.raises(GridError, match='^the calibration of ivae_l1 on sparse has no finite validation nELBO at alpha = 0$'):
        calibrated_alpha(rows, 'sparse', 'ivae_l1')


def test_calibration_table_marks_the_alphas_calibrate_skipped():
    rows = [dict(benchmark='sparse', model='ivae_l1', alpha=a, seed=s, val_nelbo=10.0 + 0.01 * s) for a in (0.0, 1.0) for s in range(5)]
    row = calibration_table(rows).splitlines()[2]
    assert row.endswith('| +0.000 (0.000) | 1 |') and row.count('| – ') == len(CALIBRATION['alphas']) - 2


def test_summary_keeps_settings_apart():
    rows = [_row('ivae', 2, s, 0.7) for s in range(3)] + [_row('ivae', 2, 0, 0.1, max_steps=10)]
    cells = {(e['model'], e['settings']['max_steps']): e for e in summarise(rows)}
    assert cells['ivae', 1]['seeds'] == [0, 1, 2] and cells['ivae', 10]['mcc_heldout'][:1] == (0.1,)


def _grid(gain_a, gain_c, gain_large, seeds=10, control=0.95):
    rng = np.random.default_rng(0)
    rows = [_row('ivae', 40, s, control) for s in range(5)]
    for bench, gain, ks in (('sparse', gain_a, (2, 3, 4)), ('dense', gain_c, (2, 3, 4)), ('sparse', gain_large, (11, 20, 40))):
        for k in ks:
            for s in range(seeds):
                base = 0.7 + 0.05 * rng.standard_normal()
                data = dict(density=0.5) if bench == 'dense' else {}  # C has its own data settings, as in the study
                rows += [_row(m, k, s, base + 0.01 * rng.standard_normal(), bench, **data) for m in ('cg_vae_nosparse', 'ivae', 'sparse_only', 'ivae_l1')
                         if not (m == 'ivae' and k == 40)]
                rows.append(_row('cg_vae', k, s, base + gain + 0.01 * rng.standard_normal(), bench, **data))
    return rows


def test_decision_rule_supported_refuted_and_not_decided():
    assert decision(_grid(0.1, 0.0, 0.0))[1].endswith('-> supported')
    assert decision(_grid(0.1, 0.1, 0.0))[1].endswith('-> refuted')          # C shows the same gain
    assert decision(_grid(0.0, 0.0, 0.0))[1].endswith('-> refuted')          # no K in 2-4 shows it (K = 1 never ran: not needed)
    assert decision(_grid(0.1, 0.0, 0.2))[1].endswith('-> not decided')      # the gain does not shrink
    assert decision(_grid(0.03, 0.0, 0.0))[1].endswith('-> refuted')         # below 0.05 MCC
    lines = decision(_grid(0.1, 0.0, 0.0, control=0.8))
    assert 'failed' in lines[0] and lines[1].endswith('-> not decided')     # no claim without the positive control
    partial = [r for r in _grid(0.0, 0.0, 0.0) if not (r['model'] == 'cg_vae' and r['K'] == 4)]
    assert decision(partial)[1].endswith('not run: cg_vae K=4 -> not decided')



@pytest.mark.parametrize('mcc, status', [(0.95, 'passed'), (0.8, 'failed')])
def test_c_has_its_own_positive_control_which_qualifies_but_never_changes_the_verdict(mcc, status):
    rows = _grid(0.1, 0.0, 0.0) + [_row('ivae', 40, s, mcc, 'dense', density=0.5) for s in range(5)]
    lines = decision(rows)
    assert lines[1] == f'  C\'s own control (iVAE, K = 40, C; qualifies "absent on C" when failed): {status} (MCC {mcc:.3f} over 5 seeds)'
    assert len(lines) > 2 and all(line.endswith('-> supported') for line in lines[2:])   # the rule as fixed reads C at K* only
    other_size = [dict(r, m=20) if r['benchmark'] == 'dense' and r['K'] == 40 else r for r in rows]
    assert not any('own control' in line for line in decision(other_size))  # C pairs with A of the same size only

def _dense_first(gain_of_seed, control=0.95, drop=()):
    """E: the four arms of the gain test at K = 2, 3, 4 (seeds 0-9), cg_vae gaining gain_of_seed(seed), and E's
    own positive control; its own data settings (first_layer) as in the study."""
    rng = np.random.default_rng(3)
    rows = [_row('ivae', 40, s, control, 'dense_first', first_layer='dense') for s in range(5)]
    for k in (2, 3, 4):
        for s in range(10):
            base = 0.7 + 0.05 * rng.standard_normal()
            rows += [_row(m, k, s, base + (gain_of_seed(s) if m == 'cg_vae' else 0.0) + 0.005 * rng.standard_normal(),
                          'dense_first', first_layer='dense')
                     for m in ('cg_vae_nosparse', 'ivae', 'sparse_only', 'ivae_l1', 'cg_vae') if (m, k) not in drop]
    return rows


def test_e_is_read_at_the_gains_of_a_by_its_fixed_reading():
    a = _grid(0.1, 0.0, 0.0)                                                   # cg_vae shows a 0.1 gain on A at K = 2, 3, 4
    appears = dense_control(a + _dense_first(lambda s: 0.1))
    assert appears[0].startswith('n = 5, E (dense_first, the dense control, outside the verdict): cg_vae K=2 +0.')
    assert appears[1] == "  E's own positive control (iVAE, K = 40, E): passed (MCC 0.950 over 5 seeds)"
    assert len(appears) == 5 and all(x.endswith('-> not tied to sparse mixing (the text withdraws the support)') for x in appears[2:])
    specific = dense_control(a + _dense_first(lambda s: 0.0))
    assert specific[2].startswith('  cg_vae at K = 2: gain on A +0.') and specific[2].endswith('-> specific to sparse mixing')
    did = float(specific[2].split('paired by seed: cg_vae_nosparse ')[1].split()[0])
    assert did == pytest.approx(0.1, abs=0.01)                               # A's gain 0.1 minus E's 0
    wide = dense_control(a + _dense_first(lambda s: 0.2 if s % 2 else -0.1))   # mean 0.05 but not shown; A - E spans 0
    assert all(x.endswith('(not shown); A minus E, paired by seed: ' + x.split('paired by seed: ')[1].split(' ->')[0] + ' -> inconclusive')
               for x in wide[2:])
    missing = dense_control(a + _dense_first(lambda s: 0.0, drop={('sparse_only', 3)}))
    assert missing[3] == '  cg_vae at K = 3: gain on A ' + missing[3].split('gain on A ')[1].split(',')[0] + ', on E not run -> not decided'
    failed = dense_control(a + _dense_first(lambda s: 0.1, control=0.8))
    assert failed[1].endswith('failed (MCC 0.800 over 5 seeds)') and failed[2] == '  nothing is read from E until its positive control passes'
    no_gain = dense_control(_grid(0.0, 0.0, 0.0) + _dense_first(lambda s: 0.1))
    assert no_gain[2] == '  A shows the gain at no decision K: nothing to compare'
    assert decision(a + _dense_first(lambda s: 0.1)) == decision(a) and apart(a + _dense_first(lambda s: 0.1)) == []   # outside the verdict


def test_figure_leaves_out_a_benchmark_run_at_one_k(tmp_path):
    from PIL import Image
    from synthetic_study.report import draw_figure
    a = [_row(m, k, s, 0.7 + 0.01 * s) for m in ('ivae', 'cg_vae') for k in (2, 3) for s in range(3)]
    e = [_row('ivae', 40, s, 0.8, 'dense_first', first_layer='dense') for s in range(3)]
    widths = []
    for rows in (a, a + e, e):
        draw_figure(summarise(rows), rows, str(tmp_path / 'f.png'))
        widths.append(Image.open(tmp_path / 'f.png').size[0])
    assert widths[0] == widths[1] == widths[2]                 # one panel each: E alone is drawn only when nothing else is


def _apart_rows(bench, offsets, ks=(2, 3, 4), noise=0.01):
    """Ten seeds per K of the five arms the readings apart use; each arm is a shared base plus its offset."""
    rng = np.random.default_rng(1)
    rows = []
    for k in ks:
        for s in range(10):
            base = 0.7 + 0.05 * rng.standard_normal()
            rows += [_row(m, k, s, base + offsets.get(m, 0.0) + noise * rng.standard_normal(), bench)
                     for m in ('cg_vae_nosparse', 'ivae', 'sparse_only', 'ivae_l1', 'cg_vae')]
    return rows


def _nongauss(flow_gain, **kw):
    return _apart_rows('nongauss', dict(ivae_l1=0.1, cg_vae=0.1 + flow_gain), **kw)


def test_d_is_read_apart_with_the_flow_prior_question():
    lines = apart(_nongauss(0.1))
    assert len(lines) == 2 and 'ivae_l1 K=3 +0.' in lines[0] and 'shows the gain' in lines[0]
    assert lines[1].endswith('-> yes')
    assert apart(_nongauss(0.0))[1].endswith('-> not at this scale')          # every interval below +0.05
    assert apart(_nongauss(0.0, noise=0.2))[1].endswith('-> undecided')       # intervals too wide to say
    assert apart(_nongauss(0.0, ks=(2, 3)))[1].endswith('-> undecided (not run: K=4)')
    assert apart(_grid(0.1, 0.0, 0.0)) == [] and decision(_nongauss(0.1)) == []   # D never enters the verdict


def test_b_is_read_apart_with_the_cost_question():
    lines = apart(_apart_rows('hard', dict(cg_vae=-0.1, ivae_l1=-0.1)))
    assert len(lines) == 2 and lines[0].startswith('n = 5, B (hard, negative control, outside the verdict): cg_vae K=2 -0.1')
    assert 'shows the gain' not in lines[0] and lines[1].endswith('-> yes')       # the blind alpha costs 0.1
    assert '(yes)' in apart(_apart_rows('hard', dict(cg_vae=-0.1)))[1]              # one twin costing is enough
    assert apart(_apart_rows('hard', dict(cg_vae=-0.1)))[1].endswith('-> yes')
    assert apart(_apart_rows('hard', {}))[1].endswith('-> not at this scale')      # every lower end above -0.05
    assert 'shows the gain' in apart(_apart_rows('hard', dict(cg_vae=0.1, ivae_l1=0.1)))[0]  # against the premise: shown
    assert apart(_apart_rows('hard', {}, noise=0.2))[1].endswith('-> undecided')
    assert apart(_apart_rows('hard', {}, ks=(2,)))[1].endswith('-> undecided')
    both = apart(_apart_rows('hard', {}) + _nongauss(0.0))
    assert [x.split(',')[1] for x in both[::2]] == [' D (nongauss', ' B (hard'] and decision(_apart_rows('hard', {})) == []


def _k8(gain_old, gain_fresh, drop=()):
    """A at K = 8 and 6 on seeds 0-9: the combined arms gain gain_old on seeds 0-4 and gain_fresh on 5-9."""
    rng = np.random.default_rng(2)
    rows = []
    for k in (6, 8):
        for s in range(10):
            base, gain = 0.8 + 0.05 * rng.standard_normal(), gain_old if s < 5 else gain_fresh
            rows += [_row(m, k, s, base + (gain if m in ('cg_vae', 'ivae_l1') else 0.0) + 0.01 * rng.standard_normal())
                     for m in ('cg_vae_nosparse', 'ivae', 'sparse_only', 'ivae_l1', 'cg_vae') if (m, k, s) not in drop]
    return rows


def test_the_k8_pattern_is_confirmed_on_the_fresh_seeds_alone():
    lines = confirmation(_k8(0.0, 0.1))
    assert lines[0].startswith('n = 5, A at K = 8 on fresh seeds 5-9: cg_vae K=8 +0.') and lines[0].endswith('-> confirmed')
    assert 'seeds 5-9: cg_vae K=6 +0.' in lines[1] and 'every seed: cg_vae K=8 +0.' in lines[1]
    found_before = confirmation(_k8(0.1, 0.0))                     # the seeds the pattern was found on do not count
    pooled = float(found_before[1].split('every seed: cg_vae K=8 ')[1].split()[0].rstrip(';'))
    assert found_before[0].endswith('-> not confirmed') and 0.03 < pooled < 0.07   # half the seeds gain 0.1
    one_arm = confirmation([r for r in _k8(0.0, 0.1) if not (r['model'] == 'cg_vae' and r['seed'] >= 5)])[0]
    assert 'cg_vae K=8 not run; ivae_l1 K=8 +0.' in one_arm and one_arm.endswith('-> confirmed')   # either combined arm is enough
    partial = _k8(0.0, 0.0, drop={('ivae', 8, 9)})                 # a fresh seed missing: the cell does not count
    assert confirmation(partial)[0].endswith('-> not decided (cells missing)')
    old_only = [r for r in _k8(0.1, 0.1) if r['seed'] < 5]
    assert confirmation(old_only) == [] and decision(_k8(0.0, 0.1))[1:] == decision(old_only)[1:]   # the verdict never reads K = 8


def test_decision_reads_c_of_the_same_size_only_and_gives_one_verdict_per_a():
    rows = _grid(0.1, 0.1, 0.0)
    assert sum(line.startswith('n = ') for line in decision(rows)) == 1     # the C group gets no verdict of its own
    other_size = [dict(r, m=20) if r['benchmark'] == 'dense' else r for r in rows]
    assert decision(other_size)[1].endswith('on C: not run -> not decided')  # C of another m is not A's control

#----------------------------------------------------------------------------


def test_audit_table_counts_the_data_sets_where_reading_x_beats_the_alpha_0_fit():
    audit = [dict(benchmark='hard', n=5, K=3, seed=s, l1_true=8.0, l1_readx=5.0) for s in range(3)]
    fits = [_row('cg_vae_nosparse', 3, s, 0.7, 'hard', l1_fit=f) for s, f in ((0, 7.5), (1, 4.0))]  # seed 2 not fitted
    line = audit_table(audit, fits).splitlines()[2]
    assert line.startswith('| hard | 5 | 3 | 3 | 8.00 ± 0.00 | 5.00 ± 0.00 | 5.75 ± 2.47 (2) |')
    assert line.endswith('| 3 of 3 | 1 of 2 |')                          # x sparser than the fit on seed 0 only
    assert audit_table(audit, []).splitlines()[2].endswith('| 3 of 3 | not run |')
