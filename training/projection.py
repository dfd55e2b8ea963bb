"""Project an image into a generator: find the W latent (NVIDIA's projector) or the latent eps on the
domain side of the flow (CG-GAN: re-rendering eps with another domain keeps the content).

NVIDIA's recipe for both spaces: Adam (lr 0.1, betas 0.9/0.999) with a cosine lr ramp-down over the last
quarter and a 5 % warm-up; Gaussian noise on the optimised latent, 5 % of its spread at first and fading
to 0 at 3/4 of the steps; the per-pixel noise buffers of the synthesis network are optimised too, pushed
towards white noise by the multi-scale autocorrelation penalty (weight 1e5) and renormalised every step.
W starts at the domain's mean W; eps starts at the best of a few seeded draws (eps = 0 has no direction).

Distances: NVIDIA's LPIPS on VGG16 features (metrics/weights.py finds, checks or downloads vgg16.pt), or
offline a pixel pyramid (squared error summed over the image at every scale halved down to 4 pixels),
which needs no weights.
"""
import copy

import numpy as np
import torch
import torch.nn.functional as F

from training import domain_swap

#----------------------------------------------------------------------------

class PixelPyramidDistance:
    """Offline distance: sum over scales (full, 1/2, ... down to 4 px) of the squared error of [-1, 1] images."""
    name = 'pixel pyramid (offline, no weights; its numbers are not comparable with NVIDIA\'s LPIPS distances)'
    reason = None       # why --loss=auto fell back to it (make_distance)

    def __init__(self, target):
        self.targets = self._pyramid(target)

    @staticmethod
    def _pyramid(img):
        out = [img]
        while out[-1].shape[-1] > 4:
            out.append(F.avg_pool2d(out[-1], 2))
        return out

    def __call__(self, img):
        return sum((a - b).square().sum() for a, b in zip(self._pyramid(img), self.targets))


class LPIPSDistance:
    """NVIDIA's projector distance: squared difference of VGG16 LPIPS embeddings of 256x256 images in [0, 255]."""
    name = 'LPIPS (NVIDIA vgg16.pt)'

    def __init__(self, target, model):
        self.model = model
        self.target_features = self._features(target)

    def _features(self, img):
        img = (img + 1) * 127.5
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        if img.shape[-1] != 256:
            img = F.interpolate(img, size=(256, 256), mode='area' if img.shape[-1] > 256 else 'bilinear', align_corners=None if img.shape[-1] > 256 else False)
        return self.model(img, resize_images=False, return_lpips=True)

    def __call__(self, img):
        return (self._features(img) - self.target_features).square().sum()


def make_distance(target, loss='auto', vgg16_path=None, allow_download=True, device='cpu'):
    """The distance to `target` ([1, C, H, W] in [-1, 1]): 'lpips', 'pixel', or 'auto' (LPIPS when the
    VGG16 weights are found or can be downloaded, else the pixel pyramid, whose `reason` says why). Raises
    MetricUnavailableError for 'lpips' without weights."""
    from metrics import weights
    if loss == 'pixel':
        return PixelPyramidDistance(target)
    try:
        path = weights.find(weights.VGG16, vgg16_path, allow_download=allow_download)
        return LPIPSDistance(target, weights.load_torchscript(weights.VGG16, path, device))
    except weights.MetricUnavailableError as e:
        if loss == 'lpips':
            raise
        distance = PixelPyramidDistance(target)
        distance.reason = str(e)
        return distance

#----------------------------------------------------------------------------

def default_space(G) -> str:
    """'latent' for domain-flow generators (CG-GAN / i-StyleGAN: the domain acts before the MLP), else 'w'."""
    return 'latent' if getattr(G.mapping, 'has_importance', False) else 'w'


@torch.no_grad()
def domain_w_avg(G, c, num_samples=10000, seed=123):
    """(mean W [1, 1, w_dim], spread = root mean squared distance to it) of G in domain c, as NVIDIA's projector."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim)).to(torch.float32).to(c.device)
    w = G.mapping(z, c.expand(num_samples, -1))[:, :1, :]
    w_avg = w.mean(dim=0, keepdim=True)
    return w_avg, float((w - w_avg).square().sum() / num_samples) ** 0.5


def domain_w_stats(G, device='cpu'):
    """[domain_w_avg per domain] (one entry, label zeros, for unconditional G): computed once, passed to
    project / render_domains."""
    labels = torch.eye(G.c_dim, device=device) if G.c_dim else torch.zeros([1, 0], device=device)
    return [domain_w_avg(G, lab[None]) for lab in labels]


def _noise_buffers(G):
    return {name: buf for name, buf in G.synthesis.named_buffers() if 'noise_const' in name}


def _noise_penalty(bufs):
    reg = 0.0
    for v in bufs.values():
        noise = v[None, None, :, :]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean().square()
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean().square()
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def _lr_at(t, lr):
    ramp = min(1.0, (1.0 - t) / 0.25)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return lr * ramp * min(1.0, t / 0.05)


def project(G, target, c=None, space='w', num_steps=1000, distance=None, seed=0, lr=0.1, noise_factor=0.05,
            noise_ramp=0.75, noise_weight=1e5, init_draws=16, progress=True, frames=None, w_stats=None):
    """Fit `target` (float [1, C, H, W] in [-1, 1]) in domain c ([1, c_dim], zeros for unconditional G).

    Returns dict: 'space'; 'w' [1, num_ws, w_dim] (the projection's W); 'eps' [1, z_dim] (latent space only);
    'image' [1, C, H, W] (rendered with the optimised noise); 'noise' {buffer name: tensor}; 'loss' per step.
    G is not changed (a copy's noise buffers are optimised). `frames`: a list that gets a uint8 HWC image per step.
    w_stats: domain_w_avg(G, c), when the caller has it.
    """
    if space not in ('w', 'latent'):
        raise ValueError(f'space must be "w" or "latent", got {space!r}')
    device = target.device
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    c = torch.zeros([1, G.c_dim], device=device) if c is None else c.to(device)
    distance = distance or PixelPyramidDistance(target)
    gen = torch.Generator().manual_seed(int(seed))
    bufs = _noise_buffers(G)
    for buf in bufs.values():
        buf[:] = torch.randn(buf.shape, generator=gen).to(device)
        buf.requires_grad = True

    if space == 'w':
        start, spread = w_stats or domain_w_avg(G, c)
        render = lambda v: G.synthesis(v.repeat(1, G.num_ws, 1), noise_mode='const')
    else:
        draws = torch.from_numpy(np.random.RandomState(int(seed)).randn(init_draws, G.z_dim)).to(torch.float32).to(device)
        with torch.no_grad():
            scores = [float(distance(G(d[None], c, noise_mode='const'))) for d in draws]
        start, spread = draws[int(np.argmin(scores))][None], 1.0
        render = lambda v: G(v, c, noise_mode='const')
    opt_var = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([opt_var] + list(bufs.values()), betas=(0.9, 0.999), lr=lr)
    losses = []
    for step in range(num_steps):
        t = step / num_steps
        for group in opt.param_groups:
            group['lr'] = _lr_at(t, lr)
        jitter = spread * noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2
        img = render(opt_var + torch.randn(opt_var.shape, generator=gen).to(device) * jitter)
        dist = distance(img)
        loss = dist + noise_weight * _noise_penalty(bufs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(dist.item())
        if progress:                                            # NVIDIA's per-step line
            print(f'step {step + 1:>4d}/{num_steps}: dist {losses[-1]:<4.2f} loss {loss.item():<5.2f}', flush=True)
        with torch.no_grad():
            for buf in bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if frames is not None:
            frames.append(domain_swap.to_uint8(img.detach())[0].permute(1, 2, 0).numpy())
    with torch.no_grad():
        v = opt_var.detach()
        image = render(v)
        w = v.repeat(1, G.num_ws, 1) if space == 'w' else G.mapping(v, c)
    out = dict(space=space, w=w, image=image, loss=losses, noise={k: b.detach().clone() for k, b in bufs.items()})
    if space == 'latent':
        out['eps'] = v
    return out


@torch.no_grad()
def render_domains(G, result, domains, c_src=None, noise=None, w_stats=None):
    """[len(domains), C, H, W] float: the projection rendered in each domain. Latent space: eps with each
    label. W space (no domain handle): w shifted by the difference of the domains' mean W (see docs);
    w_stats: domain_w_stats(G), when the caller has it."""
    G = copy.deepcopy(G).eval().to(result['w'].device)
    for name, buf in G.synthesis.named_buffers():
        if noise and name in noise:
            buf.copy_(noise[name])
    labels = torch.eye(G.c_dim, device=result['w'].device)[list(domains)]
    if result['space'] == 'latent':
        return G(result['eps'].expand(len(labels), -1), labels, noise_mode='const')
    means = [m for m, _s in (w_stats or domain_w_stats(G, labels.device))]
    base = means[int(c_src[0].argmax())]
    ws = [result['w'] + (means[d] - base) for d in domains]
    return G.synthesis(torch.cat(ws), noise_mode='const')

#----------------------------------------------------------------------------
