"""Bias + activation + gain + clamp in one call (StyleGAN2 semantics).

`_bias_act_ref` (pure PyTorch, gradients of any order) is the reference. A fused Triton kernel
(`fused.py`, `triton_kernels.py`; linear / relu / lrelu) replaces it when the fused ops are switched on,
the tensors are on a GPU, and the kernel passed its self-check against the reference for this
configuration; `impl='ref'` always takes the reference path.
"""
import numpy as np
import torch

from dnnlib import EasyDict

from . import fused

#----------------------------------------------------------------------------
# Activation table: function, default alpha (lrelu slope), default gain (variance preserving).

def _spec(func, def_alpha, def_gain):
    return EasyDict(func=func, def_alpha=def_alpha, def_gain=float(def_gain))

activation_funcs = {
    'linear':   _spec(lambda x, alpha: x,                                     0,   1),
    'relu':     _spec(lambda x, alpha: torch.nn.functional.relu(x),           0,   np.sqrt(2)),
    'lrelu':    _spec(lambda x, alpha: torch.nn.functional.leaky_relu(x, alpha), 0.2, np.sqrt(2)),
    'tanh':     _spec(lambda x, alpha: torch.tanh(x),                         0,   1),
    'sigmoid':  _spec(lambda x, alpha: torch.sigmoid(x),                      0,   1),
    'elu':      _spec(lambda x, alpha: torch.nn.functional.elu(x),            0,   1),
    'selu':     _spec(lambda x, alpha: torch.nn.functional.selu(x),           0,   1),
    'softplus': _spec(lambda x, alpha: torch.nn.functional.softplus(x),       0,   1),
    'swish':    _spec(lambda x, alpha: torch.sigmoid(x) * x,                  0,   np.sqrt(2)),
}

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='auto'):
    """y = clamp(gain * act(x + b, alpha), -clamp, +clamp), b broadcast along `dim`.

    Args:
        x:      Input tensor of any shape.
        b:      Optional 1-D bias with `x.shape[dim]` entries.
        dim:    The dimension of `x` that `b` runs along.
        act:    One of `activation_funcs` ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu',
                'softplus', 'swish').
        alpha:  Shape parameter (lrelu negative slope); None = the activation's default.
        gain:   Output scale; None = the activation's default (sqrt(2) for relu/lrelu/swish, else 1).
        clamp:  Clamp the output to [-clamp, +clamp]; None = no clamping.
        impl:   'auto' (default; 'cuda' is the same, as in NVIDIA's code): the fused kernel where it
                applies (see module doc), else the reference; 'ref': always the reference.
    """
    if impl not in ('auto', 'cuda', 'ref'):
        raise ValueError(f'bias_act: impl must be "auto", "cuda" or "ref", got {impl!r}')
    if impl != 'ref' and _fusable(x, b, dim, act, gain, clamp):
        return _bias_act_fused(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_ref(x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

#----------------------------------------------------------------------------

def _fusable(x, b, dim, act, gain, clamp):
    if act not in ('linear', 'relu', 'lrelu') or not fused.applicable(x, b):
        return False
    if not (x.is_floating_point() and 0 <= dim < x.ndim and (x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)))):
        return False
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim] or b.dtype != x.dtype or not b.is_contiguous()):
        return False  # mixed dtypes promote in the reference; keep its semantics there
    return _resolve(act, None, gain)[2] > 0 and (clamp is None or clamp >= 0)  # the backward reads the slope off sign(y)


def _resolve(act, alpha, gain):
    """(activation spec, alpha, gain) with the activation's defaults filled in."""
    if act not in activation_funcs:
        raise ValueError(f'bias_act: unknown activation {act!r}; choose from {sorted(activation_funcs)}')
    spec = activation_funcs[act]
    return spec, float(alpha if alpha is not None else spec.def_alpha), float(gain if gain is not None else spec.def_gain)


def _bias_act_fused(x, b, dim, act, alpha, gain, clamp):
    _spec, alpha, gain = _resolve(act, alpha, gain)
    clamp = float(clamp) if clamp is not None else None
    key = ('bias_act', act, alpha, gain, clamp, b is not None, dim, x.ndim, x.dtype, x.is_contiguous())
    kernels = fused.kernels()
    fast = lambda x_, b_: kernels.BiasAct.apply(x_, b_, dim, act, alpha, gain, clamp)
    ref = lambda x_, b_: _bias_act_ref(x_, b_, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    if not fused.passed_self_check(key, fast, ref, (x, b)):
        return ref(x, b)
    return fast(x, b)

#----------------------------------------------------------------------------

def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    spec, alpha, gain = _resolve(act, alpha, gain)
    if clamp is not None and clamp < 0:
        raise ValueError(f'bias_act: clamp must be >= 0 or None, got {clamp}')

    if b is not None:
        if b.ndim != 1 or not 0 <= dim < x.ndim or b.shape[0] != x.shape[dim]:
            raise ValueError(f'bias_act: bias of shape {list(b.shape)} does not match dim {dim} of input {list(x.shape)}')
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-float(clamp), float(clamp))
    return x

#----------------------------------------------------------------------------
