"""Swap metrics: does a domain swap change the domain and keep the content?

For N eps, render each eps in every domain (a row of a swap grid) and judge the rows with a small
probe CNN trained here on the real images of the dataset:
  swap_domain_acc      fraction of swapped fakes the probe assigns to the requested domain
                       (1 = every swap lands in its domain; 1/K = the generator ignores the domain).
  swap_content_kappa   Cohen's kappa, between every pair of domains, of the probe's content-factor
                       predictions for the same eps, averaged over pairs and content factors
                       (1 = the content survives every swap; 0 = no more agreement than chance, e.g.
                       the content is re-drawn per domain, or the generator ignores eps so there is no
                       content variation to preserve).
  swap_content_agree   the raw agreement behind kappa (fraction of equal predictions).
Kappa, not raw agreement, because a generator that ignores eps agrees with itself perfectly.
Content factors: the dataset's ground-truth factors listed as content (`factor_kinds['content']`, our
built-in sets and K-colour MNIST store it) or named by `content_factors`; continuous factors are cut
into `num_bins` quantile bins of the real data, discrete ones (<= 16 values) kept. Without factors only
the domain accuracy is computed. probe_*_acc_real report the probe's accuracy on held-out reals: a
swap score is only as good as the probe.
"""
import numpy as np
import torch

#----------------------------------------------------------------------------

class _Probe(torch.nn.Module):
    def __init__(self, channels, res, num_outputs):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 32, 3, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(64, 64, 3, stride=2, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten())
        self.head = torch.nn.Linear(64 * ((res + 7) // 8) ** 2, sum(num_outputs))
        self.splits = list(num_outputs)

    def forward(self, x):
        return torch.split(self.head(self.body(x)), self.splits, dim=1)


def _prep(img, res):
    """uint8 or [-1, 1] float NCHW -> float [-1, 1] at the probe resolution."""
    x = img.to(torch.float32) / 127.5 - 1 if img.dtype == torch.uint8 else img.to(torch.float32).clamp(-1, 1)
    if x.shape[-1] != res:
        x = torch.nn.functional.interpolate(x, size=(res, res), mode='area' if x.shape[-1] > res else 'bilinear', align_corners=None)
    return x


def _discretise(values, num_bins):
    """Real factor values -> (class ids, function mapping values to ids, number of classes)."""
    uniq = np.unique(values)
    if len(uniq) <= 16:
        lut = {float(v): i for i, v in enumerate(uniq)}
        return np.array([lut[float(v)] for v in values]), len(uniq)
    edges = np.quantile(values, np.linspace(0, 1, num_bins + 1)[1:-1])
    return np.searchsorted(edges, values, side='right'), num_bins


def _kappa(a, b, k):
    """Cohen's kappa of two label vectors over k classes; 0 when chance agreement is total."""
    agree = float(np.mean(a == b))
    pa, pb = np.bincount(a, minlength=k) / len(a), np.bincount(b, minlength=k) / len(b)
    chance = float(np.sum(pa * pb))
    return 0.0 if chance >= 1 - 1e-12 else (agree - chance) / (1 - chance), agree


def _read_reals(dataset, num, rng):
    idx = rng.choice(len(dataset), size=min(num, len(dataset)), replace=False)
    imgs, doms, facs = [], [], []
    for i in idx:
        img, label = dataset[int(i)]
        label = np.asarray(label)
        imgs.append(torch.as_tensor(np.asarray(img)))
        doms.append(int(label.argmax()) if label.ndim == 1 and label.size > 1 else int(label))
        if getattr(dataset, 'factor_names', None):
            facs.append(np.asarray(dataset.get_factors(int(i)), dtype=np.float64))
    return torch.stack(imgs), np.array(doms), (np.stack(facs) if facs else None)

#----------------------------------------------------------------------------

class SwapProbe:
    """A probe CNN trained on real images: domain head + one head per content factor."""
    def __init__(self, net, num_domains, content_factors, sizes, res, device, results):
        self.net, self.num_domains, self.content_factors, self.sizes = net, num_domains, content_factors, sizes
        self.res, self.device, self.results = res, device, results

    @torch.no_grad()
    def predict(self, img):
        """uint8 or [-1, 1] images NCHW -> [domain ids, content ids per factor] as numpy arrays."""
        return [o.argmax(1).cpu().numpy() for o in self.net(_prep(img, self.res).to(self.device))]


def train_swap_probe(dataset, device='cpu', *, num_train=4000, train_steps=600, batch_size=64, probe_res=32,
                     content_factors=None, num_bins=4, seed=0):
    """Train the probe on 80 % of up to `num_train` reals of `dataset`; score it on the other 20 %.
    Train once per dataset and pass it to calc_swap_metrics for every snapshot."""
    device = torch.device(device)
    if getattr(dataset, 'has_labels', True) is False:
        raise ValueError('swap metrics need the domain labels: open the dataset with use_labels=True')
    rng = np.random.RandomState(seed)
    imgs, doms, facs = _read_reals(dataset, num_train, rng)
    K = int(getattr(dataset, 'num_domains', None) or doms.max() + 1)

    # Content targets.
    names = list(getattr(dataset, 'factor_names', None) or [])
    if content_factors is None:
        kinds = getattr(dataset, 'factor_kinds', None) or {}
        content_factors = list(kinds.get('content', []))
    unknown = [f for f in content_factors if f not in names]
    if unknown:
        raise ValueError(f'content factor(s) {unknown} not stored in the dataset; it has {names or "no factors"}')
    targets, sizes = [], []
    for f in content_factors:
        ids, n = _discretise(facs[:, names.index(f)], num_bins)
        targets.append(torch.as_tensor(ids, dtype=torch.int64))
        sizes.append(n)

    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)
        x_all = _prep(imgs, probe_res)
        y_all = [torch.as_tensor(doms, dtype=torch.int64)] + targets
        n_tr = max(1, int(0.8 * len(x_all)))
        net = _Probe(x_all.shape[1], probe_res, [K] + sizes).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(train_steps):
            b = torch.randint(0, n_tr, [min(batch_size, n_tr)])
            outs = net(x_all[b].to(device))
            loss = sum(torch.nn.functional.cross_entropy(o, y[b].to(device)) for o, y in zip(outs, y_all))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    probe = SwapProbe(net.eval(), K, list(content_factors), sizes, probe_res, device, {})
    if n_tr < len(x_all):
        held = probe.predict(x_all[n_tr:])
        probe.results['probe_domain_acc_real'] = float(np.mean(held[0] == doms[n_tr:]))
        if targets:
            probe.results['probe_content_acc_real'] = float(np.mean([np.mean(h == t[n_tr:].numpy()) for h, t in zip(held[1:], targets)]))
    return probe


def calc_swap_metrics(G, dataset=None, num_samples=1000, device='cpu', *, probe=None, batch_size=64,
                      truncation_psi=1.0, noise_mode='const', seed=0, **probe_kwargs):
    """Swap metrics of generator G. `dataset`: an ImageFolderDataset built with use_labels=True, or
    anything with __len__, __getitem__ -> (uint8 CHW image, one-hot label), num_domains and optionally
    factor_names / factor_kinds / get_factors; used to train the probe unless `probe` (from
    train_swap_probe) is given. probe_kwargs go to train_swap_probe. Returns a dict (module docstring)."""
    device = torch.device(device)
    K = int(G.c_dim)
    if K < 2:
        raise ValueError(f'swap metrics need a generator with at least 2 domains; this one has c_dim={K}')
    if probe is None:
        if dataset is None:
            raise ValueError('calc_swap_metrics needs a dataset (to train the probe) or a trained probe')
        probe = train_swap_probe(dataset, device, batch_size=batch_size, seed=seed, **probe_kwargs)
    if probe.num_domains != K:
        raise ValueError(f'the dataset has {probe.num_domains} domains but the generator {K}')
    results = dict(num_samples=int(num_samples), num_domains=K, content_factors=list(probe.content_factors), **probe.results)
    predict, sizes = probe.predict, probe.sizes

    # Swap rows: every eps in every domain.
    gen = torch.Generator().manual_seed(seed)
    dom_pred, content_pred = [], [[] for _ in sizes]
    with torch.no_grad():
        for start in range(0, num_samples, max(1, batch_size // K)):
            n = min(max(1, batch_size // K), num_samples - start)
            z = torch.randn([n, G.z_dim], generator=gen).to(device)
            z = z.repeat_interleave(K, dim=0)                                          # row: same eps, K domains
            c = torch.eye(K, device=device).repeat(n, 1)
            img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
            preds = predict(img)
            dom_pred.append(preds[0].reshape(n, K))
            for lst, p in zip(content_pred, preds[1:]):
                lst.append(p.reshape(n, K))
    dom_pred = np.concatenate(dom_pred)
    results['swap_domain_acc'] = float(np.mean(dom_pred == np.arange(K)[None]))
    if sizes:
        kappas, agrees = [], []
        for lst, size in zip(content_pred, sizes):
            p = np.concatenate(lst)
            for a in range(K):
                for b in range(a + 1, K):
                    kap, agr = _kappa(p[:, a], p[:, b], size)
                    kappas.append(kap)
                    agrees.append(agr)
        results['swap_content_kappa'] = float(np.mean(kappas))
        results['swap_content_agree'] = float(np.mean(agrees))
    return results

#----------------------------------------------------------------------------
