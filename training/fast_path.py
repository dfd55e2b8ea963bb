"""The GPU fast path of the training step and of sampling: torch.compile, fused Triton ops, channels-last.

The reference PyTorch path stays the judge. What the fast path may change is only how the mainline
forward passes run (G mapping, G synthesis and D in Gmain and Dmain); the lazy regularisers R1 (Dreg)
and path length (Greg) need double backward, which compiled graphs do not support, so they run eager.
Random numbers: Inductor is told to call the eager random ops (`fallback_random`), so a compiled
forward draws the same noise as the reference one from the same seed. The fused Triton kernels for
bias_act and upfirdn2d (torch_utils/ops/fused.py: self-checked per configuration, any-order gradients)
serve the eager code, R1 and path length included; inside compiled graphs Inductor fuses the
reference ops itself.

Every compiled callable checks itself on each new call signature (compiled vs eager from the same RNG
state, module buffers restored): the outputs, and when the call is differentiable also the gradients of
one fixed random projection of the outputs w.r.t. the parameters and the inputs that require grad (a
correct forward with a wrong or missing backward is caught before it trains anything). It falls back
to eager, after one warning line, when the check fails or the compiled call raises. On CPU the fast
path is off unless asked for (compiling there is slow).

    cfg = resolve_fast('auto', device)          # FastPathConfig; off on CPU
    cfg = resolve_fast('fused', device)         # fused ops + channels-last, no compiling
    apply_to_loss(loss, cfg)                    # Gmain / Dmain forwards of the loss use compiled callables
    G_fast = compile_module(G_ema, cfg, 'G')    # sampling
"""
import dataclasses
import math
import warnings

import torch

from torch_utils.ops import fused

#----------------------------------------------------------------------------

COMPILE_MODES = ('none', 'default', 'reduce-overhead', 'max-autotune-no-cudagraphs', 'max-autotune')
AUTO_COMPILE_MODE = 'default'   # what --fast=auto compiles with on CUDA (chosen by tools/gpu_check.py timings)
FAST_CHOICES = ('auto', 'off', 'fused') + COMPILE_MODES[1:]

@dataclasses.dataclass
class FastPathConfig:
    compile:        str   = 'none'      # torch.compile mode, or 'none' (eager).
    backend:        str   = 'inductor'  # torch.compile backend ('aot_eager' checks the plumbing cheaply).
    channels_last:  bool  = False       # channels-last activations and weights in the fp16 blocks (as NVIDIA's fp16_channels_last).
    fused_ops:      bool  = False       # Triton kernels for bias_act / upfirdn2d in eager code (torch_utils.ops.fused).
    self_check:     bool  = True        # Compare compiled vs eager on first use; fall back to eager on mismatch.
    rtol:           float = 2e-2        # Self-check: max|fast - ref| <= rtol * max|ref| + atol.
    atol:           float = 1e-4
    grad_check:     bool  = True        # Self-check also compares gradients (one backward of a random projection).
    grad_rtol:      float = 1e-1        # Gradient check: |g_fast - g_ref| <= grad_rtol * |g_ref| (2-norm per input, all parameters together).

    @property
    def enabled(self):
        return self.compile != 'none' or self.channels_last or self.fused_ops

    def to_dict(self):
        return dataclasses.asdict(self)

#----------------------------------------------------------------------------

def resolve_fast(fast, device):
    """--fast value -> FastPathConfig. 'auto': compile (AUTO_COMPILE_MODE) + fused ops + channels-last on
    CUDA only, off elsewhere; 'off': the reference path; 'fused': fused ops (+ channels-last on CUDA), no
    compiling; a compile mode: that mode (+ fused ops and channels-last on CUDA)."""
    device = torch.device(device)
    if isinstance(fast, FastPathConfig):
        return fast
    if isinstance(fast, dict):
        return FastPathConfig(**fast)
    if fast not in FAST_CHOICES:
        raise ValueError(f'fast must be one of {", ".join(FAST_CHOICES)}, got {fast!r}')
    cuda = device.type == 'cuda'
    if fast == 'off' or (fast == 'auto' and not cuda):
        return FastPathConfig()
    if fast == 'fused':
        return FastPathConfig(channels_last=cuda, fused_ops=True)
    mode = AUTO_COMPILE_MODE if fast == 'auto' else fast
    return FastPathConfig(compile=mode, channels_last=cuda, fused_ops=cuda)

#----------------------------------------------------------------------------

def _warn(msg):
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _rng_state(device):
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device is not None and device.type == 'cuda' else None
    return cpu, cuda


def _set_rng_state(state, device):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for item in x for t in _tensors(item)]
    if isinstance(x, dict):
        return [t for item in x.values() for t in _tensors(item)]
    return []


def compare_outputs(fast, ref, rtol, atol):
    """(ok, worst relative error, reason) for two outputs of the same callable."""
    fast, ref = _tensors(fast), _tensors(ref)
    if len(fast) != len(ref):
        return False, math.inf, f'{len(fast)} outputs instead of {len(ref)}'
    worst = 0.0
    for a, b in zip(fast, ref):
        if a.shape != b.shape:
            return False, math.inf, f'shape {list(a.shape)} instead of {list(b.shape)}'
        a, b = a.detach().float(), b.detach().float()
        if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
            return False, math.inf, 'non-finite values where the reference has none'
        fin = torch.isfinite(b)
        scale = float(b[fin].abs().max()) if fin.any() else 0.0
        err = float((a[fin] - b[fin]).abs().max()) if fin.any() else 0.0
        worst = max(worst, err / max(scale, 1e-12))
        if err > rtol * scale + atol:
            return False, worst, f'max abs diff {err:.3g} at output scale {scale:.3g}'
    return True, worst, ''


def compare_grads(fast, ref, names, rtol):
    """(ok, worst relative error, reason) for two lists of gradients (None = no gradient) of the same
    targets, named `names`; 'param:...' targets are judged together (2-norm), each input on its own."""
    groups = dict()
    for name, a, b in zip(names, fast, ref):
        if (a is None) != (b is None):
            return False, math.inf, f'gradient of {name} ' + ('missing' if a is None else 'present where the reference has none')
        if a is None:
            continue
        a, b = a.detach().double(), b.detach().double()
        if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
            return False, math.inf, f'non-finite gradient of {name} where the reference has ' + ('none' if torch.isfinite(b).all() else 'others')
        fin = torch.isfinite(b)
        group = 'parameters' if name.startswith('param:') else name
        err, scale = groups.get(group, (0.0, 0.0))
        groups[group] = (err + float((a[fin] - b[fin]).square().sum()), scale + float(b[fin].square().sum()))
    worst = 0.0
    for group, (err, scale) in groups.items():
        err, scale = math.sqrt(err), math.sqrt(scale)
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        worst = max(worst, rel)
        if err > rtol * scale:
            return False, worst, f'gradient of the {group} off by {rel:.3g} relative (|ref| {scale:.3g})'
    return True, worst, ''


def _projection(outputs, seed=0):
    """A fixed random scalar of the outputs that need grad: sum_k <u_k, out_k> / sqrt(numel), u_k ~ N(0, I)."""
    gen = torch.Generator().manual_seed(seed)
    total = None
    for t in outputs:
        if not (t.requires_grad and t.is_floating_point()):
            continue
        u = torch.randn(t.shape, generator=gen).to(t.device)
        term = (t.float() * u).sum() / math.sqrt(max(t.numel(), 1))
        total = term if total is None else total + term
    return total

#----------------------------------------------------------------------------

class CheckedCallable:
    """A compiled callable with its eager twin: each new call signature (grad mode, which inputs and
    parameters need grad, shapes, keywords) is first checked against eager, outputs and (in grad mode)
    the gradients of a fixed random projection of them; after a failure, eager only.

    `module` (optional) is the nn.Module whose parameters and buffers the call uses; the self-check
    restores its buffers (e.g. w_avg) so that the real call sees the state it would have seen without it.
    A compiled call that raises is re-run eager from the same RNG state.
    """
    def __init__(self, name, eager, compiled, module=None, config=None):
        self.name = name
        self.eager = eager
        self.compiled = compiled
        self.module = module
        self.config = config if config is not None else FastPathConfig()
        self.failed = None          # reason string once fallen back to eager
        self.checked = set()        # call signatures already checked
        self.check_error = 0.0      # worst relative error of the outputs seen by the self-checks
        self.grad_error = 0.0       # worst relative error of the gradients seen by the self-checks

    def _signature(self, args, kwargs):
        tensors = _tensors(list(args))
        params = any(p.requires_grad for p in self.module.parameters()) if self.module is not None else None
        return (torch.is_grad_enabled(), params, tuple((tuple(t.shape), t.dtype, t.requires_grad) for t in tensors),
                tuple(sorted((k, repr(v)) for k, v in kwargs.items())))

    def _fail(self, reason):
        self.failed = reason
        _warn(f'fast path: {self.name} falls back to the reference path ({reason}).')

    def _grad_targets(self, args):
        """(names, tensors) the gradient check differentiates: inputs and parameters that require grad."""
        if not (self.config.grad_check and torch.is_grad_enabled()):
            return [], []
        names, targets = [], []
        for i, t in enumerate(_tensors(list(args))):
            if t.requires_grad:
                names.append(f'input {i}')
                targets.append(t)
        if self.module is not None:
            for name, p in self.module.named_parameters():
                if p.requires_grad:
                    names.append(f'param:{name}')
                    targets.append(p)
        return names, targets

    def _run_once(self, fn, args, kwargs, targets):
        """Detached outputs and, when `targets`, the gradients of the fixed projection w.r.t. them."""
        outs = _tensors(fn(*args, **kwargs))
        grads, needs_grad = None, [t.requires_grad for t in outs]
        if targets:
            proj = _projection(outs)
            grads = [None] * len(targets) if proj is None else list(torch.autograd.grad(proj, targets, allow_unused=True))
            grads = [None if g is None else g.detach().clone() for g in grads]
        return [t.detach().clone() for t in outs], needs_grad, grads

    def _self_check(self, args, kwargs, device):
        rng = _rng_state(device)
        buffers = [(b, b.detach().clone()) for b in self.module.buffers()] if self.module is not None else []
        names, targets = self._grad_targets(args)
        results = []
        for fn in (self.eager, self.compiled):
            results.append(self._run_once(fn, args, kwargs, targets))
            _set_rng_state(rng, device)
            for b, saved in buffers:
                b.copy_(saved)
        (ref, ref_needs, ref_grads), (out, out_needs, out_grads) = results
        ok, worst, reason = compare_outputs(out, ref, self.config.rtol, self.config.atol)
        self.check_error = max(self.check_error, worst)
        if ok and targets and ref_needs != out_needs:
            ok, reason = False, 'outputs that need grad differ from the reference (a detached or frozen graph)'
        if ok and targets:
            ok, worst, reason = compare_grads(out_grads, ref_grads, names, self.config.grad_rtol)
            self.grad_error = max(self.grad_error, worst)
        return ok, reason

    def __call__(self, *args, **kwargs):
        if self.failed is not None:
            return self.eager(*args, **kwargs)
        device = next((t.device for t in _tensors(list(args))), None)
        rng = _rng_state(device)
        try:
            if self.config.self_check:
                sig = self._signature(args, kwargs)
                if sig not in self.checked:
                    ok, reason = self._self_check(args, kwargs, device)
                    self.checked.add(sig)
                    if not ok:
                        self._fail(f'self-check failed: {reason}')
                        return self.eager(*args, **kwargs)
            return self.compiled(*args, **kwargs)
        except Exception as e: # pylint: disable=broad-except
            _set_rng_state(rng, device)
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else 'no message'
            self._fail(f'{type(e).__name__}: {msg}')
            return self.eager(*args, **kwargs)

#----------------------------------------------------------------------------

def _configure_inductor():
    """Same random numbers as eager (Inductor calls the eager random ops)."""
    try:
        import torch._inductor.config as inductor_config # pylint: disable=import-outside-toplevel
        inductor_config.fallback_random = True
    except Exception: # pylint: disable=broad-except
        pass


def compile_callable(fn, config, name, module=None):
    """`fn` wrapped per `config`: a CheckedCallable around torch.compile(fn), or `fn` itself when off."""
    if config.compile == 'none':
        return fn
    try:
        _configure_inductor()
        kwargs = dict(backend=config.backend)
        if config.backend == 'inductor' and config.compile != 'default':
            kwargs['mode'] = config.compile
        compiled = torch.compile(fn, **kwargs)
    except Exception as e: # pylint: disable=broad-except
        _warn(f'fast path: cannot compile {name}, using the reference path ({type(e).__name__}: {e}).')
        return fn
    return CheckedCallable(name, fn, compiled, module=module, config=config)


def compile_module(module, config, name):
    """A callable running `module.forward` per `config` (parameters shared with `module`)."""
    return compile_callable(module, config, name, module=module)

#----------------------------------------------------------------------------

def set_channels_last(module, enable=True):
    """channels-last for the blocks that compute in fp16 (their activations and 4-D weights), as
    NVIDIA's fp16_channels_last; blocks in float32 keep NCHW. Values are unchanged."""
    fmt = torch.channels_last if enable else torch.contiguous_format
    for m in module.modules():
        if getattr(m, 'use_fp16', False) and hasattr(m, 'channels_last'):
            m.channels_last = bool(enable)
            for p in m.parameters():
                if p.ndim == 4:
                    p.data = p.data.contiguous(memory_format=fmt)
    return module

#----------------------------------------------------------------------------

def apply_to_loss(loss, config):
    """Give `loss` (training.loss.StyleGAN2Loss) fast mainline forwards per `config`; returns the config.
    R1 and path-length phases keep using the eager modules (double backward)."""
    config = resolve_fast(config, loss.device)
    loss.fast = None
    fused.set_enabled(config.fused_ops)
    if not config.enabled:
        return config
    if config.channels_last:
        set_channels_last(loss.G, True)
        set_channels_last(loss.D, True)
    if config.compile != 'none':
        from dnnlib import EasyDict # pylint: disable=import-outside-toplevel
        loss.fast = EasyDict(
            mapping=compile_module(loss.G.mapping, config, 'G.mapping'),
            synthesis=compile_module(loss.G.synthesis, config, 'G.synthesis'),
            D=compile_module(loss.D, config, 'D'),
        )
    return config


def fast_path_report(loss):
    """{name: 'ok (...)' | 'fallback: reason'} for the loss' compiled callables and the fused ops."""
    out = {}
    if fused.is_enabled():
        checks = fused.status()
        failed = [str(key) for key, ok in checks.items() if not ok]
        out['fused_ops'] = (f'fallback for {len(failed)} of {len(checks)} configurations: {"; ".join(failed)}' if failed else
                            f'ok ({len(checks)} configurations checked)' if checks else 'on, unused (no CUDA tensors reached the kernels)')
    fast = getattr(loss, 'fast', None)
    if not fast:
        return out
    for key, fn in fast.items():
        if isinstance(fn, CheckedCallable):
            out[key] = f'fallback: {fn.failed}' if fn.failed else f'ok ({len(fn.checked)} checked, worst rel. err {fn.check_error:.2g}, grads {fn.grad_error:.2g})'
    return out

#----------------------------------------------------------------------------
