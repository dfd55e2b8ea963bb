"""Synthetic latent generator: shapes, determinism, benchmark supports (checked by autograd), invertibility, MCC of x."""
import numpy as np
import pytest
import torch

from synthetic_study.data import (BENCHMARKS, benchmark_settings, boolean_product, is_structurally_sparse, layer_masks,
                                  make_support, make_synthetic_dataset)
from synthetic_study.mcc import mean_corr_coef

#----------------------------------------------------------------------------

def test_shapes_and_split():
    d = make_synthetic_dataset(n=3, m=4, num_domains=5, samples=50, heldout=0.2, seed=0)
    assert d.x_train.shape == (200, 4) and d.z_train.shape == (200, 3) and d.u_train.shape == (200,)
    assert d.x_test.shape == (50, 4) and d.z_test.shape == (50, 3)
    assert d.x_train.dtype == torch.float32 and d.u_train.dtype == torch.int64
    assert torch.bincount(d.u_test, minlength=5).tolist() == [10] * 5  # held-out split per domain
    assert d.mu.shape == (5, 3) and ((d.sigma >= 0.5) & (d.sigma <= 3)).all()


def test_deterministic_and_seed_dependent():
    a = make_synthetic_dataset(n=3, num_domains=4, samples=20, density=0.5, seed=7)
    b = make_synthetic_dataset(n=3, num_domains=4, samples=20, density=0.5, seed=7)
    c = make_synthetic_dataset(n=3, num_domains=4, samples=20, density=0.5, seed=8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.z_test, b.z_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_zero_mean_mode():
    d = make_synthetic_dataset(n=2, num_domains=3, samples=20, mean_mode='zero', seed=0)
    assert np.all(d.mu == 0)

#----------------------------------------------------------------------------

@pytest.mark.parametrize('n,m,density', [(5, 5, 0.4), (5, 5, 1.0), (4, 6, 0.5), (6, 6, 0.3)])
def test_support_density_and_masks(n, m, density):
    rng = np.random.default_rng(0)
    s = make_support(n, m, density, rng)
    assert s.shape == (m, n)
    assert abs(s.mean() - density) <= 1 / (m * n) + 1e-9 or s.sum() == max(n, m)
    assert s.any(axis=1).all() and s.any(axis=0).all()
    masks = layer_masks(s, 3)
    assert all(mask.diagonal().all() for mask in masks[1:])  # identity inside: invertible masks
    assert np.array_equal(boolean_product(masks), s)


@pytest.mark.parametrize('benchmark', list(BENCHMARKS))
@pytest.mark.parametrize('seed', [1, 12])
def test_jacobian_support_matches_autograd(benchmark, seed):
    settings = benchmark_settings(benchmark, 5)
    d = make_synthetic_dataset(n=5, num_domains=3, samples=20, seed=seed, **settings)
    assert d.support.shape == (settings.m, 5) and abs(d.density - settings.density) < 0.05
    assert (d.support.sum(axis=1) >= settings.min_row).all()
    pts = d.z_train[:20] + torch.randn(20, 5)
    seen = np.zeros_like(d.support)
    for p in pts:
        jac = torch.autograd.functional.jacobian(d.mixing, p).numpy()
        nz = np.abs(jac) > 1e-7
        assert not (nz & ~d.support).any()  # no entry outside the support
        seen |= nz
    assert np.array_equal(seen, d.support)  # and every entry of the support is used


@pytest.mark.parametrize('n,m,density', [(5, 5, 1.0), (5, 5, 0.4), (3, 6, 0.5)])
def test_invertible(n, m, density):
    d = make_synthetic_dataset(n=n, m=m, num_domains=2, samples=50, density=density, seed=2)
    z = d.mixing.inverse(d.x_train)
    assert torch.allclose(z, d.z_train, atol=1e-3, rtol=1e-3)
    for idx in range(d.mixing.num_layers):
        s = torch.linalg.svdvals(getattr(d.mixing, f'w{idx}'))
        assert s[0] / s[-1] <= 5.0 + 1e-4


def test_hard_benchmark_support_is_structurally_sparse_with_balanced_rows():
    for seed in range(5):
        d = make_synthetic_dataset(n=5, num_domains=2, samples=20, seed=seed, **benchmark_settings('hard', 5))
        assert (d.support.sum(axis=1) == 3).all()  # density 0.6 with >= 3 latents per row: exactly 3
        assert len(np.unique(d.support, axis=0)) == 5 and is_structurally_sparse(d.support)
        w = d.mixing.w0.numpy()[d.support]
        assert np.abs(w).min() >= 0.8 * np.abs(w).max() - 1e-6  # no latent dominates a row by its weight
        z = d.mixing.inverse(d.x_train)
        assert torch.allclose(z, d.z_train, atol=1e-3, rtol=1e-3)


def test_structural_sparsity_condition():
    assert is_structurally_sparse(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=bool))
    assert not is_structurally_sparse(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=bool))  # 0 and 1 always together
    with pytest.raises(ValueError, match='min_row'):
        make_support(3, 3, 0.5, np.random.default_rng(0), min_row=4)
    with pytest.raises(ValueError, match='unknown benchmark "medium"'):
        benchmark_settings('medium', 5)


def test_hard_benchmark_hides_the_latents_and_easy_does_not():
    def observed_mcc(benchmark):
        return np.mean([mean_corr_coef(d.z_test, d.x_test) for seed in range(5) for k in (2, 4, 8)
                        for d in [make_synthetic_dataset(n=5, num_domains=k, samples=400, seed=seed, **benchmark_settings(benchmark, 5))]])
    assert observed_mcc('hard') <= 0.7
    assert observed_mcc('easy') >= 0.75


def test_standardised_latents_enter_the_mixing():
    d = make_synthetic_dataset(n=4, num_domains=6, samples=1000, seed=4, **benchmark_settings('hard', 4))
    h = (d.z_train - d.mixing.shift) / d.mixing.scale
    assert h.mean(0).abs().max() < 0.1 and (h.std(0) - 1).abs().max() < 0.1
    e = make_synthetic_dataset(n=4, num_domains=6, samples=50, seed=4, **benchmark_settings('easy', 4))
    assert torch.equal(e.mixing.shift, torch.zeros(4)) and torch.equal(e.mixing.scale, torch.ones(4))


def test_bad_arguments():
    with pytest.raises(ValueError, match='m=2 must be >= latents n=3'):
        make_synthetic_dataset(n=3, m=2)
    with pytest.raises(ValueError, match='density'):
        make_synthetic_dataset(n=3, density=0.0)

#----------------------------------------------------------------------------

def test_mixing_does_not_depend_on_number_of_domains():
    a = make_synthetic_dataset(n=4, num_domains=1, samples=20, density=0.5, seed=3)
    b = make_synthetic_dataset(n=4, num_domains=9, samples=20, density=0.5, seed=3)
    assert np.array_equal(a.support, b.support)
    assert all(torch.equal(p, q) for p, q in zip(a.mixing.state_dict().values(), b.mixing.state_dict().values()))

#----------------------------------------------------------------------------
