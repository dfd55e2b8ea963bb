"""Premise audit (scaled L1 of the true g and of reading x) and Jacobian support F1."""
import numpy as np
import pytest
import torch

from synthetic_study.data import benchmark_settings, make_synthetic_dataset
from synthetic_study import premise
from synthetic_study.fit import L1_POINTS, spread
from synthetic_study.premise import MAX_SELECTIONS, audit_dataset, outside_premise, readx_l1, selections, swap_descent, true_jacobian
from synthetic_study.support_recovery import support_f1, thresholded_support

#----------------------------------------------------------------------------

def test_reading_x_costs_exactly_n_when_m_equals_n():
    d = make_synthetic_dataset(n=5, num_domains=3, samples=100, seed=0, **benchmark_settings('hard', 5))
    a = audit_dataset(d)
    assert a['l1_readx'] == pytest.approx(5.0, rel=1e-3)
    assert a['l1_true'] > 5.5  # the negative control: reading x is sparser than the truth
    assert outside_premise(a['l1_true'], a['l1_readx'])


def test_audit_matches_a_naive_computation_on_a_sparse_mixing():
    d = make_synthetic_dataset(n=4, num_domains=2, samples=60, seed=1, **benchmark_settings('sparse', 4))
    a = audit_dataset(d)
    x_std, xs = d.x_train.std(0), (d.x_train - d.x_train.mean(0)) / d.x_train.std(0)
    jacs = [torch.autograd.functional.jacobian(d.mixing, z) / x_std[:, None] for z in d.z_train]
    naive_true = np.mean([float((j * d.z_train.std(0)).abs().sum()) for j in jacs])
    assert a['l1_true'] == pytest.approx(naive_true, rel=1e-4)
    best = np.inf
    import itertools
    for sel in itertools.combinations(range(8), 4):
        sel = list(sel)
        if min(int(torch.linalg.matrix_rank(j[sel])) for j in jacs) < 4:
            continue  # these dims do not determine z: not a way of reading it
        vals = [float((j.double() @ torch.linalg.inv(j[sel].double()) * xs[:, sel].std(0).double()).abs().sum()) for j in jacs]
        best = min(best, np.mean(vals))
    assert a['l1_readx'] == pytest.approx(best, rel=1e-4)


def test_sampled_selections_are_invertible_so_n10_reading_x_is_measured():
    d = make_synthetic_dataset(n=10, num_domains=2, samples=60, seed=3, **benchmark_settings('sparse', 10))
    sels = selections(20, 10, np.random.default_rng(0), d.support.astype(bool))
    weights = np.random.default_rng(1).normal(size=d.support.shape) * d.support  # generic values on the support
    assert len(sels) == MAX_SELECTIONS and len({tuple(s) for s in sels}) == len(sels)
    assert all(len(s) == 10 and abs(np.linalg.det(weights[s])) > 1e-9 for s in sels)
    a = audit_dataset(d)
    assert np.isfinite(a['l1_readx']) and a['l1_readx'] > a['l1_true']  # A at n = 10 is inside the premise
    assert not outside_premise(a['l1_true'], a['l1_readx'])


def test_sampling_plus_swap_descent_bounds_the_exhaustive_minimum_from_above_at_a_local_minimum(monkeypatch):
    d = make_synthetic_dataset(n=5, num_domains=3, samples=80, seed=4, **benchmark_settings('sparse', 5))
    exact = audit_dataset(d)['l1_readx']  # C(10, 5) = 252 selections: every one tried
    monkeypatch.setattr(premise, 'MAX_SELECTIONS', 3)  # now sampled, then descended
    assert exact - 1e-6 <= audit_dataset(d)['l1_readx'] < np.inf
    idx = spread(len(d.x_train), L1_POINTS)
    x_std = d.x_train.std(0)
    xs = (d.x_train[idx] - d.x_train.mean(0)) / x_std
    jac = true_jacobian(d.mixing, d.z_train[idx], x_std).double()
    start = selections(10, 5, np.random.default_rng(0), d.support.astype(bool))[0]
    best, sel = swap_descent(jac, xs, start)
    assert best <= float(readx_l1(jac, xs, torch.tensor([start]))[0])
    swaps = [sorted(sel[:r] + [q] + sel[r + 1:]) for r in range(5) for q in range(10) if q not in sel]
    assert float(readx_l1(jac, xs, torch.tensor(swaps)).min()) >= best - 1e-9  # no single swap lowers it


def test_outside_premise_compares_with_both_fitting_solutions():
    assert not outside_premise(10.0, 12.0) and not outside_premise(10.0, 12.0, 11.0)
    assert outside_premise(10.0, 12.0, 9.5) and outside_premise(13.0, 12.0)

#----------------------------------------------------------------------------

def test_support_f1_of_the_true_jacobian_is_one_under_any_permutation():
    d = make_synthetic_dataset(n=5, num_domains=2, samples=100, seed=2, **benchmark_settings('sparse', 5))
    jac = true_jacobian(d.mixing, d.z_train, d.x_train.std(0)).numpy()
    est = thresholded_support(jac, d.z_train.std(0).numpy())
    assert np.array_equal(est, d.support)
    perm = np.array([3, 0, 4, 1, 2])  # estimate j = true latent perm^-1(j)
    shuffled = est[:, perm]
    matching = (np.arange(5), np.argsort(perm))  # true latent i is estimate column argsort(perm)[i]
    assert support_f1(shuffled, d.support, matching) == 1.0
    assert support_f1(shuffled, d.support, (np.arange(5), np.arange(5))) < 1.0
    dense = np.ones_like(d.support)
    assert support_f1(dense, d.support, matching) == pytest.approx(2 * d.support.mean() / (1 + d.support.mean()))

#----------------------------------------------------------------------------
