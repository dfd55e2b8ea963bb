"""The switch, the applicability test and the self-check of the fused (Triton) kernels for bias_act and upfirdn2d.

The reference PyTorch ops stay the judge. The fused kernels run only when all of these hold:
  * they were switched on (`set_enabled(True)`; the training loop does so for `--fast` on CUDA),
  * the tensors live on a CUDA device (or on the CPU under Triton's interpreter, `TRITON_INTERPRET=1`,
    which is how the tests run them on machines without a GPU),
  * Triton imports (a failure is one warning line, then the reference path for the rest of the run),
  * the call is not being traced by torch.compile (Inductor fuses the reference ops itself), nor run
    under torch.func transforms or forward-mode AD (the reference ops have the rules for those),
  * the kernel passed its self-check for this configuration: on first use of each configuration key
    (op, options, dtype, layout), fused and reference run on the same inputs; outputs and the
    gradients of one fixed random projection must agree, else one warning line and the reference
    path for that key from then on.
"""
import importlib
import os
import warnings

import torch

_enabled = False
_triton_error = None        # None: not tried; '' : imported fine; else the import error text.
_kernels_module = None
_status = {}                # configuration key -> True (passed) / False (failed, reference from now on)

RTOL = {torch.float16: 2e-2, torch.bfloat16: 5e-2}   # others: 5e-3 (covers TF32 in the reference convolutions)

#----------------------------------------------------------------------------

def set_enabled(flag: bool):
    """Switch the fused kernels on or off for this process (off by default)."""
    global _enabled
    _enabled = bool(flag)


def is_enabled() -> bool:
    return _enabled


def status() -> dict:
    """Self-check outcome per configuration key seen so far ({key: passed})."""
    return dict(_status)


def reset():
    """Forget self-check results (tests; or after changing TRITON_INTERPRET)."""
    global _triton_error, _kernels_module
    _status.clear()
    _triton_error = None
    _kernels_module = None


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def _is_compiling() -> bool:
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    return False


def _forward_mode_or_transformed() -> bool:
    """Inside torch.func transforms (jvp, vmap, ...) or a forward-mode AD level: the kernels' autograd
    Functions define neither vmap nor jvp rules, so the reference ops (which have them) run there."""
    functorch = getattr(torch._C, '_functorch', None)
    if functorch is not None and hasattr(functorch, 'peek_interpreter_stack') and functorch.peek_interpreter_stack() is not None:
        return True
    forward_ad = getattr(torch.autograd, 'forward_ad', None)
    return getattr(forward_ad, '_current_level', -1) >= 0


def kernels():
    """The Triton kernel module, imported on first use; None (after one warning) if Triton is missing."""
    global _triton_error, _kernels_module
    if _triton_error is None:
        try:
            _kernels_module = importlib.import_module(__package__ + '.triton_kernels')
            _triton_error = ''
        except Exception as e:  # pylint: disable=broad-except
            _triton_error = f'{type(e).__name__}: {e}'
            warnings.warn(f'Fused ops unavailable (Triton did not import: {_triton_error}); using the reference ops.', RuntimeWarning, stacklevel=3)
    return _kernels_module


def applicable(*tensors) -> bool:
    """True when the fused kernels may be tried on these tensors (switch on, right device, not tracing)."""
    if not _enabled or _is_compiling() or _forward_mode_or_transformed():
        return False
    interp = _interpreting()
    for t in tensors:
        if t is None:
            continue
        if not (t.is_cuda or (interp and t.device.type == 'cpu')):
            return False
    return kernels() is not None

#----------------------------------------------------------------------------

def passed_self_check(key, fast, ref, inputs) -> bool:
    """Run the self-check for `key` once (fast(*inputs) vs ref(*inputs)); remember and return the outcome."""
    if key in _status:
        return _status[key]
    try:
        problem = _compare(fast, ref, inputs)
    except Exception as e:  # pylint: disable=broad-except
        problem = f'raised {type(e).__name__}: {e}'
    _status[key] = problem is None
    if problem is not None:
        warnings.warn(f'Fused kernel {key[0]} failed its self-check for {key[1:]} ({problem}); using the reference op for it.', RuntimeWarning, stacklevel=4)
    return _status[key]


def _rel_err(a, b):
    """max|a - b| / max|b| over the finite entries; inf when a and b are non-finite in different places."""
    a, b = a.detach().double(), b.detach().double()
    finite_a, finite_b = torch.isfinite(a), torch.isfinite(b)
    if not torch.equal(finite_a, finite_b):
        return float('inf')
    a, b = a[finite_a], b[finite_b]
    return float((a - b).abs().max() / (b.abs().max() + 1e-12)) if b.numel() else 0.0


def _fresh_leaves(inputs):
    """Detached copies of `inputs` (None kept), floating-point ones requiring grad."""
    return [t.detach().clone().requires_grad_(t.is_floating_point()) if t is not None else None for t in inputs]


def _compare(fast, ref, inputs):
    """None when fast agrees with ref (outputs, then input gradients of a random projection), else the reason."""
    with torch.inference_mode(False), torch.enable_grad():  # check the gradients even when called under no_grad / inference_mode
        leaves, leaves_ref = _fresh_leaves(inputs), _fresh_leaves(inputs)
        y = fast(*leaves)
        y_ref = ref(*leaves_ref)
        if y.shape != y_ref.shape or y.dtype != y_ref.dtype:
            return f'output {list(y.shape)} {y.dtype}, reference {list(y_ref.shape)} {y_ref.dtype}'
        rtol = RTOL.get(y_ref.dtype, 5e-3)
        err = _rel_err(y, y_ref)
        if err > rtol:
            return f'output relative error {err:.2e} > {rtol:.0e}'
        gen = torch.Generator(device=y.device).manual_seed(0)
        proj = torch.randn(y.shape, generator=gen, device=y.device, dtype=torch.float32).to(y.dtype)
        wrt = [t for t in leaves if t is not None and t.requires_grad]
        wrt_ref = [t for t in leaves_ref if t is not None and t.requires_grad]
        grads = torch.autograd.grad((y * proj).sum(), wrt)
        grads_ref = torch.autograd.grad((y_ref * proj).sum(), wrt_ref)
        for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
            err = _rel_err(g, g_ref)
            if err > rtol:
                return f'gradient {i} relative error {err:.2e} > {rtol:.0e}'
    return None
