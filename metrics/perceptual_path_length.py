"""Perceptual path length (Karras et al. 2019, NVIDIA's ppl2_wend / ppl_{z,w}{full,end}).

For a pair of latents, images at interpolation points t and t + epsilon are compared with LPIPS (NVIDIA's
VGG16); PPL = mean of d^2 / epsilon^2 over the samples between the 1st and 99th percentile. `space` 'w'
interpolates linearly in W, 'z' spherically in Z; `sampling` 'full' draws t ~ U(0, 1), 'end' uses t = 0;
`crop` keeps the central face region (rows 3/8..7/8, columns 2/8..6/8); images above 256^2 are box-averaged
down to 256^2. Noise buffers are redrawn for every batch and labels come from the dataset, as in NVIDIA's code.
"""
import numpy as np
import torch

#----------------------------------------------------------------------------

def slerp(a, b, t, eps=1e-7):
    """Spherical interpolation between latents a and b (rows), at fractions t [N, 1]."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True).clamp(-1 + eps, 1 - eps)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    return a * torch.cos(p) + c * torch.sin(p)


def path_distances(G, vgg16, c, epsilon=1e-4, space='w', sampling='end', crop=False, generator=None):
    """d^2 / epsilon^2 for one batch of latent pairs with labels c [N, c_dim] (float64 numpy [N])."""
    n = c.shape[0]
    device = c.device
    t = torch.rand([n, 1], device=device, generator=generator) * (1 if sampling == 'full' else 0)
    z0, z1 = torch.randn([2, n, G.z_dim], device=device, generator=generator)
    if space == 'w':
        w0, w1 = G.mapping(torch.cat([z0, z1]), torch.cat([c, c])).chunk(2)
        ws = torch.cat([w0.lerp(w1, t.unsqueeze(2)), w0.lerp(w1, t.unsqueeze(2) + epsilon)])
    else:
        ws = G.mapping(torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)]), torch.cat([c, c]))
    for name, buf in G.named_buffers():
        if name.endswith('noise_const'):
            buf.copy_(torch.randn(buf.shape, device=buf.device, generator=generator))
    img = G.synthesis(ws, noise_mode='const', force_fp32=True)
    if crop:
        s = img.shape[2] // 8
        img = img[:, :, s * 3:s * 7, s * 2:s * 6]
    factor = G.img_resolution // 256
    if factor > 1:
        img = img.reshape([img.shape[0], img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor, factor]).mean([3, 5])
    img = (img + 1) * (255 / 2)
    if img.shape[1] == 1:
        img = img.repeat([1, 3, 1, 1])
    e0, e1 = vgg16.lpips(img).chunk(2)
    return ((e0 - e1).square().sum(dim=1) / epsilon ** 2).double().cpu().numpy()


def perceptual_path_length(distances) -> float:
    """Mean of the distances between their 1st (lower) and 99th (higher) percentile."""
    d = np.asarray(distances, dtype=np.float64)
    lo, hi = np.percentile(d, 1, method='lower'), np.percentile(d, 99, method='higher')
    return float(d[(d >= lo) & (d <= hi)].mean())

#----------------------------------------------------------------------------
