"""Training statistics: `report(name, value)` anywhere, `Collector.update()` once per tick.

Values are accumulated as moments [count, sum, sum of squares] on the device where they were
reported (no host sync per report); `Collector.update()` sums them over all ranks, so every rank
sees the same statistics. All ranks must report the same set of names (the training loop does).
"""
import re

import numpy as np
import torch

from . import distributed

#----------------------------------------------------------------------------

_moments = dict()       # name -> {device: tensor([count, sum, sumsq], float64)}
_names_seen = list()    # names in the order they were first reported

def report(name: str, value):
    """Accumulate the elements of `value` (tensor, number or sequence) under `name`; returns `value`."""
    elems = torch.as_tensor(value).detach().flatten().to(torch.float64)
    moments = torch.stack([torch.ones_like(elems).sum(), elems.sum(), elems.square().sum()])  # zeros when empty
    per_device = _moments.setdefault(name, dict())
    if name not in _names_seen:
        _names_seen.append(name)
    if elems.device in per_device:
        per_device[elems.device].add_(moments)
    else:
        per_device[elems.device] = moments
    return value


def report0(name: str, value):
    """Like `report`, but only rank 0's values count (e.g. values that are identical on every rank)."""
    report(name, value if distributed.get_rank() == 0 else [])
    return value

#----------------------------------------------------------------------------

class Collector:
    """Gathers the moments reported since the last `update()` whose names match `regex`."""

    def __init__(self, regex: str = '.*'):
        self._regex = re.compile(regex)
        self._cumulative = dict()   # name -> float64 numpy [count, sum, sumsq] of the last update

    def names(self):
        return [name for name in _names_seen if self._regex.fullmatch(name)]

    def update(self, device=None):
        """Sum the pending moments over devices and ranks, then clear them. Collective on all ranks."""
        self._cumulative = dict()
        names = sorted(self.names())
        if not names:
            return
        if device is None:
            device = torch.device('cuda', torch.cuda.current_device()) if distributed.uses_nccl() else torch.device('cpu')
        stacked = torch.zeros(len(names), 3, dtype=torch.float64, device=device)
        for i, name in enumerate(names):
            for moments in _moments.get(name, {}).values():
                stacked[i] += moments.to(device)
            _moments[name] = dict()
        if distributed.get_world_size() > 1:
            torch.distributed.all_reduce(stacked)
        stacked = stacked.cpu().numpy()
        self._cumulative = {name: stacked[i] for i, name in enumerate(names) if stacked[i, 0] > 0}

    def num(self, name):
        return float(self._cumulative.get(name, np.zeros(3))[0])

    def mean(self, name):
        count, total, _ = self._cumulative.get(name, np.zeros(3))
        return float(total / count) if count > 0 else float('nan')

    def std(self, name):
        count, total, sumsq = self._cumulative.get(name, np.zeros(3))
        if count == 0:
            return float('nan')
        mean = total / count
        return float(np.sqrt(max(sumsq / count - mean * mean, 0.0)))

    def as_dict(self):
        """{name: EasyDict(num, mean, std)} for every name with values in the last update."""
        from dnnlib.util import EasyDict
        return {name: EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name)) for name in sorted(self._cumulative)}

    def __getitem__(self, name):
        return self.mean(name)

#----------------------------------------------------------------------------

def reset():
    """Forget everything reported so far (tests, and the start of a run)."""
    _moments.clear()
    _names_seen.clear()

#----------------------------------------------------------------------------
