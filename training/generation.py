"""What generate.py, projector.py and style_mixing.py share: seeds, domain labels, loading a generator, the
device, and PNG output (NVIDIA's conventions: RandomState(seed) latents, x * 127.5 + 128 rounding)."""
import re

import numpy as np
import PIL.Image
import torch

import dnnlib
import legacy
from training import domain_swap

#----------------------------------------------------------------------------

class UserError(Exception):
    """Something the user asked for cannot be done; the message is one sentence saying what to do."""

#----------------------------------------------------------------------------

MAX_SEEDS = 100_000  # images per call
MAX_SEED = 2**32 - 1  # numpy RandomState's range


def parse_range(s) -> list:
    """'0-7,12' -> [0, 1, ..., 7, 12]; also accepts a list of ints. At most MAX_SEEDS seeds in 0..MAX_SEED."""
    if isinstance(s, (list, tuple)):
        return [int(x) for x in s]
    out = []
    for part in str(s).split(','):
        part = part.strip()
        m = re.fullmatch(r'(\d{1,12})(?:-(\d{1,12}))?', part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f'"{s[:40]}" is not a list of seeds; use numbers and ranges like 0-7,12')
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi > MAX_SEED:
            raise ValueError(f'seed {hi} is out of range; seeds go from 0 to {MAX_SEED}')
        if len(out) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f'"{s[:40]}" asks for more than {MAX_SEEDS} images; split the call')
        out.extend(range(lo, hi + 1))
    return out


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """The latent NVIDIA's generate.py uses for a seed: RandomState(seed).randn(1, z_dim)."""
    return domain_swap.seed_latent(seed, z_dim)


def domain_names_of(data: dict):
    """Domain names stored with the snapshot (top level or in training_set_kwargs), else None."""
    names = data.get('domain_names')
    kwargs = data.get('training_set_kwargs') or {}
    if names is None and isinstance(kwargs, dict):
        names = kwargs.get('domain_names')
    return [str(n)[:100] for n in names] if isinstance(names, (list, tuple)) and names else None


def resolve_domain(domain, c_dim: int, names=None):
    """--domain / --class value (index or name) -> int index, or None for unconditional networks."""
    if c_dim == 0:
        if domain is not None:
            raise UserError(f'--domain={str(domain)[:40]}: the network is unconditional (it has no domains); leave --domain out.')
        return None
    if domain is None:
        listing = f' ({", ".join(f"{i}={n}" for i, n in enumerate(names))})' if names else ''
        raise UserError(f'the network is conditional with {c_dim} domains{listing}: pick one with --domain (or --class).')
    text = str(domain).strip()
    if re.fullmatch(r'\d+', text):
        index = int(text)
    elif names and text in names:
        index = names.index(text)
    else:
        known = f'one of {", ".join(names)} or ' if names else ''
        raise UserError(f'unknown domain "{text}": use {known}an index 0..{c_dim - 1}.')
    if not 0 <= index < c_dim:
        raise UserError(f'--domain={index} is out of range: the network has domains 0..{c_dim - 1}.')
    return index


def make_labels(index, c_dim: int, batch: int = 1, device='cpu') -> torch.Tensor:
    """One-hot domain labels [batch, c_dim] (zeros [batch, 0] for unconditional networks)."""
    c = torch.zeros([batch, c_dim], device=device)
    if index is not None:
        c[:, index] = 1
    return c

#----------------------------------------------------------------------------

def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] float in [-1, 1] -> [N, H, W, C] uint8 (NVIDIA's rounding: x * 127.5 + 128, clamped)."""
    img = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.cpu().numpy()


def save_png(path: str, array: np.ndarray):
    """Write an HWC uint8 image atomically (temp file in the same folder + os.replace)."""
    array = array[:, :, 0] if array.shape[2] == 1 else array
    image = PIL.Image.fromarray(array, 'L' if array.ndim == 2 else 'RGB')
    with dnnlib.util.atomic_write(path) as f:
        image.save(f, format='PNG')


def make_grid(images: list, cols: int = None) -> np.ndarray:
    """List of HWC uint8 images of one size -> one HWC grid image, row-major, `cols` per row."""
    n = len(images)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w, ch = images[0].shape
    grid = np.zeros([rows * h, cols * w, ch], dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return grid

def load_generator(network: str, device='cpu') -> tuple:
    """(G_ema, whole snapshot dict) from a path or URL."""
    data = legacy.load_network(network)
    G = data.get('G_ema') or data.get('G')
    if G is None:
        raise UserError(f'{network} has no generator (G_ema or G); pass a snapshot written during training.')
    return G.eval().requires_grad_(False).to(device), data


def pick_device(device: str) -> torch.device:
    """--device: auto, cpu, cuda or cuda:N (a visible GPU); anything else is one sentence."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    m = re.fullmatch(r'(cpu|cuda)(?::(\d{1,3}))?', str(device).strip())
    if m is None or (m.group(1) == 'cpu' and m.group(2) is not None):
        raise UserError(f'--device={str(device)[:40]} is not a device; use auto, cpu, cuda or cuda:N.')
    if m.group(1) == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device=cuda was asked for but no CUDA GPU is available; use --device=cpu.')
    if m.group(2) is not None and int(m.group(2)) >= torch.cuda.device_count():
        raise UserError(f'--device={device} but {torch.cuda.device_count()} GPU(s) are visible; use cuda:0..cuda:{torch.cuda.device_count() - 1}.')
    return torch.device(device)

#----------------------------------------------------------------------------
