"""Swap metrics reach their extremes on generators built to be right or wrong in known ways."""
import numpy as np
import pytest
import torch

from metrics.swap import _kappa, calc_swap_metrics, train_swap_probe

#----------------------------------------------------------------------------
# Toy multi-domain set: content = the quadrant of a white square (4 classes, same law in every
# domain), style = background colour (domain). 16x16 RGB.

COLOURS = torch.tensor([[200, 30, 30], [30, 200, 30], [30, 30, 200]], dtype=torch.float32)

def render(quadrant, domain, jitter):
    """quadrant, domain: int64 [N]; jitter: float [N, 2] in [0, 1) -> uint8 [N, 3, 16, 16]."""
    n = len(quadrant)
    img = COLOURS[domain][:, :, None, None].expand(n, 3, 16, 16).clone()
    for i in range(n):
        y0 = 1 + 8 * int(quadrant[i] // 2) + int(jitter[i, 0] * 2)
        x0 = 1 + 8 * int(quadrant[i] % 2) + int(jitter[i, 1] * 2)
        img[i, :, y0:y0 + 5, x0:x0 + 5] = 255
    return img.to(torch.uint8)


class ToySet:
    factor_names = ['quadrant', 'hue']
    factor_kinds = {'content': ['quadrant'], 'style': ['hue']}
    has_labels = True
    num_domains = 3

    def __init__(self, n=600, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.q = torch.randint(0, 4, [n], generator=g)
        self.d = torch.randint(0, 3, [n], generator=g)
        self.img = render(self.q, self.d, torch.rand(n, 2, generator=g)).numpy()

    def __len__(self):
        return len(self.q)

    def __getitem__(self, i):
        return self.img[i], np.eye(3, dtype=np.float32)[int(self.d[i])]

    def get_factors(self, i):
        return np.array([float(self.q[i]), float(self.d[i])], dtype=np.float32)


class ToyG(torch.nn.Module):
    """Renders the toy set from eps and domain; `ignore` = 'domain' | 'eps' | 'scramble' breaks it."""
    def __init__(self, ignore=None):
        super().__init__()
        self.z_dim, self.c_dim, self.ignore = 8, 3, ignore
        self.dummy = torch.nn.Parameter(torch.zeros([]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='const'):
        q = torch.bucketize(z[:, 0], torch.tensor([-0.6745, 0.0, 0.6745]))              # quartiles of N(0, 1)
        d = c.argmax(1)
        if self.ignore == 'domain':
            d = torch.zeros_like(d)
        if self.ignore == 'eps':
            q = torch.zeros_like(q)
        if self.ignore == 'scramble':                                                    # content re-drawn per domain
            q = torch.bucketize(z[torch.arange(len(z)), 1 + d], torch.tensor([-0.6745, 0.0, 0.6745]))
        jitter = (z[:, 4:6].abs() % 1)
        return render(q, d, jitter).to(torch.float32) / 127.5 - 1

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def data():
    return ToySet()

@pytest.fixture(scope='module')
def probe(data):
    return train_swap_probe(data, num_train=600, train_steps=120, batch_size=32, probe_res=16)

KW = dict(num_samples=90, batch_size=48)

def test_perfect_generator(data, probe):
    assert probe.results['probe_domain_acc_real'] > 0.95 and probe.results['probe_content_acc_real'] > 0.95
    r = calc_swap_metrics(ToyG(), probe=probe, **KW)
    assert r['swap_domain_acc'] > 0.95
    assert r['swap_content_kappa'] > 0.9


def test_generator_that_ignores_the_domain(probe):
    r = calc_swap_metrics(ToyG('domain'), probe=probe, **KW)
    assert abs(r['swap_domain_acc'] - 1 / 3) < 0.02
    assert r['swap_content_kappa'] > 0.9                       # content is kept, trivially


def test_generator_that_ignores_eps(probe):
    r = calc_swap_metrics(ToyG('eps'), probe=probe, **KW)
    assert r['swap_domain_acc'] > 0.95
    assert r['swap_content_agree'] > 0.95 and abs(r['swap_content_kappa']) < 1e-9


def test_generator_that_redraws_content_per_domain(probe):
    r = calc_swap_metrics(ToyG('scramble'), probe=probe, **KW)
    assert r['swap_domain_acc'] > 0.95
    assert abs(r['swap_content_kappa']) < 0.25


def test_dataset_path_trains_its_own_probe_deterministically():
    small = ToySet(n=60, seed=1)
    kw = dict(num_samples=6, num_train=60, train_steps=3, batch_size=12, probe_res=16)
    r1, r2 = calc_swap_metrics(ToyG(), small, **kw), calc_swap_metrics(ToyG(), small, **kw)
    assert r1 == r2 and r1['content_factors'] == ['quadrant']


def test_kappa_and_errors(data):
    a = np.array([0, 1, 2, 3] * 5)
    assert _kappa(a, a, 4)[0] == pytest.approx(1.0)
    assert _kappa(np.zeros(9, int), np.zeros(9, int), 4) == (0.0, 1.0)
    with pytest.raises(ValueError, match='not stored'):
        train_swap_probe(data, content_factors=['colour'], train_steps=1)
    class NoLabels(ToySet):
        has_labels = False
    with pytest.raises(ValueError, match='use_labels=True'):
        train_swap_probe(NoLabels(n=10))
    with pytest.raises(ValueError, match='a dataset'):
        calc_swap_metrics(ToyG())

#----------------------------------------------------------------------------
