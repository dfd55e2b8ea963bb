"""Bias + activation + gain + clamp in one call (StyleGAN2 semantics).

Only the pure-PyTorch reference path exists; it supports gradients of any order. `impl='cuda'` is
accepted for call-compatibility with NVIDIA's code and currently runs the reference path too; a fused
kernel may be registered later, but only after it matches `_bias_act_ref` numerically.
"""
import numpy as np
import torch

from dnnlib import EasyDict

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

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='ref'):
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
        impl:   'ref' (default) or 'cuda' (same as 'ref' until a fused kernel exists).
    """
    if impl not in ('ref', 'cuda'):
        raise ValueError(f'bias_act: impl must be "ref" or "cuda", got {impl!r}')
    return _bias_act_ref(x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

#----------------------------------------------------------------------------

def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    if act not in activation_funcs:
        raise ValueError(f'bias_act: unknown activation {act!r}; choose from {sorted(activation_funcs)}')
    if clamp is not None and clamp < 0:
        raise ValueError(f'bias_act: clamp must be >= 0 or None, got {clamp}')
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)

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
