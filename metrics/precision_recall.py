"""Improved precision and recall (Kynkaanniemi et al. 2019, NVIDIA's pr50k3): k-NN manifolds of VGG16 features.

Each set's manifold is the union of balls around its points, radius = distance to the k-th nearest other point.
precision = share of fakes inside the reals' manifold; recall = share of reals inside the fakes' manifold.
Distances in float32, in row x column blocks (memory bounded by `block`^2); NVIDIA's code uses float16.
"""
import numpy as np
import torch

#----------------------------------------------------------------------------

def _blocks(n, block):
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def manifold_radii(feats: torch.Tensor, k: int, block: int = 4096) -> torch.Tensor:
    """Distance of every point to its k-th nearest neighbour in `feats` (the point itself excluded)."""
    radii = []
    for rows in _blocks(len(feats), block):
        nearest = None  # the k+1 smallest distances so far (the point itself is one of them, at 0)
        for cols in _blocks(len(feats), block):
            d = torch.cdist(feats[rows], feats[cols])
            nearest = d if nearest is None else torch.cat([nearest, d], dim=1)
            nearest = nearest.topk(min(k + 1, nearest.shape[1]), dim=1, largest=False).values
        radii.append(nearest[:, k] if nearest.shape[1] > k else torch.full([nearest.shape[0]], float('inf'), device=feats.device))
    return torch.cat(radii)


def inside_manifold(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Whether each probe lies within the radius of at least one manifold point (bool [len(probes)])."""
    out = []
    for rows in _blocks(len(probes), block):
        hit = torch.zeros([rows.stop - rows.start], dtype=torch.bool, device=probes.device)
        for cols in _blocks(len(manifold), block):
            hit |= (torch.cdist(probes[rows], manifold[cols]) <= radii[cols].unsqueeze(0)).any(dim=1)
        out.append(hit)
    return torch.cat(out)


def precision_recall(real_feats, gen_feats, nhood_size: int = 3, device='cpu', block: int = 4096):
    """(precision, recall) of generated features against real ones."""
    real, gen = (torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device) for x in (real_feats, gen_feats))
    precision = inside_manifold(gen, real, manifold_radii(real, nhood_size, block), block).float().mean()
    recall = inside_manifold(real, gen, manifold_radii(gen, nhood_size, block), block).float().mean()
    return float(precision), float(recall)

#----------------------------------------------------------------------------
