"""Synthetic latent generator: split, determinism, benchmark supports (checked by autograd), the A/B/C/D
structure, invertibility, the latent noises, and the sentences for bad supports and sizes."""
import numpy as np
import pytest
import torch

from synthetic_study.data import (BENCHMARKS, benchmark_settings, boolean_product, is_post_nonlinear,
                                  is_structurally_sparse, layer_masks, make_support, make_synthetic_dataset, parse_support,
                                  unit_noise)

#----------------------------------------------------------------------------

def test_split_into_train_validation_and_test_per_domain():
    d = make_synthetic_dataset(n=3, m=4, num_domains=5, samples=50, seed=0)
    assert d.x_train.shape == (175, 4) and d.x_val.shape == (25, 4) and d.x_test.shape == (50, 4)
    assert torch.bincount(d.u_test, minlength=5).tolist() == [10] * 5 and torch.bincount(d.u_val, minlength=5).tolist() == [5] * 5
    rows = {tuple(v) for v in torch.cat([d.z_train, d.z_val, d.z_test]).tolist()}
    assert len(rows) == 250  # the three parts are disjoint


def test_deterministic_and_the_mixing_independent_of_K():
    a = make_synthetic_dataset(n=4, num_domains=2, samples=20, seed=7, **benchmark_settings('sparse', 4))
    b = make_synthetic_dataset(n=4, num_domains=2, samples=20, seed=7, **benchmark_settings('sparse', 4))
    c = make_synthetic_dataset(n=4, num_domains=9, samples=20, seed=7, **benchmark_settings('sparse', 4))
    assert torch.equal(a.x_train, b.x_train) and np.array_equal(a.support, c.support)
    assert all(torch.equal(p, q) for p, q in zip(a.mixing.state_dict().values(), c.mixing.state_dict().values())
               if p.shape == q.shape and p.dim() == 2)  # weights equal; shift/scale depend on the K domains

#----------------------------------------------------------------------------

@pytest.mark.parametrize('benchmark,n', [(b, 5) for b in BENCHMARKS] + [('sparse', 10), ('dense', 10)])
def test_jacobian_support_matches_autograd(benchmark, n):
    settings = benchmark_settings(benchmark, n)
    d = make_synthetic_dataset(n=n, num_domains=3, samples=20, seed=12, **settings)
    assert d.support.shape == (settings.m, n) and len(d.masks) == settings.layers
    assert np.array_equal(boolean_product(d.masks), d.support)
    jac = torch.func.vmap(torch.func.jacrev(d.mixing))(d.z_train[:40] + torch.randn(40, n)).numpy()
    nz = np.abs(jac) > 1e-7
    assert not (nz & ~d.support).any()  # no entry outside the support
    assert np.array_equal(nz.any(axis=0), d.support)  # and every entry of the support is used


@pytest.mark.parametrize('n', [5, 10])
def test_benchmark_a_is_sparse_uneven_and_not_post_nonlinear(n):
    for seed in range(3):
        s = benchmark_settings('sparse', n)
        d = make_synthetic_dataset(n=n, num_domains=2, samples=20, seed=seed, **s)
        parents = d.support.sum(axis=1)
        assert d.m == 2 * n and parents.min() >= 1 and parents.max() <= 3 and len(set(parents.tolist())) > 1
        assert (parents == 1).sum() <= s.singletons and is_structurally_sparse(d.support)
        assert len(np.unique(d.support, axis=0)) == d.m and not is_post_nonlinear(d.support)
        assert (d.masks[1] & ~np.eye(d.m, dtype=bool)).any()  # some x_i mixes several hidden units: not x_i = f_i(a_i . z)
        assert torch.allclose(d.mixing.inverse(d.x_train), d.z_train, atol=1e-3, rtol=1e-3)


def test_controls_b_and_c():
    hard = make_synthetic_dataset(n=5, num_domains=2, samples=20, seed=0, **benchmark_settings('hard', 5))
    assert hard.m == 5 and (hard.support.sum(axis=1) == 3).all() and is_post_nonlinear(hard.support)
    dense = benchmark_settings('dense', 5)
    sparse = benchmark_settings('sparse', 5)
    assert (dense.m, dense.layers, dense.density) == (sparse.m, sparse.layers, 1.0)  # same size as A
    assert benchmark_settings('nongauss', 5).latent == 'mixture' and sparse.latent == 'gauss'


@pytest.mark.parametrize('n', [5, 10])
def test_e_is_a_with_a_dense_first_layer(n):
    for seed in range(2):
        a = make_synthetic_dataset(n=n, num_domains=3, samples=20, seed=seed, **benchmark_settings('sparse', n))
        e = make_synthetic_dataset(n=n, num_domains=3, samples=20, seed=seed, **benchmark_settings('dense_first', n))
        assert torch.equal(a.z_train, e.z_train) and torch.equal(a.u_test, e.u_test)    # the same latents: pairs by seed
        assert e.support.all() and (e.mixing.w0 != 0).all() and not a.support.all()
        assert all(np.array_equal(p, q) for p, q in zip(a.masks[1:], e.masks[1:]))
        assert all(torch.equal(getattr(a.mixing, f'w{i}'), getattr(e.mixing, f'w{i}')) for i in (1, 2))  # A's later layers
        assert torch.allclose(e.mixing.inverse(e.x_train), e.z_train, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match='first_layer must be one of support, dense, got "full"'):
        make_synthetic_dataset(n=3, m=6, first_layer='full')


@pytest.mark.parametrize('latent', ['gauss', 'laplace', 'mixture'])
def test_unit_noise_has_zero_mean_and_unit_variance(latent):
    e = unit_noise(latent, [200000], np.random.default_rng(0))
    assert abs(e.mean()) < 0.01 and abs(e.var() - 1) < 0.02
    hist, _ = np.histogram(e, bins=np.linspace(-1.6, 1.6, 9))
    bimodal = hist[4] < hist[2] and hist[3] < hist[1]  # a dip at 0 between the modes at +-0.8
    assert bimodal == (latent == 'mixture')

#----------------------------------------------------------------------------

def test_masks_hold_the_identity_and_multiply_to_the_support():
    s = make_support(5, 10, 0.48, np.random.default_rng(0), min_row=1, max_row=3, singletons=1, structural=True)
    masks = layer_masks(s, 3)
    assert all(mask.diagonal().all() for mask in masks[1:]) and np.array_equal(boolean_product(masks), s)


def test_support_strings_round_trip_and_bad_supports_are_one_sentence():
    s = make_support(4, 8, 0.5, np.random.default_rng(1))
    assert np.array_equal(parse_support(','.join(''.join('01'[int(v)] for v in row) for row in s)), s)
    with pytest.raises(ValueError, match='column 1 of the support is empty'):
        parse_support('10,10,10')
    with pytest.raises(ValueError, match='observed dims m=2 must be >= latents n=3'):
        parse_support('110,011')
    with pytest.raises(ValueError, match='same length'):
        parse_support('10,011')
    with pytest.raises(ValueError, match='strings of 0 and 1'):
        parse_support('1x,01')
    with pytest.raises(ValueError, match='observed dims m=2 must be >= latents n=3'):
        make_synthetic_dataset(n=3, m=2)
    with pytest.raises(ValueError, match='unknown benchmark "medium"'):
        benchmark_settings('medium', 5)


def test_a_given_support_is_used_and_overrides_apply():
    s = parse_support('100,010,001,110,011,101')
    d = make_synthetic_dataset(n=3, m=6, num_domains=2, samples=20, support=s, layers=3, seed=0)
    assert np.array_equal(d.support, s)
    assert benchmark_settings('sparse', 5, m=12, layers=None).m == 12 and benchmark_settings('sparse', 5, layers=None).layers == 3

#----------------------------------------------------------------------------
